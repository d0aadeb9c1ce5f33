"""Error mitigation for the legacy ``estimator`` program: TREX, ZNE, twirling, decoupling.

The legacy program's options are performed with the official implementations, the same code
qiskit-ibm-runtime's client-side ``executor_estimator.Estimator`` runs:

1. the job's options tree becomes qiskit-ibm-runtime's ``EstimatorOptions`` and is finalized by
   its ``finalize_estimator_options`` (IBM's defaults per resilience level: 0 nothing; 1
   measurement twirling + TREX; 2 gate and measurement twirling + TREX + ZNE by gate folding
   with noise factors ``(1, 3, 5)`` and extrapolators ``("exponential", "linear")``);
2. its ``prepare`` builds a ``QuantumProgram`` with qiskit-mitigation's tasks
   (``MitigationTask``, ``GateFolding`` for ZNE, ``TREX`` calibration circuits sharing the
   twirled circuits' randomizations and shots) and samplomatic samplexes;
3. dynamical decoupling (:mod:`.suppression`) is applied to every item on the backend's durations;
4. qiskit-ibm-runtime's local ``run_quantum_program`` samples each randomization on the
   backend's noise model (readout errors included: TREX removes them from real calibration data,
   not by leaving them out of the model);
5. its ``estimator_v2_post_processor_v0_1`` computes ``evs``, ``stds``,
   ``ensemble_standard_error`` and, with ZNE, ``evs_noise_factors``, ``stds_noise_factors``,
   ``ensemble_stds_noise_factors``, ``evs_extrapolated``, ``stds_extrapolated``.

PEC (``pec_mitigation``, ``pec.max_overhead``, ``pec.noise_gain``) and PEA (``zne.amplifier =
"pea"``) run qiskit-mitigation's ``PEC``/``PEA`` tasks with a layer noise model: the one the job
gives in ``resilience.layer_noise_model`` (a ``NoiseLearner`` result, matched to the PUBs' layers
by :mod:`.given_layer_noise` and echoed in the result metadata, as IBM's service does), else one
computed from the device's noise model (:mod:`.layer_noise`: the Pauli-twirled noise of each boxed
layer, what a perfect noise learner converges to). What the server cannot perform is refused at
admission (:func:`qiskit_rest_provider.server.jobs.mitigation_checks.check_suppression`) with a
400 naming the option; options never performed (the learning experiment's, unless a layer noise
model is given and no learning is due) are refused by the shared options checker
(:data:`qiskit_rest_provider.wire.options.NOT_PERFORMED`).

Ideal backends: the resilience level's *implicit* techniques have no noise to act on there,
so the exact path of :mod:`.estimator` runs; options set explicitly are still performed.
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from qiskit.primitives.containers import DataBin, PrimitiveResult, PubResult

from ...wire.options import resolved_mitigation
from .compaction import compact_circuit, compact_observables, embed, relevant_qubits
from .given_layer_noise import (
    decode_layer_noise_model,
    finalized_options,
    given_noise_maps,
    needs_layer_noise,
    pub_layers,
)
from .layer_noise import layer_noise_model
from .simulators import job_noise_model
from .suppression import apply_decoupling, dd_metadata, program_seed, run_program

logger = logging.getLogger(__name__)

__all__ = [
    "estimator_mitigation_applies",
    "finalized_options",
    "run_mitigated_estimator_pubs",
]


def estimator_mitigation_applies(options: dict, level: int, *, noisy: bool) -> bool:
    """Whether the job runs as a mitigated/suppressed program (else the exact path runs).

    On an ideal backend only explicitly set techniques count (the level's defaults have nothing
    to act on there).
    """
    return any(resolved_mitigation(options, level if noisy else 0).values())


def _legacy_pub_metadata(raw: Any, pub: Any, shots: int, randomizations: int, noisy: bool) -> dict:
    meta: dict[str, Any] = {
        "target_precision": float(pub.precision),
        "shots": int(shots),
        "num_randomizations": int(randomizations),
        "circuit_metadata": dict(pub.circuit.metadata or {}),
        "simulation": {"method": "sampled", "readout_error": bool(noisy)},
    }
    zne = (raw.metadata.get("resilience") or {}).get("zne")
    if zne is not None:
        extrapolators = np.asarray(zne["extrapolators"]).ravel().tolist()
        meta["resilience"] = {"zne": {"extrapolator": extrapolators}}
    return meta


def run_mitigated_estimator_pubs(
    pubs: Sequence[Any],
    backend: Any,
    options: dict,
    level: int,
    *,
    noisy: bool,
    shots: Sequence[int],
    seed: int | None,
    pub_indices: Sequence[int] | None = None,
) -> tuple[PrimitiveResult, float, dict]:
    """Estimate every PUB as a mitigated program (one program per PUB).

    Args:
        pubs: validated PUBs (precision filled in).
        backend: the BackendSpec (its Target gives DD durations, its noise model the noise).
        options: the job's validated options tree.
        level: the job's resilience level.
        noisy: whether the backend (or ``simulator.noise_model``) has noise.
        shots: per PUB, the shots its precision stands for (admission's rule); twirling splits
            them by qiskit-ibm-runtime's shot rule, so metadata ``shots`` may round up.
        seed: ``simulator.seed_simulator`` or ``seed_estimator`` (per-PUB seeds derive from it).
        pub_indices: the PUBs' places in the job when they are a part of it (:mod:`.split`).

    Returns:
        ``(result, simulate_seconds, applied)``: ``applied`` is the job-level ``resilience``
        metadata (which techniques ran).
    """
    from qiskit_ibm_runtime.decoders.executor_estimator.post_processor_v0_1 import (
        estimator_v2_post_processor_v0_1,
    )
    from qiskit_ibm_runtime.executor_estimator.prepare import prepare

    dd_on = bool(options["dynamical_decoupling"]["enable"])
    given_model = options["resilience"].get("layer_noise_model")
    given = None
    if given_model is not None:  # admission checked it: no learning, its noise is used
        given = decode_layer_noise_model(given_model, backend.num_qubits)
    results = []
    simulate = 0.0
    total_pulses = 0
    final = finalized_options(options, level, noisy=noisy, shots=None)
    for index, pub in enumerate(pubs):
        final = finalized_options(options, level, noisy=noisy, shots=int(shots[index]))
        if 0 in tuple(pub.shape):  # nothing to estimate (Qiskit's reference: empty arrays)
            empty = np.zeros(tuple(pub.shape))
            data = {"evs": empty, "stds": empty, "ensemble_standard_error": empty}
            meta = {"target_precision": float(pub.precision), "shots": int(shots[index])}
            results.append(PubResult(DataBin(**data, shape=tuple(pub.shape)), metadata=meta))
            continue
        # only the qubits that matter are prepared and simulated (see compaction)
        width = pub.circuit.num_qubits
        qubits = relevant_qubits(pub.circuit, pub.observables)
        circuit, observables = pub.circuit, pub.observables
        if width:
            circuit = compact_circuit(pub.circuit, qubits)
            observables = compact_observables(pub.observables, width, qubits)
        bare = type(pub)(circuit, observables, pub.parameter_values, None)
        layers = 0
        if needs_layer_noise(final) and given is not None:
            _, _, unique = pub_layers(pub, final)
            final.resilience.layer_noise_model, matched = given_noise_maps(
                unique, circuit, qubits, given
            )
            layers = len(matched)
        elif needs_layer_noise(final):
            max_layers = options["resilience"]["layer_noise_learning"]["max_layers_to_learn"]
            final.resilience.layer_noise_model = layer_noise_model(
                circuit, final, job_noise_model(backend, options), max_layers, physical=qubits
            )
            layers = len(final.resilience.layer_noise_model)
            if max_layers is not None:
                layers = min(layers, max_layers)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            program, _ = prepare([bare], final, None, backend=None)
        if width:
            for item in program.items:
                item.circuit = embed(item.circuit, qubits, width)
        pulses = 0
        if dd_on:
            program, pulses = apply_decoupling(program, backend, options, keep=qubits)
        total_pulses += pulses
        # item shapes: (randomizations, *params), PEA (noise factors, randomizations, *params)
        shape = tuple(program.items[0].shape or (1,))
        pea = final.resilience.zne_mitigation and final.resilience.zne.amplifier == "pea"
        randomizations = int(shape[1] if pea and len(shape) > 1 else shape[0])
        t0 = time.perf_counter()
        raw_result = run_program(
            program,
            backend,
            options,
            program_seed(seed, index if pub_indices is None else pub_indices[index]),
        )
        simulate += time.perf_counter() - t0
        raw = estimator_v2_post_processor_v0_1(raw_result)[0]
        pub_meta = _legacy_pub_metadata(
            raw, pub, randomizations * program.shots, randomizations, noisy
        )
        if dd_on:
            pub_meta["dynamical_decoupling"] = {"num_pulses": pulses}
        if layers:
            pub_meta.setdefault("resilience", {})["layer_noise"] = {
                "unique_mitigated_layers": layers,
                "source": "device noise model, Pauli-twirled (see layer_noise)"
                if given is None
                else "resilience.layer_noise_model (given)",
            }
        data = {name: np.asarray(raw.data[name], dtype=float) for name in raw.data.keys()}
        results.append(PubResult(DataBin(**data, shape=raw.data.shape), metadata=pub_meta))
    resilience: dict[str, Any] = {
        "measure_mitigation": bool(final.resilience.measure_mitigation),
        "zne_mitigation": bool(final.resilience.zne_mitigation),
        "pec_mitigation": bool(final.resilience.pec_mitigation),
    }
    if final.resilience.zne_mitigation:
        from qiskit_ibm_runtime.executor_estimator.utils import resolve_noise_factors

        factors, extrapolated = resolve_noise_factors(final.resilience.zne)
        extrapolator = final.resilience.zne.extrapolator
        resilience["zne"] = {
            "noise_factors": factors.tolist(),
            "extrapolator": [extrapolator] if isinstance(extrapolator, str) else list(extrapolator),
            "extrapolated_noise_factors": extrapolated.tolist(),
            "amplifier": final.resilience.zne.amplifier,
        }
    if given is not None and needs_layer_noise(final):
        # what IBM's service reports: the layer noise model the job used, as LayerError entries
        resilience["layer_noise_model"] = [entry.wire for entry in given]
    if final.resilience.pec_mitigation:
        resilience["pec"] = {
            "max_overhead": final.resilience.pec.max_overhead,
            "noise_gain": final.resilience.pec.noise_gain,
        }
    metadata: dict[str, Any] = {
        "version": 2,
        "twirling": {
            **copy.deepcopy(options["twirling"]),
            "enable_gates": bool(final.twirling.enable_gates),
            "enable_measure": bool(final.twirling.enable_measure),
        },
        "resilience": resilience,
    }
    if dd_on:
        metadata["dynamical_decoupling"] = dd_metadata(options, backend, total_pulses)
    return PrimitiveResult(results, metadata=metadata), simulate, resilience
