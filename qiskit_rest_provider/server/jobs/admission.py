"""Checks a job must pass before it is accepted: ISA for the backend's Target, and limits.

Every failure is a :class:`JobInputError` (HTTP 400) whose message starts with the offending
field and says what would be accepted, e.g. which qubit pairs a two-qubit gate exists on.

Limits that keep one request from hogging the server: shots per PUB <= the backend's
``max_shots``; total samples (shots x parameter sets over all PUBs) <= :data:`MAX_TOTAL_SHOTS`;
estimator parameter sets <= :data:`MAX_ESTIMATOR_SETS` and expectation values
<= :data:`MAX_ESTIMATOR_ELEMENTS` per job; PUBs <= the backend's ``max_experiments``; the
estimated memory (:mod:`..execution.cost`) <= the per-job limit (:func:`check_job_size`).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
from qiskit.circuit import ControlFlowOp, QuantumCircuit
from qiskit.circuit.parameterexpression import ParameterExpression

from ..execution.cost import JobEstimate, estimate_job, format_bytes, max_job_memory

__all__ = [
    "MAX_ESTIMATOR_ELEMENTS",
    "MAX_ESTIMATOR_SETS",
    "MAX_TOTAL_SHOTS",
    "JobInputError",
    "check_circuits",
    "check_estimator_limits",
    "check_job_size",
    "check_rep_delay",
    "check_sampler_limits",
    "out_of_memory_reason",
]

MAX_TOTAL_SHOTS = 10_000_000
"""Sampler: at most this many samples (shots × parameter sets, summed over PUBs) per job."""

MAX_ESTIMATOR_SETS = 100_000
"""Estimator: at most this many parameter sets (circuit simulations), summed over PUBs."""

MAX_ESTIMATOR_ELEMENTS = 10_000_000
"""Estimator: at most this many expectation values (broadcast elements), summed over PUBs."""

_DEFAULT_MAX_SHOTS = 100_000


class JobInputError(ValueError):
    """The job's ``params`` are invalid for this program/backend (HTTP 400).

    Attributes:
        field: the offending field, e.g. ``"params.pubs[0].circuit"`` or
            ``"params.options.twirling.foo"``.
        code: short error code for the D10 error body.
    """

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid_params"):
        super().__init__(message)
        self.field = field
        self.code = code


def _where_supported(target: Any, name: str) -> str:
    """Say where ``name`` is available, for error messages (a few entries at most)."""
    if name not in target.operation_names:
        return "the backend's instructions are " + ", ".join(sorted(target.operation_names))
    qargs = target.qargs_for_operation_name(name)
    if qargs is None:
        return f"'{name}' is available on all qubits"
    listed = sorted(qargs)
    shown = ", ".join(str(list(q)) for q in listed[:8])
    more = f" and {len(listed) - 8} more" if len(listed) > 8 else ""
    return f"'{name}' is available on {shown}{more}"


def _check_isa(circuit: QuantumCircuit, target: Any, pub_index: int, backend_name: str) -> None:
    """Raise :class:`JobInputError` for the first instruction the Target does not support."""
    supported: dict[tuple[str, tuple[int, ...]], bool] = {}
    bounded = bool(target.has_angle_bounds()) if hasattr(target, "has_angle_bounds") else False
    field = f"params.pubs[{pub_index}].circuit"

    def walk(block: QuantumCircuit, qubit_map: dict) -> None:
        for inst in block.data:
            op = inst.operation
            name = op.name
            if name == "barrier":
                continue
            qargs = tuple(qubit_map[q] for q in inst.qubits)
            key = (name, qargs)
            ok = supported.get(key)
            if ok is None:
                ok = supported[key] = bool(target.instruction_supported(name, qargs))
            if not ok:
                where = f"qubit {qargs[0]}" if len(qargs) == 1 else f"qubits {list(qargs)}"
                raise JobInputError(
                    f"{field}: PUB {pub_index} is not ISA for backend {backend_name!r}: "
                    f"instruction '{name}' on {where} is not supported "
                    f"({_where_supported(target, name)}). Transpile the circuit for the "
                    "backend's Target first.",
                    field=field,
                    code="non_isa_circuit",
                )
            if bounded and target.gate_has_angle_bounds(name):
                params = [p for p in op.params if not isinstance(p, ParameterExpression)]
                if len(params) == len(op.params) and not target.supported_angle_bound(
                    name, [float(p) for p in params]
                ):
                    raise JobInputError(
                        f"{field}: PUB {pub_index}: instruction '{name}' on {list(qargs)} has "
                        f"angles {list(map(float, params))} outside the backend's bounds",
                        field=field,
                        code="angle_out_of_bounds",
                    )
            if isinstance(op, ControlFlowOp):
                for sub in op.blocks:
                    walk(sub, {bq: qubit_map[oq] for bq, oq in zip(sub.qubits, inst.qubits)})

    walk(circuit, {q: i for i, q in enumerate(circuit.qubits)})


def _max_shots(backend: Any) -> int:
    value = backend.configuration.get("max_shots")
    try:
        return int(value) if value else _DEFAULT_MAX_SHOTS
    except (TypeError, ValueError):
        return _DEFAULT_MAX_SHOTS


def check_circuits(pubs: list, backend: Any) -> None:
    """Every PUB's circuit fits the backend and is ISA for its Target."""
    width = backend.num_qubits
    for i, pub in enumerate(pubs):
        if pub.circuit.num_qubits > width:
            raise JobInputError(
                f"params.pubs[{i}].circuit: the circuit has {pub.circuit.num_qubits} qubits but "
                f"backend {backend.name!r} has {width}",
                field=f"params.pubs[{i}].circuit",
                code="too_many_qubits",
            )
        _check_isa(pub.circuit, backend.target, i, backend.name)


