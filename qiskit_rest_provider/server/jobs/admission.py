"""Admission: the one place a job is accepted (validation, limits) before anything is stored.

:func:`prepare_job` runs in the request handler (via a thread pool): it checks ``params`` against
the program's ``ibm-quantum-schemas`` model (:mod:`qiskit_rest_provider.wire.contract`: unknown
keys anywhere are refused), validates the options tree (:mod:`qiskit_rest_provider.wire.options`),
decodes the PUBs (:mod:`qiskit_rest_provider.wire.pubs`), checks that every circuit is ISA for the
backend's Target (:mod:`qiskit_rest_provider.wire.isa`) and that the work is within the server's
limits. The :class:`~qiskit_rest_provider.server.execution.base.PreparedJob` it returns is what
the executor runs.

Every failure is a :class:`JobInputError` (HTTP 400) whose message starts with the offending field
and says what would be accepted, e.g. which qubit pairs a two-qubit gate exists on.

Limits that keep one request from hogging the server: shots per PUB <= the backend's
``max_shots``; total samples (shots x parameter sets over all PUBs) <= :data:`MAX_TOTAL_SHOTS`;
estimator parameter sets <= :data:`MAX_ESTIMATOR_SETS` and expectation values
<= :data:`MAX_ESTIMATOR_ELEMENTS` per job; PUBs <= the backend's ``max_experiments``; the
estimated memory (:mod:`..execution.cost`) <= the per-job limit (:func:`check_job_size`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...exceptions import WireFormatError
from ...wire import protocol
from ...wire.contract import validate_params
from ...wire.options import OptionsError, check_options, resolved_twirling
from ..backends.noise import noise_model_from_dict
from ..execution.base import PreparedJob
from .checks import (
    JobInputError,
    _from_wire_error,
    _max_shots,
    check_circuits,
    check_job_size,
    check_rep_delay,
)
from .mitigation_checks import check_suppression

__all__ = [
    "PROGRAMS",
    "MAX_ESTIMATOR_ELEMENTS",
    "MAX_ESTIMATOR_SETS",
    "MAX_TOTAL_SHOTS",
    "JobInputError",
    "check_circuits",
    "check_estimator_limits",
    "check_rep_delay",
    "check_job_size",
    "check_sampler_limits",
    "prepare_job",
    "validate_options",
]

PROGRAMS = (*protocol.PRIMITIVE_PROGRAMS, protocol.EXECUTOR, protocol.NOISE_LEARNER)
"""The programs this server admits jobs for."""

MAX_TOTAL_SHOTS = 10_000_000
"""Sampler: at most this many samples (shots × parameter sets, summed over PUBs) per job."""

MAX_ESTIMATOR_SETS = 100_000
"""Estimator: at most this many parameter sets (circuit simulations), summed over PUBs."""

MAX_ESTIMATOR_ELEMENTS = 10_000_000
"""Estimator: at most this many expectation values (broadcast elements), summed over PUBs."""


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


# ----------------------------------------------------------------------------- preparation
def validate_options(program_id: str, options: Any, *, path: str = "options") -> dict[str, Any]:
    """The server's view of a sampler/estimator ``options`` object, with its defaults filled in.

    :func:`qiskit_rest_provider.wire.options.check_options` (the checker the client's setters use
    too) plus one thing only the server can do: have Aer read a ``simulator.noise_model``
    document.

    Raises:
        OptionsError: naming the full key path of the first unknown or invalid key.

    Example:
        >>> validate_options("sampler", {"default_shots": 100})["twirling"]["strategy"]
        'active-accum'
    """
    return check_options(program_id, options, path, noise_model_reader=noise_model_from_dict)


def _shots_for(precision: float) -> int:
    """Shots whose shot-noise standard error is ``precision`` (1/64 -> 4096)."""
    return max(1, math.ceil(1.0 / precision**2 - 1e-9))


def _estimator_shots(params: dict, pubs: list, options: dict, level: int | None) -> list[int]:
    """Decide each PUB's shots (result metadata ``shots``) and the precision they give.

    A precision the PUB (or plain-form ``params.precision``) names is obeyed: shots =
    ``ceil(1/precision**2)``. Otherwise, as qiskit-ibm-runtime documents, twirling's
    ``num_randomizations * shots_per_randomization`` (both set, twirling on) takes precedence
    over ``options.default_shots``, which takes precedence over ``default_precision``
    (4096 shots at the default 1/64). PUBs whose shots come from a count get the precision
    ``1/sqrt(shots)``.
    """
    twirling = resolved_twirling(options, level)
    randomizations = twirling.get("num_randomizations")
    per_randomization = twirling.get("shots_per_randomization")
    twirled_shots = None
    if (
        (twirling["enable_gates"] or twirling["enable_measure"])
        and isinstance(randomizations, int)
        and isinstance(per_randomization, int)
    ):
        twirled_shots = randomizations * per_randomization
    count = twirled_shots if twirled_shots is not None else options.get("default_shots")
    run_precision = params.get("precision") is not None
    raw = params.get("pubs") or []
    out: list[int] = []
    for i, pub in enumerate(pubs):
        entry = raw[i] if i < len(raw) else None
        explicit = run_precision or (
            isinstance(entry, (list, tuple)) and len(entry) > 3 and entry[3] is not None
        )
        if explicit or count is None:
            out.append(_shots_for(float(pub.precision)))
            continue
        pubs[i] = type(pub)(
            pub.circuit, pub.observables, pub.parameter_values, 1.0 / math.sqrt(count)
        )
        out.append(int(count))
    return out


#: Nesting levels allowed in ``params`` (real jobs need about 10; deeper input is an attack on
#: the recursive validators, which would otherwise fail with a RecursionError → 500).
MAX_PARAMS_DEPTH = 64


def _too_deep(value: Any, path: str, limit: int) -> str | None:
    """The path of the first container nested deeper than ``limit``, or ``None`` (iterative)."""
    stack: list[tuple[Any, str, int]] = [(value, path, 1)]
    while stack:
        item, where, depth = stack.pop()
        if depth > limit:
            return where
        if isinstance(item, dict):
            stack.extend(
                (v, f"{where}.{k}", depth + 1)
                for k, v in item.items()
                if isinstance(v, (dict, list))
            )
        elif isinstance(item, list):
            stack.extend(
                (v, f"{where}[{i}]", depth + 1)
                for i, v in enumerate(item)
                if isinstance(v, (dict, list))
            )
    return None


def prepare_job(program_id: str, params: dict, backend: Any) -> PreparedJob:
    """Decode and validate ``params`` for ``program_id`` on ``backend``.

    Args:
        program_id: ``"sampler"``, ``"estimator"``, ``"executor"``
            (:mod:`.executor_admission`) or ``"noise-learner"`` (:mod:`.noise_learner_admission`).
        params: the job's ``params`` object (protocol §4).
        backend: the :class:`~qiskit_rest_provider.server.backends.catalog.BackendSpec` to run on.

    Returns:
        The validated job.

    Raises:
        JobInputError: naming the field (``code="program_not_found"`` for an unknown program).
    """
    from ...wire.circuits import admission_imports  # lazily: wire pulls in the QASM machinery

    # The job's circuits share one byte budget, and enter the import cache only if it is
    # accepted: rejected input never stays in the API process's memory (issue 15).
    with admission_imports():
        return _prepare_job(program_id, params, backend)


def _prepare_job(program_id: str, params: dict, backend: Any) -> PreparedJob:
    from ...wire import pubs as wire_pubs  # lazily: wire pulls in the QASM machinery

    if program_id not in PROGRAMS:
        raise JobInputError(
            f"program_id: program {program_id!r} not found (known: {', '.join(PROGRAMS)})",
            field="program_id",
            code="program_not_found",
        )
    if not isinstance(params, dict):
        raise JobInputError("params: expected an object", field="params")
    too_deep = _too_deep(params, "params", MAX_PARAMS_DEPTH)
    if too_deep:
        raise JobInputError(
            f"{too_deep}: nested deeper than {MAX_PARAMS_DEPTH} levels", field=too_deep
        )
    if program_id == protocol.EXECUTOR:
        from .executor_admission import prepare_executor_job

        return prepare_executor_job(params, backend)
    if program_id == protocol.NOISE_LEARNER:
        from .noise_learner_admission import prepare_noise_learner_job

        return prepare_noise_learner_job(params, backend)
    try:
        # The contract first: unknown keys (top level, options tree) and model-form PUBs.
        validate_params(program_id, params, accept_plain=True)
    except WireFormatError as exc:
        raise _from_wire_error(exc) from None
    try:
        options = validate_options(program_id, params.get("options"), path="params.options")
    except OptionsError as exc:
        raise JobInputError(str(exc), field=exc.path, code="invalid_option") from None
    try:
        if program_id == protocol.SAMPLER:
            decoded = wire_pubs.decode_sampler_params(
                params, num_qubits=backend.num_qubits, default_shots=options["default_shots"]
            )
        else:
            decoded = wire_pubs.decode_estimator_params(
                params,
                num_qubits=backend.num_qubits,
                default_precision=options["default_precision"],
            )
    except WireFormatError as exc:
        raise _from_wire_error(exc) from None
    pubs = list(decoded.pubs)
    check_rep_delay(options, backend)
    check_circuits(pubs, backend)
    pub_shots: list = []
    if program_id == protocol.SAMPLER:
        check_sampler_limits(pubs, backend)
        resilience_level = None
    else:
        resilience_level = (
            protocol.DEFAULT_RESILIENCE_LEVEL
            if decoded.resilience_level is None
            else decoded.resilience_level
        )
        pub_shots = _estimator_shots(params, pubs, options, resilience_level)
        check_estimator_limits(pubs)
    noisy = backend.is_noisy or options.get("simulator", {}).get("noise_model") is not None
    # [mitigation] 400 for what is not performed; sampled precisions within reach
    check_suppression(program_id, options, pubs, level=resilience_level, noisy=noisy)
    check_job_size(
        program_id, pubs, backend, options, level=resilience_level, shots=pub_shots or None
    )
    return PreparedJob(
        program_id=program_id,
        backend_name=backend.name,
        pubs=pubs,
        options=options,
        support_qiskit=bool(decoded.support_qiskit),
        resilience_level=resilience_level,
        pub_shots=pub_shots,
    )
