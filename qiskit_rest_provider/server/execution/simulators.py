"""The Aer simulators the runner uses: settings, per-process caching, noise-model restriction.

A job on a 127-qubit device typically touches a handful of qubits. Aer truncates the idle
qubits itself, but it converts the *whole* noise model for every run: with the 127-qubit
device's model (~900 local errors) that costs ~0.35 s per run, against ~0.01 s for the same job
with the model restricted to the qubits the job touches (same samples for the same seed,
measured). So the simulator for a noisy job carries only the errors on its active qubits;
restricted simulators are cached per (model, active qubits, method) in the worker process.

The method is the one admission chose (:mod:`.method`, carried in the prepared options); a
stabilizer run with noise gets the Pauli approximation of the noise model
(:func:`pauli_noise_model`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any

from qiskit.circuit import QuantumCircuit

from ..backends.noise import noise_model_from_dict
from .method import PAULI_TWIRLED, plan_of

logger = logging.getLogger(__name__)

__all__ = [
    "AER_MAX_MEMORY_ENV",
    "AER_THREADS_ENV",
    "active_qubits",
    "aer_settings",
    "job_noise_model",
    "pauli_noise_model",
    "restrict_noise_model",
    "simulator_for",
    "simulator_metadata",
]

AER_THREADS_ENV = "QISKIT_REST_AER_THREADS"
"""Environment variable: OpenMP threads per Aer simulation (unset/0 = Aer's default, all cores).

Set it to ``cores // workers`` when running several worker processes, so that simulations
do not oversubscribe the CPU.
"""

AER_MAX_MEMORY_ENV = "QISKIT_REST_AER_MAX_MEMORY_MB"
"""Environment variable: memory cap (MiB) for one simulation (unset/0 = Aer's default).

A circuit needing more fails with a clear reason instead of exhausting the server's memory.
"""

AER_DEVICE_ENV = "QISKIT_REST_AER_DEVICE"
"""Environment variable: Aer ``device`` (``GPU`` or ``CPU``; unset = Aer's default, CPU)."""

_CACHE_LIMIT = 64
_SIMULATORS: dict[tuple, Any] = {}


def aer_settings() -> dict[str, Any]:
    """``AerSimulator`` options for every simulation of this process."""
    # Shot branching (trajectories sharing their state until a noise or measurement outcome
    # differs) is off: with qiskit-aer 0.18 it mis-weights branches under device noise, also
    # for final-measurement circuits (2 runs in 8 of an 18-PUB noisy job on rest_hex_127q gave
    # a PUB's `h; measure` 74/26 or scrambled another register; 0 in 8 without it). It was
    # ~10x faster for noisy statevector trajectories; the method choice (density matrix, MPS,
    # stabilizer) keeps most noisy jobs off that path.
    settings: dict[str, Any] = {"shot_branching_enable": False}
    for env, key in (
        (AER_THREADS_ENV, "max_parallel_threads"),
        (AER_MAX_MEMORY_ENV, "max_memory_mb"),
    ):
        raw = os.environ.get(env, "").strip()
        if raw:
            try:
                value = int(raw)
            except ValueError:
                logger.warning("ignoring %s=%r: not an integer", env, raw)
                continue
            if value > 0:
                settings[key] = value
    device = os.environ.get(AER_DEVICE_ENV, "").strip().upper()
    if device in ("CPU", "GPU"):  # set per task on Dask GPU workers (execution.dask_preload)
        settings["device"] = device
    return settings


def active_qubits(circuits: Iterable[QuantumCircuit]) -> frozenset[int]:
    """Indices of the qubits any (non-barrier) instruction of the circuits touches."""
    active: set[int] = set()
    for circuit in circuits:
        index = {q: i for i, q in enumerate(circuit.qubits)}
        for inst in circuit.data:
            if inst.name != "barrier":  # not inst.operation: that builds a Python gate object
                active.update(index[q] for q in inst.qubits)
    return frozenset(active)


def restrict_noise_model(model: Any, qubits: frozenset[int]) -> Any:
    """A copy of ``model`` keeping only the local errors whose qubits all lie in ``qubits``.

    All-qubit (default) errors are kept. Models with non-local errors are returned unchanged
    (their semantics do not restrict cleanly).
    """
    from qiskit_aer.noise import NoiseModel

    if getattr(model, "_nonlocal_quantum_errors", None):
        return model
    out = NoiseModel(basis_gates=model.basis_gates)
    for name, error in getattr(model, "_default_quantum_errors", {}).items():
        out.add_all_qubit_quantum_error(error, name, warnings=False)
    default_readout = getattr(model, "_default_readout_error", None)
    if default_readout is not None:
        out.add_all_qubit_readout_error(default_readout, warnings=False)
    for name, by_qubits in model._local_quantum_errors.items():
        for qargs, error in by_qubits.items():
            if set(qargs) <= qubits:
                out.add_quantum_error(error, name, qargs, warnings=False)
    for qargs, error in model._local_readout_errors.items():
        if set(qargs) <= qubits:
            out.add_readout_error(error, qargs, warnings=False)
    # [mitigation] keep the T1/T2 relaxation of idle ``delay``s (a custom noise pass): without it
    # a restricted model has noiseless delays and dynamical decoupling cannot show.
    out._custom_noise_passes = list(getattr(model, "_custom_noise_passes", []))
    return out


def _pauli_twirl(error: Any) -> Any:
    """The Pauli channel of ``error``: the diagonal of its process (chi) matrix.

    Twirling a channel over the Pauli group keeps exactly the diagonal of its chi matrix in the
    Pauli basis, so ``p(P) = chi[P, P] / sum(diag)``: a depolarizing error stays itself, thermal
    relaxation becomes its X/Y/Z flip probabilities (same average gate fidelity).
    """
    import numpy as np
    from qiskit.quantum_info import Chi, pauli_basis
    from qiskit_aer.noise import pauli_error

    weights = np.clip(np.real(np.diag(Chi(error.to_quantumchannel()).data)), 0.0, None)
    weights = weights / weights.sum()
    labels = pauli_basis(error.num_qubits).to_labels()
    return pauli_error([(label, float(w)) for label, w in zip(labels, weights) if w > 1e-15])


def pauli_noise_model(model: Any) -> Any:
    """``model`` with every quantum error replaced by its Pauli twirl (readout errors kept).

    What the stabilizer method can simulate: Pauli errors keep a Clifford circuit Clifford.
    Custom noise passes (the relaxation of ``delay``) are left out, as the restricted models
    leave them out.

    Raises:
        ValueError: the model has non-local errors (they have no per-gate twirl here).
    """
    from qiskit_aer.noise import NoiseModel

    if getattr(model, "_nonlocal_quantum_errors", None):
        raise ValueError("a noise model with non-local errors has no Pauli approximation here")
    twirled: dict[int, Any] = {}  # the device model shares error objects between gates

    def twirl(error: Any) -> Any:
        key = id(error)
        if key not in twirled:
            twirled[key] = _pauli_twirl(error)
        return twirled[key]

    out = NoiseModel(basis_gates=model.basis_gates)
    for name, error in getattr(model, "_default_quantum_errors", {}).items():
        out.add_all_qubit_quantum_error(twirl(error), name, warnings=False)
    default_readout = getattr(model, "_default_readout_error", None)
    if default_readout is not None:
        out.add_all_qubit_readout_error(default_readout, warnings=False)
    for name, by_qubits in model._local_quantum_errors.items():
        for qargs, error in by_qubits.items():
            out.add_quantum_error(twirl(error), name, qargs, warnings=False)
    for qargs, error in model._local_readout_errors.items():
        out.add_readout_error(error, qargs, warnings=False)
    return out


def _cached(key: tuple, build: Any) -> Any:
    sim = _SIMULATORS.get(key)
    if sim is None:
        if len(_SIMULATORS) >= _CACHE_LIMIT:
            _SIMULATORS.clear()
        sim = _SIMULATORS[key] = build()
    return sim


def job_noise_model(backend: Any, options: dict) -> Any:
    """The full noise model of a job: ``options.simulator.noise_model`` or the backend's."""
    custom = options.get("simulator", {}).get("noise_model")
    return noise_model_from_dict(custom) if custom is not None else backend.noise_model


def simulator_for(backend: Any, options: dict, circuits: Iterable[QuantumCircuit]) -> tuple:
    """The ``AerSimulator`` for a job and whether it simulates noise.

    Args:
        backend: the BackendSpec (its ``noise_model`` is ``None`` for an ideal backend).
        options: the job's validated options (``simulator.noise_model`` overrides the backend's;
            the plan admission chose, :data:`.method.PLAN_KEY`, sets the method).
        circuits: the job's circuits (their active qubits select the noise model's part).
    """
    from qiskit_aer import AerSimulator

    settings = aer_settings()
    plan = plan_of(options)
    method = plan["method"] if plan else "automatic"
    pauli = bool(plan and plan.get("noise_approximation") == PAULI_TWIRLED)
    settings["method"] = method
    custom = options.get("simulator", {}).get("noise_model")
    model = noise_model_from_dict(custom) if custom is not None else backend.noise_model
    if model is None:
        ideal_key: tuple = ("ideal", tuple(settings.items()))
        return _cached(ideal_key, lambda: AerSimulator(**settings)), False
    qubits = active_qubits(circuits)

    def build() -> Any:
        restricted = restrict_noise_model(model, qubits)
        return AerSimulator(
            noise_model=pauli_noise_model(restricted) if pauli else restricted, **settings
        )

    if custom is not None:
        return build(), True
    key = (
        backend.name,
        getattr(backend, "fingerprint", None),
        id(model),
        qubits,
        pauli,
        tuple(settings.items()),
    )
    return _cached(key, build), True


def simulator_metadata(simulator: Any, noisy: bool) -> dict[str, Any]:
    """``metadata["simulator"]`` of a result: the method that ran and the noise it used."""
    method = str(getattr(simulator.options, "method", "automatic"))
    pauli = noisy and method == "stabilizer"
    return {
        "method": method,
        "noisy": bool(noisy),
        "noise_approximation": PAULI_TWIRLED if pauli else None,
    }