def check_rep_delay(options: dict, backend: Any) -> None:
    """``options.execution.rep_delay`` (seconds) must lie in the backend's range (microseconds)."""
    rep_delay = options["execution"].get("rep_delay")
    bounds = backend.configuration.get("rep_delay_range")
    if rep_delay is None or not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
        return
    low, high = (float(b) * 1e-6 for b in bounds)
    if not low - 1e-15 <= rep_delay <= high + 1e-15:
        key = "params.options.execution.rep_delay"
        raise JobInputError(
            f"{key}: {rep_delay} s is outside the backend's rep_delay_range [{low:g}, {high:g}] s",
            field=key,
            code="invalid_option",
        )


def _pub_sizes(pub: Any) -> int:
    return int(np.prod(pub.parameter_values.shape, dtype=np.int64))


def check_sampler_limits(pubs: list, backend: Any) -> None:
    """Shots per PUB within ``max_shots``; total samples within :data:`MAX_TOTAL_SHOTS`."""
    max_shots = _max_shots(backend)
    total = 0
    for i, pub in enumerate(pubs):
        if not 1 <= pub.shots <= max_shots:
            raise JobInputError(
                f"params.pubs[{i}].shots: must be between 1 and {max_shots} "
                f"(backend max_shots), got {pub.shots}",
                field=f"params.pubs[{i}].shots",
                code="invalid_shots",
            )
        total += int(pub.shots) * max(_pub_sizes(pub), 1)
    if total > MAX_TOTAL_SHOTS:
        raise JobInputError(
            f"params.pubs: the job asks for {total} samples (shots x parameter sets over all "
            f"PUBs); this server accepts at most {MAX_TOTAL_SHOTS} per job. Split the job.",
            field="params.pubs",
            code="job_too_large",
        )


def check_estimator_limits(pubs: list) -> None:
    """Positive precisions; parameter sets and expectation values within the job limits."""
    sets = 0
    elements = 0
    for i, pub in enumerate(pubs):
        if not (math.isfinite(pub.precision) and pub.precision > 0):
            raise JobInputError(
                f"params.pubs[{i}].precision: must be a positive number, got {pub.precision}",
                field=f"params.pubs[{i}].precision",
                code="invalid_precision",
            )
        sets += max(_pub_sizes(pub), 1)
        elements += int(np.prod(pub.shape, dtype=np.int64)) if pub.shape else 1
    if sets > MAX_ESTIMATOR_SETS or elements > MAX_ESTIMATOR_ELEMENTS:
        raise JobInputError(
            f"params.pubs: the job has {sets} parameter sets and {elements} expectation values; "
            f"this server accepts at most {MAX_ESTIMATOR_SETS} and {MAX_ESTIMATOR_ELEMENTS} per "
            "job. Split the job.",
            field="params.pubs",
            code="job_too_large",
        )


