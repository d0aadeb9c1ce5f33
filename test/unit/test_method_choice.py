"""The simulation method chosen per job (execution/method.py) on representative circuits.

Real parts: the cost model, admission's ``prepare_job`` on the catalog's devices, and Qiskit Aer
for the Pauli approximation and the small runs; nothing is mocked.
"""

from __future__ import annotations

import collections
import math

import numpy as np
import pytest
from qiskit import QuantumCircuit, transpile
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit.quantum_info import Operator, SparsePauliOp, process_fidelity

from qiskit_rest_provider.server.backends.catalog import BackendCatalog
from qiskit_rest_provider.server.execution.cost import GIB
from qiskit_rest_provider.server.execution.method import (
    METHOD_FIELD,
    PLAN_KEY,
    MethodError,
    choose_job_method,
)
from qiskit_rest_provider.server.execution.runner import execute_job
from qiskit_rest_provider.server.execution.simulators import (
    _pauli_twirl,
    pauli_noise_model,
    restrict_noise_model,
)
from qiskit_rest_provider.server.jobs.admission import JobInputError, prepare_job
from qiskit_rest_provider.wire.pubs import encode_estimator_params, encode_sampler_params
from qiskit_rest_provider.wire.results import decode_result

LIMIT = 4 * GIB


@pytest.fixture(scope="module")
def catalog():
    return BackendCatalog.load()


def _ghz(n: int, width: int | None = None) -> QuantumCircuit:
    qc = QuantumCircuit(width or n)
    qc.h(0)
    for i in range(n - 1):
        qc.cx(i, i + 1)
    qc.measure_all()
    return qc


def _device_ghz(backend, n: int) -> QuantumCircuit:
    """A GHZ state over ``n`` connected qubits of ``backend`` (BFS over its coupling map), ISA."""
    coupling = backend.target.build_coupling_map()
    coupling.make_symmetric()  # directed (ECR) devices: BFS both ways
    qc = QuantumCircuit(backend.num_qubits)
    qc.h(0)
    seen, queue = {0}, collections.deque([0])
    while queue and len(seen) < n:
        u = queue.popleft()
        for v in coupling.neighbors(u):
            if v not in seen and len(seen) < n:
                seen.add(v)
                qc.cx(u, v)
                queue.append(v)
    qc.measure_all()
    layout = list(range(backend.num_qubits))
    return transpile(qc, target=backend.target, optimization_level=1, initial_layout=layout)


def _chain(n: int, width: int | None = None) -> QuantumCircuit:
    """A wide, non-Clifford, low-entanglement circuit: one ry layer and a CX ladder."""
    qc = QuantumCircuit(width or n)
    for q in range(n):
        qc.ry(0.3 + 0.01 * q, q)
    for q in range(n - 1):
        qc.cx(q, q + 1)
    qc.rz(0.1, range(n))
    qc.measure_all()
    return qc


def _sampler(circuit, shots=4096):
    return [SamplerPub.coerce(circuit, shots=shots)]


# ----------------------------------------------------------------------------- the chooser
def test_noisy_clifford_ghz_27_runs_on_the_stabilizer_with_pauli_noise():
    choice, estimate = choose_job_method(
        "sampler", _sampler(_ghz(27)), noisy=True, max_memory=LIMIT
    )
    assert (choice.method, choice.noise_approximation) == ("stabilizer", "pauli_twirled")
    assert not choice.forced
    # sized as what runs: a stabilizer tableau, not 2**27 amplitudes
    assert estimate.pubs[0].method == "stabilizer" and estimate.memory_bytes < 64 * 1024**2


def test_wide_low_entanglement_chain_runs_as_a_matrix_product_state():
    for noisy in (False, True):
        choice, estimate = choose_job_method(
            "sampler", _sampler(_chain(40), shots=1000), noisy=noisy, max_memory=LIMIT
        )
        assert choice.method == "matrix_product_state", noisy
        assert choice.noise_approximation is None  # MPS simulates the noise model as it is
        assert estimate.memory_bytes < LIMIT


