"""Error suppression for the legacy ``sampler`` program: Pauli twirling and dynamical decoupling.

The service the legacy programs describe twirled and decoupled the circuits it ran. This module
does the same with the official implementations, so the numbers mean what they mean on IBM's
service:

* **Pauli twirling** (``twirling.enable_gates`` / ``enable_measure``, ``strategy``,
  ``num_randomizations``, ``shots_per_randomization``): qiskit-ibm-runtime's client-side
  ``executor_sampler.prepare`` boxes the circuit with samplomatic's boxing pass manager
  (``strategy`` chooses which idle qubits are twirled), ``samplomatic.build`` turns it into a
  template plus a samplex, and the shot split is qiskit-ibm-runtime's
  ``calculate_twirling_shots`` (both ``"auto"``: ``max(64, ceil(shots/32))`` shots per
  randomization). Each randomization is drawn by samplomatic, bound and sampled on the backend's
  noise model by qiskit-ibm-runtime's local ``run_quantum_program``, and its
  ``sampler_v2_post_processor_v0_1`` un-flips measurement twirls and flattens the randomizations
  into the shot axis. Metadata ``shots`` is what ran: ``num_randomizations *
  shots_per_randomization`` (at least the requested shots).
* **Dynamical decoupling** (``dynamical_decoupling.*``): qiskit-ibm-runtime's
  ``apply_dynamical_decoupling`` schedules each circuit on the backend's Target durations
  (``ALAPScheduleAnalysis``/``ASAPScheduleAnalysis``) and pads idle windows with
  ``PadDynamicalDecoupling`` (``XX``, ``XpXm``, ``XY4``, ``extra_slack_distribution``,
  ``skip_reset_qubits``). The number of inserted pulses (X gates) is reported in metadata
  ``dynamical_decoupling.num_pulses``. Idle windows carry T1/T2 relaxation in the noise model
  (:mod:`..backends.noise`), so decoupling changes results where qubits idle in ``|1>``.

:func:`run_program` (shared with :mod:`.mitigation`) runs one ``QuantumProgram`` on the
server's simulator for the backend, with the method admission chose for the sampled work
(:mod:`.sampled_cost`).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import numpy as np
from qiskit.primitives.containers import PrimitiveResult, SamplerPubResult

logger = logging.getLogger(__name__)

__all__ = [
    "NO_DURATIONS",
    "TargetBackend",
    "apply_decoupling",
    "dd_metadata",
    "has_durations",
    "count_pulses",
    "dd_options",
    "program_seed",
    "run_program",
    "run_suppressed_sampler_pubs",
    "sampler_suppression_applies",
    "twirling_shots",
]


class TargetBackend:
    """The least of a ``BackendV2`` that qiskit-ibm-runtime's DD pass manager reads: a Target."""

    def __init__(self, target: Any) -> None:
        self.target = target


def dd_options(options: dict) -> Any:
    """qiskit-ibm-runtime's ``DynamicalDecouplingOptions`` from the legacy options tree."""
    from qiskit_ibm_runtime.options_models.dynamical_decoupling import (
        DynamicalDecouplingOptions,
    )

    return DynamicalDecouplingOptions(**options["dynamical_decoupling"])


def twirling_shots(shots: int, twirling: dict) -> tuple[int, int]:
    """``(num_randomizations, shots_per_randomization)`` by qiskit-ibm-runtime's shot rule."""
    from qiskit_ibm_runtime.executor.calculate_twirling_shots import calculate_twirling_shots

    return calculate_twirling_shots(
        int(shots), twirling["num_randomizations"], twirling["shots_per_randomization"]
    )


def count_pulses(program: Any) -> int:
    """X gates in the program's item circuits (compare before/after decoupling)."""
    return sum(int(item.circuit.count_ops().get("x", 0)) for item in program.items)


def _physical(circuit: Any) -> Any:
    """The circuit on one register named ``q`` (what Qiskit's scheduling passes require).

    Circuits decoded from OpenQASM 3 hardware qubits may carry another register name.
    """
    from qiskit.circuit import QuantumCircuit, QuantumRegister

    if len(circuit.qregs) == 1 and circuit.qregs[0].name == "q" and not circuit.ancillas:
        if len(circuit.qregs[0]) == circuit.num_qubits:
            return circuit
    out = QuantumCircuit(
        QuantumRegister(circuit.num_qubits, "q"),
        name=circuit.name,
        global_phase=circuit.global_phase,
        metadata=circuit.metadata,
    )
    loose = [bit for bit in circuit.clbits if not circuit.find_bit(bit).registers]
    if loose:
        out.add_bits(loose)
    for creg in circuit.cregs:
        out.add_register(creg)
    out.compose(circuit, qubits=out.qubits, clbits=circuit.clbits, inplace=True)
    return out


