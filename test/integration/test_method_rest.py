"""The simulation method per job, through the real server: a user story.

A user runs a noisy GHZ state over 40 qubits of the 127-qubit device: Aer's automatic choice
would need 2**40 amplitudes; the server runs it on the stabilizer simulator with the device
noise Pauli-twirled, says so in the result metadata, and the counts are those of a noisy GHZ.
The same user forces ``statevector`` on a small circuit and gets it; forcing ``stabilizer`` on a
T gate is a 400 naming the option.
"""

from __future__ import annotations

import collections

import numpy as np
import pytest
from qiskit import QuantumCircuit, transpile

from qiskit_rest_provider import EstimatorV2, SamplerV2
from qiskit_rest_provider.exceptions import RequestError

pytest.importorskip("fastapi")
pytestmark = pytest.mark.timeout(300)


def _device_ghz(backend, n: int) -> QuantumCircuit:
    """A GHZ state over ``n`` connected qubits (BFS over the coupling map), measured, ISA."""
    target = backend.target
    coupling = target.build_coupling_map()
    coupling.make_symmetric()  # directed (ECR) devices: BFS both ways
    qc = QuantumCircuit(target.num_qubits, n)
    qc.h(0)
    order, seen, queue = [0], {0}, collections.deque([0])
    while queue and len(seen) < n:
        u = queue.popleft()
        for v in coupling.neighbors(u):
            if v not in seen and len(seen) < n:
                seen.add(v)
                order.append(v)
                qc.cx(u, v)
                queue.append(v)
    qc.measure(order, range(n))
    layout = list(range(target.num_qubits))
    return transpile(qc, target=target, optimization_level=1, initial_layout=layout)