def test_small_circuits_keep_the_exact_methods():
    # noisy, shots > 2**n: Aer's density matrix (exact noise, no trajectories)
    choice, _ = choose_job_method("sampler", _sampler(_ghz(4)), noisy=True, max_memory=LIMIT)
    assert (choice.method, choice.noise_approximation) == ("density_matrix", None)
    # noisy non-Clifford, few shots: statevector trajectories
    qc = _chain(12)
    choice, _ = choose_job_method("sampler", _sampler(qc, 100), noisy=True, max_memory=LIMIT)
    assert choice.method == "statevector"
    # ideal: statevector, or the (exact) stabilizer for Clifford circuits, however wide
    assert choose_job_method("sampler", _sampler(qc), noisy=False)[0].method == "statevector"
    wide = choose_job_method("sampler", _sampler(_ghz(100)), noisy=False)[0]
    assert (wide.method, wide.noise_approximation) == ("stabilizer", None)
    # the estimator's own rule: a density matrix up to 10 noisy qubits
    obs = SparsePauliOp("Z" * 8)
    pub = EstimatorPub.coerce((_ghz(8).remove_final_measurements(inplace=False), obs), 0.01)
    assert choose_job_method("estimator", [pub], noisy=True)[0].method == "density_matrix"


def test_a_job_mixing_clifford_and_non_clifford_pubs_gets_one_method_that_runs_both():
    pubs = _sampler(_ghz(4)) + _sampler(_chain(4))
    choice, estimate = choose_job_method("sampler", pubs, noisy=False)
    assert choice.method == "statevector"
    assert {p.method for p in estimate.pubs} == {"statevector"}


def test_forced_method_is_honoured_and_sized_as_forced():
    choice, estimate = choose_job_method(
        "sampler", _sampler(_ghz(4)), noisy=True, forced="statevector"
    )
    assert (choice.method, choice.forced) == ("statevector", True)
    assert estimate.pubs[0].method == "statevector"
    choice, _ = choose_job_method("sampler", _sampler(_ghz(4)), noisy=True, forced="stabilizer")
    assert (choice.method, choice.noise_approximation) == ("stabilizer", "pauli_twirled")
    # a forced method that cannot fit is sized as such (admission refuses it for memory)
    _, estimate = choose_job_method(
        "sampler", _sampler(_chain(20)), noisy=True, forced="density_matrix"
    )
    assert estimate.memory_bytes >= 16 * 4**20


def test_forced_stabilizer_on_a_t_gate_is_refused_naming_the_field():
    qc = _ghz(3)
    qc.t(0)
    with pytest.raises(MethodError, match=r"params\.pubs\[0\]") as info:
        choose_job_method("sampler", _sampler(qc), noisy=False, forced="stabilizer")
    assert info.value.field == METHOD_FIELD


# ----------------------------------------------------------------------------- admission
def test_admission_admits_the_127_qubit_noisy_ghz_with_the_stabilizer(catalog):
    backend = catalog.get("rest_hex_127q")
    params = encode_sampler_params(_sampler(_device_ghz(backend, 127)))
    prepared = prepare_job("sampler", params, backend)
    plan = prepared.options[PLAN_KEY]
    assert (plan["method"], plan["noise_approximation"]) == ("stabilizer", "pauli_twirled")


def test_admission_refuses_forced_stabilizer_on_t_with_a_400_naming_the_field(catalog):
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.t(0)
    qc.cx(0, 1)
    qc.measure_all()
    params = encode_sampler_params(_sampler(qc, 100))
    params["options"] = {"simulator": {"method": "stabilizer"}}
    with pytest.raises(JobInputError) as info:
        prepare_job("sampler", params, catalog.get("rest_simulator"))
    assert info.value.field == METHOD_FIELD
    params["options"] = {"simulator": {"method": "tensor_network"}}
    with pytest.raises(JobInputError) as info:
        prepare_job("sampler", params, catalog.get("rest_simulator"))
    assert info.value.field == METHOD_FIELD


def test_admission_refuses_a_forced_method_that_cannot_fit_for_memory(catalog):
    params = encode_sampler_params(_sampler(_chain(30), 100))
    # automatic: a matrix product state fits; forced statevector: 2**30 amplitudes do not
    prepare_job("sampler", params, catalog.get("rest_simulator"))
    params["options"] = {"simulator": {"method": "statevector"}}
    with pytest.raises(JobInputError, match="30-qubit statevector needs ~16 GiB") as info:
        prepare_job("sampler", params, catalog.get("rest_simulator"))
    assert info.value.code == "job_too_large"