NO_DURATIONS = (
    "the backend has no gate durations (an ideal simulator): no idle windows to schedule, "
    "no pulses inserted; there is no noise there for decoupling to act on"
)


def has_durations(target: Any, names: tuple[str, ...] = ("x", "rz")) -> bool:
    """Whether the Target times every qargs of the pulses' instructions (and has a ``dt``)."""
    for name in names:
        if name not in target.operation_names:
            return False
        for props in target[name].values():
            if props is None or props.duration is None:
                return False
    return target.dt is not None


def apply_decoupling(
    program: Any, backend: Any, options: dict, keep: Sequence[int] | None = None
) -> tuple[Any, int]:
    """Dynamical decoupling on every item of ``program``; returns it and the pulses inserted.

    With ``keep`` (the relevant qubits, :mod:`.compaction`), what the pass puts on the other,
    never-used qubits is dropped (and not counted). A backend without durations (the ideal
    simulator) gets no pulses (see :data:`NO_DURATIONS`).
    """
    from qiskit_ibm_runtime.executor.dynamical_decoupling import apply_dynamical_decoupling

    from .compaction import drop_idle_wires

    if not has_durations(backend.target):
        return program, 0
    before = count_pulses(program)
    for item in program.items:
        item.circuit = _physical(item.circuit)
    program = apply_dynamical_decoupling(
        TargetBackend(backend.target), dd_options(options), program
    )
    if keep is not None:
        for item in program.items:
            item.circuit = drop_idle_wires(item.circuit, keep)
    return program, count_pulses(program) - before


def dd_metadata(options: dict, backend: Any, pulses: int) -> dict:
    """Job-level ``dynamical_decoupling`` metadata: the options, the pulses, why none if none."""
    out = {**options["dynamical_decoupling"], "num_pulses": int(pulses)}
    if not has_durations(backend.target):
        out["note"] = NO_DURATIONS
    return out


def program_seed(seed: int | None, index: int) -> int:
    """A per-PUB seed derived from the job's (random when the job sets none)."""
    if seed is None:
        return int(np.random.default_rng().integers(2**62))
    return (int(seed) + 7919 * index) % (2**62)


_CLIFFORD_SNAP = 1e-5  # float32 angles (samplomatic's) are within ~1e-7 of a multiple of pi/2


def _snap_to_clifford(values: Any) -> Any:
    """Angles within :data:`_CLIFFORD_SNAP` of a multiple of pi/2 become exactly that (float64).

    samplomatic draws the randomizations' angles as float32: ``pi`` arrives as ``3.14159274``,
    which qiskit-ibm-runtime's rounding keeps (it rounds in float32) and Aer's stabilizer method
    rejects as a non-Clifford angle. Other angles are left as they are (Aer refuses them).
    """
    array = np.asarray(values, dtype=np.float64)
    quarter = array / (np.pi / 2)
    nearest = np.round(quarter)
    return np.where(np.abs(quarter - nearest) < _CLIFFORD_SNAP, nearest * (np.pi / 2), array)


def _with_clifford_bindings(simulator: Any) -> Any:
    """A shallow copy of a stabilizer ``AerSimulator`` that snaps bound angles to Clifford ones."""
    import copy

    from qiskit_aer import AerSimulator

    class CliffordBindingSimulator(AerSimulator):
        def run(self, circuits: Any, parameter_binds: Any = None, **kwargs: Any) -> Any:
            if parameter_binds:
                parameter_binds = [
                    {param: _snap_to_clifford(v) for param, v in binds.items()}
                    for binds in parameter_binds
                ]
            return super().run(circuits, parameter_binds=parameter_binds, **kwargs)

    snapped = copy.copy(simulator)
    snapped.__class__ = CliffordBindingSimulator
    return snapped


def run_program(program: Any, backend: Any, options: dict, seed: int) -> Any:
    """Run one ``QuantumProgram`` on the backend's simulator (noise restricted to its qubits)."""
    from qiskit_ibm_runtime.fake_provider.executor.run_quantum_program import (
        run_quantum_program,
    )
    from qiskit_ibm_runtime.options_models.simulator import SimulatorOptions

    from .simulators import simulator_for

    # The plan admission chose for this program's circuits (twirled, folded, calibration:
    # jobs.checks.check_job_size sizes the sampled work), so the method that was sized runs.
    simulator, _ = simulator_for(backend, options, (item.circuit for item in program.items))
    if str(getattr(simulator.options, "method", "")) == "stabilizer":
        simulator = _with_clifford_bindings(simulator)
    return run_quantum_program(
        simulator, program, SimulatorOptions(seed_simulator=seed, angle_decimals=12)
    )


def _twirling_on(options: dict) -> bool:
    twirling = options.get("twirling") or {}
    return bool(twirling.get("enable_gates") or twirling.get("enable_measure"))


