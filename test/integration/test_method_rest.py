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
