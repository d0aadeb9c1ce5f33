"""Validate a job's ``params`` against a backend, and run it on Qiskit Aer.

Two entry points, used at two moments of a job's life:

* :func:`prepare_job` runs in the request handler (via a thread pool) before anything is stored:
  it decodes the PUBs (:mod:`qiskit_rest_provider.wire`), validates the options tree, checks
  that every circuit is ISA for the backend's Target and that the work is within the server's
  limits. Any problem raises :class:`JobInputError` (HTTP 400) naming the field.
* :func:`execute_job` runs in a worker process: it simulates the PUBs (sampler:
  :mod:`.sampler_exec`, estimator: :mod:`.estimator_exec`) with the backend's noise model and
  encodes the result in the form the job asked for. :func:`run_job` does both, for workers that
  only have the stored params (after a restart).

The ISA check and the limits that keep one request from hogging the server live in
:mod:`.job_checks`; simulator settings (``QISKIT_REST_AER_THREADS``,
``QISKIT_REST_AER_MAX_MEMORY_MB``) in :mod:`.simulators`.

Example:
    >>> prepared = prepare_job("sampler", params, catalog.get("rest_simulator"))  # doctest: +SKIP
    >>> outcome = execute_job(prepared, catalog.get("rest_simulator"))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
import re
import time
from dataclasses import dataclass, field
from typing import Any

from ...exceptions import WireFormatError
from ..jobs.admission import (
    MAX_ESTIMATOR_ELEMENTS,
    MAX_ESTIMATOR_SETS,
    MAX_TOTAL_SHOTS,
    JobInputError,
    check_circuits,
    check_estimator_limits,
    check_job_size,
    check_rep_delay,
    check_sampler_limits,
    out_of_memory_reason,
)
from ..options import OptionsError, validate_options
from .simulators import (
    AER_MAX_MEMORY_ENV,
    AER_THREADS_ENV,
    active_qubits,
    job_noise_model,
    simulator_for,
)

logger = logging.getLogger(__name__)

__all__ = [
    "AER_MAX_MEMORY_ENV",
    "AER_THREADS_ENV",
    "MAX_ESTIMATOR_ELEMENTS",
    "MAX_ESTIMATOR_SETS",
    "MAX_TOTAL_SHOTS",
    "PROGRAMS",
    "ExecutionOutcome",
    "JobInputError",
    "PreparedJob",
    "execute_job",
    "prepare_job",
    "run_job",
]

PROGRAMS = ("sampler", "estimator")


@dataclass
class PreparedJob:
    """A validated job, ready to execute (picklable: it travels to worker processes)."""

    program_id: str
    backend_name: str
    pubs: list
    options: dict
    support_qiskit: bool
    resilience_level: int | None = None
    pub_shots: list = field(default_factory=list)  # estimator: shots behind each precision


@dataclass
class ExecutionOutcome:
    """What a worker hands back: the encoded result body and what it cost."""

    result_body: bytes
    quantum_seconds: float
    metrics: dict


# ----------------------------------------------------------------------------- preparation

_FIELD_RE = re.compile(r"^((?:params\.)?[A-Za-z_][\w.\[\]'\"]*):\s")


def _from_wire_error(exc: Exception) -> JobInputError:
    # QiskitError.__str__ quotes the message (repr); ``.message`` is the plain text.
    message = getattr(exc, "message", None) or str(exc)
    if not message.startswith("params"):
        message = f"params.{message}"
    match = _FIELD_RE.match(message)
    return JobInputError(message, field=match.group(1) if match else "params")


def _estimator_shots(params: dict, pubs: list, options: dict) -> list[int | None]:
    """Apply ``options.default_shots`` (precision = 1/sqrt(shots)) to PUBs without a precision."""
    shots = options.get("default_shots")
    out: list[int | None] = [None] * len(pubs)
    if shots is None or params.get("precision") is not None:
        return out
    raw = params.get("pubs") or []
    for i, pub in enumerate(pubs):
        entry = raw[i] if i < len(raw) else None
        explicit = isinstance(entry, (list, tuple)) and len(entry) > 3 and entry[3] is not None
        if not explicit:
            pubs[i] = type(pub)(
                pub.circuit, pub.observables, pub.parameter_values, 1.0 / math.sqrt(shots)
            )
            out[i] = int(shots)
    return out


def prepare_job(program_id: str, params: dict, backend: Any) -> PreparedJob:
    """Decode and validate ``params`` for ``program_id`` on ``backend``.

    Args:
        program_id: ``"sampler"`` or ``"estimator"``.
        params: the job's ``params`` object (protocol §4).
        backend: the :class:`~qiskit_rest_provider.server.backends.catalog.BackendSpec` to run on.

    Returns:
        The validated job.

    Raises:
        JobInputError: naming the field (``code="program_not_found"`` for an unknown program).
    """
    from ...wire import pubs as wire_pubs  # lazily: wire pulls in the QASM machinery

    if program_id not in PROGRAMS:
        raise JobInputError(
            f"program_id: program {program_id!r} not found (known: sampler, estimator)",
            field="program_id",
            code="program_not_found",
        )
    if not isinstance(params, dict):
        raise JobInputError("params: expected an object", field="params")
    try:
        options = validate_options(program_id, params.get("options"), path="params.options")
    except OptionsError as exc:
        raise JobInputError(str(exc), field=exc.path, code="invalid_option") from None
    try:
        if program_id == "sampler":
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
    if program_id == "sampler":
        check_sampler_limits(pubs, backend)
        resilience_level = None
    else:
        pub_shots = _estimator_shots(params, pubs, options)
        check_estimator_limits(pubs)
        resilience_level = 1 if decoded.resilience_level is None else decoded.resilience_level
    check_job_size(program_id, pubs, backend, options)
    return PreparedJob(
        program_id=program_id,
        backend_name=backend.name,
        pubs=pubs,
        options=options,
        support_qiskit=bool(decoded.support_qiskit),
        resilience_level=resilience_level,
        pub_shots=pub_shots,
    )


# ----------------------------------------------------------------------------- execution


def _execution_spans(spans: list) -> Any:
    """Execution spans (``DoubleSliceSpan`` per Aer run) as :mod:`wire.results` encodes them."""
    from ...wire._spans import DoubleSliceSpan, ExecutionSpans

    return ExecutionSpans([DoubleSliceSpan(start, stop, slices) for start, stop, slices in spans])


def execute_job(prepared: PreparedJob, backend: Any) -> ExecutionOutcome:
    """Simulate a prepared job and encode its result.

    Args:
        prepared: from :func:`prepare_job`.
        backend: the BackendSpec it was prepared for.

    Returns:
        The encoded result body, the simulation time (``quantum_seconds``) and metrics
        ``{"num_circuits", "num_qubits", "circuit_depths", "stage_seconds": {...}}``
        (``num_qubits`` counts the qubits each circuit actually uses).

    Raises:
        RuntimeError: the simulation failed; the message is the job's failure reason.
    """
    from ...wire.results import encode_result

    t0 = time.perf_counter()
    simulator, noisy = simulator_for(
        backend, prepared.options, (pub.circuit for pub in prepared.pubs)
    )
    seed_simulator = prepared.options.get("simulator", {}).get("seed_simulator")
    extra: dict[str, Any] = {}
    try:
        if prepared.program_id == "sampler":
            from .sampler import run_sampler_pubs

            result, simulate, spans = run_sampler_pubs(
                prepared.pubs, simulator, seed=seed_simulator, noisy=noisy
            )
            result.metadata["execution"] = {"execution_spans": _execution_spans(spans)}
        else:
            from .estimator import readout_from_noise_model, run_estimator_pubs

            level = prepared.resilience_level
            readout = None
            if noisy and level == 0:
                readout = readout_from_noise_model(job_noise_model(backend, prepared.options))
                readout = readout or None

            result, simulate, infos = run_estimator_pubs(
                prepared.pubs,
                simulator,
                noisy=noisy,
                seed_estimator=prepared.options.get("seed_estimator"),
                seed_simulator=seed_simulator,
                shots=prepared.pub_shots or None,
                readout=readout,
            )
            options = prepared.options
            result.metadata.update(
                {
                    "resilience_level": prepared.resilience_level,
                    "dynamical_decoupling": options["dynamical_decoupling"],
                    "twirling": options["twirling"],
                    "resilience": {
                        "measure_mitigation": bool(noisy and (level or 0) >= 1),
                        "zne_mitigation": False,
                        "pec_mitigation": False,
                        "note": (
                            "readout error is simulated at resilience level 0 and removed "
                            "(ideal measurement mitigation) at levels 1-2; gate-error "
                            "mitigation is not simulated"
                        ),
                    },
                }
            )
            extra["estimation_methods"] = [info.method for info in infos]
    except MemoryError:
        raise RuntimeError(
            "simulation failed: out of memory: not enough memory to simulate the circuit on "
            "this server"
        ) from None
    except RuntimeError as exc:
        reason = out_of_memory_reason(exc)
        if reason.startswith("out of memory"):  # Aer's "Insufficient memory ..." said plainly
            raise RuntimeError(f"simulation failed: {reason}") from None
        raise
    except Exception as exc:  # Aer raises AerError, ValueError, ...; keep the reason readable
        logger.debug("simulation of a %s job failed", prepared.program_id, exc_info=True)
        raise RuntimeError(f"simulation failed: {out_of_memory_reason(exc)}") from exc
    t_sim_end = time.perf_counter()
    body = encode_result(result, qiskit=prepared.support_qiskit)
    t_end = time.perf_counter()
    metrics = {
        "num_circuits": len(prepared.pubs),
        "num_qubits": [len(active_qubits([pub.circuit])) for pub in prepared.pubs],
        "circuit_depths": [int(pub.circuit.depth()) for pub in prepared.pubs],
        "stage_seconds": {
            "parse": 0.0,
            "simulate": t_sim_end - t0,
            "encode": t_end - t_sim_end,
        },
        **extra,
    }
    return ExecutionOutcome(result_body=body, quantum_seconds=simulate, metrics=metrics)


def run_job(program_id: str, params: dict, backend: Any) -> ExecutionOutcome:
    """Prepare and execute in one go (a worker that only has the stored ``params``).

    ``stage_seconds["parse"]`` then holds the preparation time.
    """
    t0 = time.perf_counter()
    prepared = prepare_job(program_id, params, backend)
    parse = time.perf_counter() - t0
    outcome = execute_job(prepared, backend)
    outcome.metrics["stage_seconds"]["parse"] = parse
    return outcome