# ----------------------------------------------------------------------------- Pauli noise
def test_pauli_twirl_keeps_the_process_fidelity_and_gives_pauli_errors(catalog):
    model = restrict_noise_model(catalog.get("rest_line_5q").noise_model, frozenset({0, 1}))
    for by_qubits in model._local_quantum_errors.values():
        for error in by_qubits.values():
            twirled = _pauli_twirl(error)
            ideal = Operator(np.eye(2**error.num_qubits))
            assert math.isclose(
                process_fidelity(twirled.to_quantumchannel(), ideal),
                process_fidelity(error.to_quantumchannel(), ideal),
                rel_tol=1e-9,
            )
            for circuit in twirled.circuits:
                assert {i.operation.name for i in circuit.data} <= {"pauli", "id", "x", "y", "z"}
    approx = pauli_noise_model(model)
    assert approx._local_readout_errors == model._local_readout_errors  # readout as it is


def _counts(prepared, backend) -> tuple[dict, dict]:
    result = decode_result(execute_job(prepared, backend).result_body)
    return result[0].data.c.get_counts(), result.metadata["simulator"]


def test_pauli_approximated_stabilizer_matches_the_exact_noisy_density_matrix(catalog):
    """4-qubit GHZ on the noisy line: every outcome's frequency within 5 sigma of the exact."""
    backend = catalog.get("rest_line_5q")
    qc = QuantumCircuit(5, 4)
    qc.h(0)
    for i in range(3):
        qc.cx(i, i + 1)
    qc.measure(range(4), range(4))
    isa = transpile(qc, target=backend.target, optimization_level=1, initial_layout=range(5))
    shots = 20_000
    runs = {}
    for method, seed in (("density_matrix", 11), ("stabilizer", 12)):
        params = encode_sampler_params(_sampler(isa, shots))
        params["options"] = {"simulator": {"method": method, "seed_simulator": seed}}
        runs[method] = _counts(prepare_job("sampler", params, backend), backend)
    exact, exact_meta = runs["density_matrix"]
    approx, approx_meta = runs["stabilizer"]
    assert exact_meta == {"method": "density_matrix", "noisy": True, "noise_approximation": None}
    assert approx_meta["method"] == "stabilizer"
    assert approx_meta["noise_approximation"] == "pauli_twirled"
    assert exact.get("0000", 0) + exact.get("1111", 0) < 0.97 * shots  # the noise is visible
    for key in set(exact) | set(approx):
        p, q = exact.get(key, 0) / shots, approx.get(key, 0) / shots
        sigma = math.sqrt((max(p, 1 / shots) + max(q, 1 / shots)) / shots)
        assert abs(p - q) <= 5 * sigma + 1e-3, (key, p, q)


def test_noisy_wide_clifford_estimator_uses_stabilizer_trajectories(catalog):
    backend = catalog.get("rest_hex_127q")
    circuit = _device_ghz(backend, 30).remove_final_measurements(inplace=False)
    layout = circuit.layout.final_index_layout()
    label = ["I"] * backend.num_qubits
    label[backend.num_qubits - 1 - layout[0]] = "Z"
    label[backend.num_qubits - 1 - layout[1]] = "Z"
    pub = EstimatorPub.coerce((circuit, SparsePauliOp("".join(label))), 0.05)
    params = encode_estimator_params([pub])
    params["options"] = {"simulator": {"seed_simulator": 3}, "seed_estimator": 4}
    params["resilience_level"] = 0  # the exact path (levels 1-2 run sampled mitigation programs)
    prepared = prepare_job("estimator", params, backend)
    assert prepared.options[PLAN_KEY]["method"] == "stabilizer"
    result = decode_result(execute_job(prepared, backend).result_body)
    assert result.metadata["simulator"]["method"] == "stabilizer"
    assert result[0].metadata["simulation"]["method"] == "trajectories"
    value = float(result[0].data.evs)
    assert 0.5 < value < 1.0 + 5 * 0.05  # ZZ of a noisy GHZ pair: near 1, below it