# ------------------------------------------------------------------------------ sizing


def _max_experiments(backend: Any) -> int | None:
    value = backend.configuration.get("max_experiments")
    try:
        return int(value) if value else None
    except (TypeError, ValueError):
        return None


def check_job_size(
    program_id: str,
    pubs: list,
    backend: Any,
    options: dict,
    *,
    max_memory: int | None = None,
) -> JobEstimate:
    """Refuse a job that cannot fit: more PUBs than ``max_experiments``, or over the memory limit.

    Estimates memory with :mod:`..execution.cost` (active qubits, Aer's method, results,
    observables) and compares it with the per-job limit (``serve --max-job-memory``), so an
    oversized job is a 400 naming both numbers instead of a worker killed for memory.

    Args:
        program_id: ``"sampler"`` or ``"estimator"``.
        pubs: the decoded PUBs.
        backend: the BackendSpec.
        options: the job's validated options (``simulator.noise_model`` makes it noisy).
        max_memory: the limit in bytes; default :func:`..execution.cost.max_job_memory`.

    Returns:
        The estimate (method and seconds per PUB), for the caller to keep.

    Raises:
        JobInputError: code ``job_too_large`` (D13), naming the field, the estimate and the limit.
    """
    most = _max_experiments(backend)
    if most is not None and len(pubs) > most:
        raise JobInputError(
            f"params.pubs: the job has {len(pubs)} PUBs; backend {backend.name!r} accepts at "
            f"most {most} per job (max_experiments). Split the job.",
            field="params.pubs",
            code="job_too_large",
        )
    noisy = backend.properties is not None or (
        (options.get("simulator") or {}).get("noise_model") is not None
    )
    estimate = estimate_job(program_id, pubs, noisy=noisy)
    limit = max_job_memory() if max_memory is None else int(max_memory)
    need = estimate.memory_bytes
    if need <= limit:
        return estimate
    allows = f"this server allows {format_bytes(limit)} per job (--max-job-memory)"
    i = estimate.largest
    pub = estimate.pubs[i]
    if pub.state_bytes > limit:
        raise JobInputError(
            f"params.pubs[{i}]: {pub.what} needs ~{format_bytes(pub.state_bytes)}; {allows}. "
            "Use fewer active qubits.",
            field=f"params.pubs[{i}]",
            code="job_too_large",
        )
    results = sum(p.result_bytes for p in estimate.pubs)
    what = "observables" if program_id == "estimator" else "samples (shots x classical bits)"
    raise JobInputError(
        f"params.pubs: the job needs ~{format_bytes(need)} (its {what} ~"
        f"{format_bytes(results)}, largest state {pub.what} ~{format_bytes(pub.state_bytes)}); "
        f"{allows}. Split the job or ask for fewer shots.",
        field="params.pubs",
        code="job_too_large",
    )


_AER_MEMORY = re.compile(r"Required memory: (\d+)M, max memory: (\d+)M")


def out_of_memory_reason(exc: BaseException) -> str:
    """A failure's reason, with Aer's memory errors said plainly ("out of memory: ...").

    Aer reports ``Insufficient memory to run circuit ... Required memory: 16384M, max memory:
    4096M`` (or an overflowed ``18446744073709551615M`` for very wide circuits); the job's reason
    names what was needed and the per-job limit instead.
    """
    text = getattr(exc, "message", None) or str(exc)
    match = _AER_MEMORY.search(text)
    if match is None and "Insufficient memory" not in text:
        return text
    allows = f"this server allows {format_bytes(max_job_memory())} per job (--max-job-memory)"
    if match is None:
        return f"out of memory: the simulation needs more memory than {allows}"
    need = int(match.group(1))
    needs = "more than 16 EiB" if need >= 2**63 // 2**20 else f"~{format_bytes(need * 2**20)}"
    return f"out of memory: the simulation needs {needs}; {allows}"