def sampler_suppression_applies(options: dict) -> bool:
    """Whether a sampler job twirls or decouples (else the plain, fast path runs).

    A tree without those groups (an executor proxy's) does neither.
    """
    dd = options.get("dynamical_decoupling") or {}
    return _twirling_on(options) or bool(dd.get("enable"))


def _sampler_options(options: dict, shots: int) -> Any:
    from qiskit_ibm_runtime.options_models.sampler import SamplerOptions

    twirling = {k: options["twirling"][k] for k in (
        "enable_gates", "enable_measure", "num_randomizations", "shots_per_randomization",
        "strategy",
    )}  # fmt: skip
    return SamplerOptions(
        default_shots=int(shots),
        twirling=twirling,
        # decoupling is applied afterwards (run_suppressed_sampler_pubs), to count its pulses
        dynamical_decoupling={"enable": False},
    )


def _empty_result(pub: Any) -> SamplerPubResult:
    from qiskit.primitives.containers import BitArray, DataBin

    shape, shots = tuple(pub.shape), int(pub.shots)
    fields = {
        creg.name: BitArray(np.zeros((*shape, shots, (creg.size + 7) // 8), np.uint8), creg.size)
        for creg in pub.circuit.cregs
    }
    metadata = {"circuit_metadata": dict(pub.circuit.metadata or {}), "shots": shots}
    return SamplerPubResult(DataBin(**fields, shape=shape), metadata=metadata)


def run_suppressed_sampler_pubs(
    pubs: Sequence[Any],
    backend: Any,
    options: dict,
    *,
    seed: int | None,
    pub_indices: Sequence[int] | None = None,
) -> tuple[PrimitiveResult, float, list[tuple[datetime, datetime, dict]]]:
    """Sample twirled and/or decoupled PUBs; same return shape as ``run_sampler_pubs``.

    Each PUB is its own program (PUBs may ask for different shots); ``pub_indices`` are the PUBs'
    places in the job when they are a part of it (seeds derive from them). Metadata per PUB:
    ``shots`` (what ran), ``num_randomizations`` and ``dynamical_decoupling.num_pulses``.
    """
    from qiskit_ibm_runtime.decoders.executor_sampler.post_processor_v0_1 import (
        sampler_v2_post_processor_v0_1,
    )
    from qiskit_ibm_runtime.executor_sampler.prepare import prepare

    from .compaction import compact_circuit, embed, relevant_qubits

    dd_on = bool(options["dynamical_decoupling"]["enable"])
    results: list[SamplerPubResult] = []
    spans: list[tuple[datetime, datetime, dict]] = []
    simulate = 0.0
    total_pulses = 0
    for index, pub in enumerate(pubs):
        shots = int(pub.shots)
        if 0 in tuple(pub.shape):  # no parameter sets: empty BitArrays of shape (*shape, shots)
            results.append(_empty_result(pub))
            continue
        # only the qubits that matter are prepared and simulated (see compaction)
        width = pub.circuit.num_qubits
        qubits = relevant_qubits(pub.circuit)
        circuit = compact_circuit(pub.circuit, qubits) if width else pub.circuit
        plain = type(pub)(circuit, pub.parameter_values, shots)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            program, _ = prepare([plain], _sampler_options(options, shots), backend=None)
        if width:
            for item in program.items:
                item.circuit = embed(item.circuit, qubits, width)
        pulses = 0
        if dd_on:
            program, pulses = apply_decoupling(program, backend, options, keep=qubits)
        total_pulses += pulses
        start = datetime.now(timezone.utc)
        t0 = time.perf_counter()
        raw = run_program(
            program,
            backend,
            options,
            program_seed(seed, index if pub_indices is None else pub_indices[index]),
        )
        simulate += time.perf_counter() - t0
        stop = datetime.now(timezone.utc)
        out = sampler_v2_post_processor_v0_1(raw)[0]
        item = program.items[0]
        randomizations = int(item.shape[0]) if _twirling_on(options) else 1
        ran = randomizations * int(program.shots)
        metadata: dict[str, Any] = {
            "circuit_metadata": dict(pub.circuit.metadata or {}),
            "shots": ran,
            "num_randomizations": randomizations,
        }
        if dd_on:
            metadata["dynamical_decoupling"] = {"num_pulses": pulses}
        results.append(SamplerPubResult(out.data, metadata=metadata))
        spans.append(
            (
                start,
                stop,
                {index: ((*pub.shape, ran), slice(0, int(np.prod(pub.shape, dtype=int))),
                         slice(0, ran))},
            )
        )  # fmt: skip
    metadata = {"version": 2}
    if dd_on:
        metadata["dynamical_decoupling"] = dd_metadata(options, backend, total_pulses)
    if _twirling_on(options):
        metadata["twirling"] = dict(options["twirling"])
    return PrimitiveResult(results, metadata=metadata), simulate, spans
