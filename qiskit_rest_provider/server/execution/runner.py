"""Run a prepared job on Qiskit Aer and encode its result (in a worker process).

:func:`execute_job` simulates the PUBs that admission
(:func:`qiskit_rest_provider.server.jobs.admission.prepare_job`) decoded and validated — sampler:
:mod:`.sampler`, estimator: :mod:`.estimator` — with the backend's noise model, and encodes the
result in the form the job asked for. Simulator settings (``QISKIT_REST_AER_THREADS``,
``QISKIT_REST_AER_MAX_MEMORY_MB``) live in :mod:`.simulators`.

Example (both steps in one process here; on the server they run in two):
    >>> from qiskit import QuantumCircuit
    >>> from qiskit.primitives.containers.sampler_pub import SamplerPub
    >>> from qiskit_rest_provider.server.backends.catalog import BackendCatalog
    >>> from qiskit_rest_provider.server.jobs.admission import prepare_job
    >>> from qiskit_rest_provider.wire.pubs import encode_sampler_params
    >>> from qiskit_rest_provider.wire.results import decode_result
    >>> bell = QuantumCircuit(2)
    >>> _ = bell.h(0), bell.cx(0, 1), bell.measure_all()
    >>> params = encode_sampler_params([SamplerPub.coerce(bell, shots=100)])
    >>> backend = BackendCatalog.load().get("rest_simulator")
    >>> prepared = prepare_job("sampler", params, backend)
    >>> outcome = execute_job(prepared, backend)
    >>> bits = decode_result(outcome.result_body)[0].data.meas
    >>> sorted(bits.get_counts()), bits.num_shots
    (['00', '11'], 100)
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ...wire import protocol
from ...wire.options import resolved_twirling
from .base import ExecutionOutcome, JobPart, PreparedJob
from .cost import out_of_memory_reason
from .simulators import (
    AER_MAX_MEMORY_ENV,
    AER_THREADS_ENV,
    active_qubits,
    job_noise_model,
    simulator_for,
    simulator_metadata,
)

logger = logging.getLogger(__name__)

__all__ = [
    "AER_MAX_MEMORY_ENV",
    "AER_THREADS_ENV",
    "ExecutionOutcome",
    "PreparedJob",
    "execute_job",
]


def _execution_spans(spans: list) -> Any:
    """Execution spans (``DoubleSliceSpan`` per Aer run) as :mod:`wire.results` encodes them."""
    from ...wire._spans import DoubleSliceSpan, ExecutionSpans

    return ExecutionSpans([DoubleSliceSpan(start, stop, slices) for start, stop, slices in spans])


def execute_job(
    prepared: PreparedJob, backend: Any, part: JobPart | None = None
) -> ExecutionOutcome:
    """Simulate a prepared job and encode its result.

    Args:
        prepared: from :func:`~qiskit_rest_provider.server.jobs.admission.prepare_job`.
        backend: the BackendSpec it was prepared for.
        part: set when ``prepared`` holds one part of a split job (:mod:`.split`): the outcome
            then carries per-PUB pieces (``pieces``, and ``chunk_arrays`` for a PUB of which only
            some shot chunks ran) and the result-level ``result_metadata`` instead of a body.

    Returns:
        The encoded result body, the simulation time (``quantum_seconds``) and metrics
        ``{"num_circuits", "num_qubits", "circuit_depths", "stage_seconds": {...}}``
        (``num_qubits`` counts the qubits each circuit actually uses).

    Raises:
        RuntimeError: the simulation failed; the message is the job's failure reason.
    """
    from ...wire.results import encode_result

    if prepared.program_id == protocol.EXECUTOR:
        from .executor_program import run_executor_job

        return run_executor_job(prepared, backend)
    if prepared.program_id == protocol.NOISE_LEARNER:
        from .noise_learner_program import run_noise_learner_job

        return run_noise_learner_job(prepared, backend)
    t0 = time.perf_counter()
    simulator, noisy = simulator_for(
        backend, prepared.options, (pub.circuit for pub in prepared.pubs)
    )
    seed_simulator = prepared.options.get("simulator", {}).get("seed_simulator")
    extra: dict[str, Any] = {}
    try:
        if prepared.program_id == protocol.SAMPLER:
            from .sampler import run_sampler_pubs
            from .suppression import run_suppressed_sampler_pubs, sampler_suppression_applies

            if sampler_suppression_applies(prepared.options):  # [mitigation] twirling, DD
                result, simulate, spans = run_suppressed_sampler_pubs(
                    prepared.pubs,
                    backend,
                    prepared.options,
                    seed=seed_simulator,
                    pub_indices=None if part is None else part.pub_indices,
                )
            else:
                result, simulate, spans = run_sampler_pubs(
                    prepared.pubs,
                    simulator,
                    seed=seed_simulator,
                    noisy=noisy,
                    pub_indices=None if part is None else part.pub_indices,
                    offsets=None if part is None else part.offsets,
                    chunks=None if part is None else part.chunks,
                )
            result.metadata.setdefault("simulator", simulator_metadata(simulator, noisy))
            result.metadata["execution"] = {"execution_spans": _execution_spans(spans)}
        else:
            from .estimator import readout_from_noise_model, run_estimator_pubs
            from .mitigation import estimator_mitigation_applies, run_mitigated_estimator_pubs

            level = prepared.resilience_level
            level = protocol.DEFAULT_RESILIENCE_LEVEL if level is None else level
            pub_indices = None if part is None else part.pub_indices
            options = prepared.options
            if estimator_mitigation_applies(options, level, noisy=noisy):  # [mitigation]
                result, simulate, resilience = run_mitigated_estimator_pubs(
                    prepared.pubs,
                    backend,
                    options,
                    level,
                    noisy=noisy,
                    shots=prepared.pub_shots or [int(1 / p.precision**2) for p in prepared.pubs],
                    seed=seed_simulator
                    if seed_simulator is not None
                    else options.get("seed_estimator"),
                    pub_indices=pub_indices,
                )
                result.metadata.setdefault("dynamical_decoupling", options["dynamical_decoupling"])
                result.metadata["resilience_level"] = level
                # the sampled programs (calibration, twirled, folded) run with the job's plan
                result.metadata["simulator"] = simulator_metadata(simulator, noisy)
                extra["estimation_methods"] = ["sampled"] * len(prepared.pubs)
            else:
                readout = None
                if noisy and level == 0:
                    readout = readout_from_noise_model(job_noise_model(backend, options))
                    readout = readout or None
                result, simulate, infos = run_estimator_pubs(
                    prepared.pubs,
                    simulator,
                    noisy=noisy,
                    seed_estimator=options.get("seed_estimator"),
                    seed_simulator=seed_simulator,
                    shots=prepared.pub_shots or None,
                    readout=readout,
                    pub_indices=pub_indices,
                )
                result.metadata.update(
                    {
                        "resilience_level": level,
                        "dynamical_decoupling": options["dynamical_decoupling"],
                        "twirling": resolved_twirling(options, level if noisy else 0),
                        "resilience": {
                            "measure_mitigation": False,
                            "zne_mitigation": False,
                            "pec_mitigation": False,
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
    pieces: list[bytes | None] | None = None
    chunk_arrays: dict[int, dict[str, Any]] = {}
    if part is None:
        body = encode_result(result, qiskit=prepared.support_qiskit)
    else:
        from .split import part_pieces

        body = b""
        pieces, chunk_arrays = part_pieces(result, part, qiskit=prepared.support_qiskit)
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
    return ExecutionOutcome(
        result_body=body,
        quantum_seconds=simulate,
        metrics=metrics,
        pieces=pieces,
        chunk_arrays=chunk_arrays,
        result_metadata=None if part is None else dict(result.metadata),
    )
