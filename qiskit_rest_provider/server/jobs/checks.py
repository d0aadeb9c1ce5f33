"""The checks every program's admission shares: ISA, backend limits, memory, error form.

Each failure is a :class:`JobInputError` (HTTP 400) whose message starts with the offending
field. :mod:`.admission` (sampler, estimator) and :mod:`.executor_admission` (executor) both use
them, so every program is held to the same rules.
"""

from __future__ import annotations

import re
from typing import Any

from qiskit.circuit import QuantumCircuit

from ...wire.isa import unsupported_instructions
from ..execution.cost import JobEstimate, estimate_job, format_bytes, max_job_memory
from ..execution.method import PLAN_KEY, MethodError, choose_job_method
from ..execution.sampled_cost import sampled_path, sampled_shapes

__all__ = [
    "JobInputError",
    "check_circuits",
    "check_job_size",
    "check_rep_delay",
]

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


def _check_isa(circuit: QuantumCircuit, target: Any, pub_index: int, backend_name: str) -> None:
    """Raise :class:`JobInputError` for the first instruction the Target does not accept.

    The rule is the contract's (:func:`qiskit_rest_provider.wire.isa.unsupported_instructions`),
    the one the client checks before it submits, so both halves reject the same circuits.
    """
    rejected = unsupported_instructions(circuit, target, first_only=True)
    if not rejected:
        return
    issue = rejected[0]
    field = f"params.pubs[{pub_index}].circuit"
    if issue.reason == "angle_out_of_bounds":
        raise JobInputError(
            f"{field}: PUB {pub_index}: instruction '{issue.name}' on {list(issue.qargs)} "
            f"{issue.detail}",
            field=field,
            code="angle_out_of_bounds",
        )
    where = f" on {issue.where}" if issue.qargs else ""
    raise JobInputError(
        f"{field}: PUB {pub_index} is not ISA for backend {backend_name!r}: "
        f"instruction '{issue.name}'{where} {issue.detail}. Transpile the circuit for the "
        "backend's Target first.",
        field=field,
        code="non_isa_circuit",
    )


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
    level: int | None = None,
    shots: list[int] | None = None,
) -> JobEstimate:
    """Refuse a job that cannot fit: more PUBs than ``max_experiments``, or over the memory limit.

    Chooses the job's simulation method (:mod:`..execution.method`: exact where it is
    affordable, else stabilizer with Pauli-twirled noise for Clifford circuits or a matrix
    product state; ``options.simulator.method`` forces one), estimates memory with that method
    (:mod:`..execution.cost`: active qubits, results, observables) and compares it with the
    per-job limit (``serve --max-job-memory``), so an oversized job is a 400 naming both numbers
    instead of a worker killed for memory. The choice is written into ``options`` under
    :data:`..execution.method.PLAN_KEY`, so the worker runs the method that was sized. Options
    without a ``simulator`` group (the executor program's proxies) are sized for Aer's automatic
    method, which is what that program runs.

    A job that runs as a sampled program (an estimator with mitigation, twirling or decoupling;
    a twirled or decoupled sampler) is sized by what that program samples
    (:func:`..execution.sampled_cost.sampled_shapes`: randomizations, noise factors, measurement
    bases, folded gates), and its method is chosen for those circuits, which the worker then
    runs with it (:func:`..execution.suppression.run_program`).

    Args:
        program_id: ``"sampler"`` or ``"estimator"``.
        pubs: the decoded PUBs.
        backend: the BackendSpec.
        options: the job's validated options (``simulator.noise_model`` makes it noisy).
        max_memory: the limit in bytes; default :func:`..execution.cost.max_job_memory`.
        level: the estimator's resilience level (decides whether it is sampled, and how).
        shots: the estimator PUBs' shots (admission's rule), for the sampled path.

    Returns:
        The estimate (method and seconds per PUB), for the caller to keep.

    Raises:
        JobInputError: code ``job_too_large`` (D13), naming the field, the estimate and the limit;
            code ``invalid_option`` naming ``params.options.simulator.method`` for a forced
            method that cannot run the job (``stabilizer`` on a non-Clifford circuit).
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
    limit = max_job_memory() if max_memory is None else int(max_memory)
    sampled = sampled_path(program_id, options, level, noisy)
    if "simulator" in options:  # a primitive's validated tree: choose, and run what was sized
        forced = (options.get("simulator") or {}).get("method")
        sized: Any = pubs
        if sampled:
            sized = sampled_shapes(
                program_id, pubs, options, level=level if noisy else 0, shots=shots
            )
        decoupled = bool((options.get("dynamical_decoupling") or {}).get("enable"))
        try:
            choice, estimate = choose_job_method(
                "sampler" if sampled else program_id,
                sized,
                noisy=noisy,
                forced=forced,
                max_memory=limit,
                pauli_approximation=not (sampled and decoupled),
            )
        except MethodError as exc:
            raise JobInputError(str(exc), field=exc.field, code="invalid_option") from None
        options[PLAN_KEY] = choice.to_dict()
    else:  # the executor program runs on Aer's automatic method: size it so
        estimate = estimate_job(program_id, pubs, noisy=noisy)
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
    what = "samples (shots x classical bits)"
    if sampled and program_id == "estimator":
        what = "samples (shots x randomizations x noise factors x measurement bases x qubits)"
    elif program_id == "estimator":
        what = "observables"
    raise JobInputError(
        f"params.pubs: the job needs ~{format_bytes(need)} (its {what} ~"
        f"{format_bytes(results)}, largest state {pub.what} ~{format_bytes(pub.state_bytes)}); "
        f"{allows}. Split the job or ask for fewer shots.",
        field="params.pubs",
        code="job_too_large",
    )


_FIELD_RE = re.compile(r"^((?:params\.)?[A-Za-z_][\w.\[\]'\"]*):\s")


def _from_wire_error(exc: Exception) -> JobInputError:
    # QiskitError.__str__ quotes the message (repr); ``.message`` is the plain text.
    message = getattr(exc, "message", None) or str(exc)
    if not message.startswith("params"):
        message = f"params.{message}"
    match = _FIELD_RE.match(message)
    field_name = match.group(1) if match else "params"
    code = "invalid_option" if field_name.startswith("params.options.") else "invalid_params"
    return JobInputError(message, field=field_name, code=code)