def test_noisy_clifford_ghz_on_the_127_qubit_device_runs_on_the_stabilizer(service):
    backend = service.backend("rest_hex_127q")
    n, shots = 40, 2000
    sampler = SamplerV2(mode=backend)
    sampler.options.simulator.seed_simulator = 7
    result = sampler.run([_device_ghz(backend, n)], shots=shots).result()
    meta = result.metadata["simulator"]
    assert meta == {"method": "stabilizer", "noisy": True, "noise_approximation": "pauli_twirled"}
    bits = result[0].data.c
    weights = np.unpackbits(bits.array, axis=-1).sum(axis=-1)
    low, high = int((weights <= n // 10).sum()), int((weights >= n - n // 10).sum())
    middle = int(((weights > n // 4) & (weights < n - n // 4)).sum())
    # a noisy GHZ: most shots are all-0 or all-1 up to a few flips (gate and readout errors,
    # ~1 % each per qubit here; an early error flips a whole branch of the BFS tree), about
    # half each; a uniformly mixed state would put nearly every shot in the middle
    assert low + high >= 0.75 * shots, (low, high)
    assert middle <= 0.1 * shots, middle
    sigma = np.sqrt(0.25 / (low + high))
    assert abs(low / (low + high) - 0.5) <= 5 * sigma + 0.05, (low, high)
    assert bits.get_counts().get("0" * n, 0) < shots // 2  # and the noise is there


def test_forced_statevector_is_honoured_on_a_small_circuit(noisy):
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    isa = transpile(qc, target=noisy.target, optimization_level=1, seed_transpiler=1)
    automatic = SamplerV2(mode=noisy).run([isa], shots=1000).result()
    assert automatic.metadata["simulator"]["method"] == "density_matrix"
    sampler = SamplerV2(mode=noisy, options={"simulator": {"method": "statevector"}})
    forced = sampler.run([isa], shots=1000).result()
    assert forced.metadata["simulator"]["method"] == "statevector"
    counts = forced[0].data.meas.get_counts()
    assert counts.get("00", 0) + counts.get("11", 0) > 800


def test_forced_method_reaches_the_estimator(ideal):
    from qiskit.quantum_info import SparsePauliOp

    qc = QuantumCircuit(3)
    qc.ry(0.4, 0)
    qc.cx(0, 1)
    qc.cx(1, 2)
    estimator = EstimatorV2(mode=ideal)
    estimator.options.simulator.method = "matrix_product_state"
    result = estimator.run([(qc, SparsePauliOp("ZZI"))]).result()
    assert result.metadata["simulator"]["method"] == "matrix_product_state"
    assert abs(float(result[0].data.evs) - 1.0) < 5 * float(result[0].data.stds) + 1e-9


def test_forced_stabilizer_on_a_t_gate_is_a_400_naming_the_option(ideal):
    qc = QuantumCircuit(1)
    qc.h(0)
    qc.t(0)
    qc.measure_all()
    sampler = SamplerV2(mode=ideal, options={"simulator": {"method": "stabilizer"}})
    with pytest.raises(RequestError, match=r"params\.options\.simulator\.method: 'stabilizer'"):
        sampler.run([qc], shots=10)


# ------------------------------------------------------------- the sampled (mitigated) paths
def _ghz_and_pairs(backend, n: int):
    """The device GHZ without measurements, and ZZ on (first, second) and (first, last)."""
    from qiskit.quantum_info import SparsePauliOp

    measured = _device_ghz(backend, n)
    order = [measured.find_bit(inst.qubits[0]).index for inst in measured.data
             if inst.operation.name == "measure"]  # fmt: skip
    circuit = measured.remove_final_measurements(inplace=False)
    width = backend.target.num_qubits
    observables = []
    for a, b in ((order[0], order[1]), (order[0], order[-1])):
        label = ["I"] * width
        label[width - 1 - a] = label[width - 1 - b] = "Z"
        observables.append(SparsePauliOp("".join(label)))
    return circuit, observables


def test_a_mitigated_estimator_on_40_noisy_qubits_runs_the_planned_stabilizer(service):
    # TREX + measurement twirling (resilience level 1) samples twirled and calibration circuits
    # over 40 qubits: on Aer's automatic method that is a 40-qubit statevector (refused by Aer
    # for memory); the plan (stabilizer, Pauli-twirled noise) runs it, and says so.
    backend = service.backend("rest_hex_127q")
    circuit, observables = _ghz_and_pairs(backend, 40)
    estimator = EstimatorV2(mode=backend)
    estimator.options.resilience_level = 1
    estimator.options.simulator.seed_simulator = 11
    result = estimator.run([(circuit, observables)], precision=0.05).result()
    assert result.metadata["simulator"] == {
        "method": "stabilizer",
        "noisy": True,
        "noise_approximation": "pauli_twirled",
    }
    assert result.metadata["resilience"]["measure_mitigation"] is True
    evs, stds = np.asarray(result[0].data.evs), np.asarray(result[0].data.stds)
    # a GHZ state: <ZZ> = 1 without gate errors; TREX removed the readout errors, the gate
    # errors along the chain (~40 two-qubit gates) leave it above ~0.6
    assert np.all(evs <= 1 + 5 * stds + 0.02), (evs, stds)
    assert np.all(evs >= 0.6), evs


def test_a_twirled_sampler_on_40_noisy_qubits_runs_the_planned_stabilizer(service):
    backend = service.backend("rest_hex_127q")
    n, shots = 40, 1000
    sampler = SamplerV2(mode=backend)
    sampler.options.twirling.enable_gates = True
    sampler.options.simulator.seed_simulator = 5
    result = sampler.run([_device_ghz(backend, n)], shots=shots).result()
    assert result.metadata["simulator"]["method"] == "stabilizer"
    assert result[0].metadata["num_randomizations"] > 1
    weights = np.unpackbits(result[0].data.c.array, axis=-1).sum(axis=-1)
    ends = int((weights <= n // 10).sum() + (weights >= n - n // 10).sum())
    assert ends >= 0.75 * weights.size, ends


def test_a_mitigated_job_is_admitted_by_what_it_samples(server_factory):
    # ZNE (3 noise factors) x 32 randomizations x ~40 measurement bases of 313 shots on 8
    # qubits is ~1.5 M samples (~250 MiB of results): over a 64 MiB limit, although the same
    # PUB on the exact path (resilience level 0, a 1 MiB density matrix) fits and runs.
    from qiskit.quantum_info import SparsePauliOp

    from qiskit_rest_provider import ProviderService

    server = server_factory.start(workers=1, args=["--max-job-memory", "64MiB"])
    service = ProviderService(
        channel="ibm_quantum_platform",
        url=server.url,
        token=server.token,
        instance=server.instance_crn,
    )
    backend = service.backend("rest_line_5q")
    qc = QuantumCircuit(5)
    for q in range(5):
        qc.ry(0.3 + 0.1 * q, q)
    for q in range(4):
        qc.cx(q, q + 1)
    isa = transpile(qc, target=backend.target, optimization_level=1, seed_transpiler=3)
    rng = np.random.default_rng(2)
    labels = sorted({"".join(rng.choice(list("XYZ"), size=5)) for _ in range(60)})[:40]
    observable = SparsePauliOp(labels, np.full(len(labels), 1 / len(labels)))
    observable = observable.apply_layout(isa.layout)
    mitigated = EstimatorV2(mode=backend)
    mitigated.options.resilience_level = 2
    with pytest.raises(RequestError) as info:
        mitigated.run([(isa, observable)], precision=0.01)
    message = str(info.value)
    assert "params.pubs" in message, message
    assert "randomizations x noise factors x measurement bases" in message, message
    assert "allows 64 MiB per job (--max-job-memory)" in message, message
    exact = EstimatorV2(mode=backend)
    exact.options.resilience_level = 0
    result = exact.run([(isa, observable)], precision=0.01).result()
    assert result.metadata["simulator"]["method"] == "density_matrix"
