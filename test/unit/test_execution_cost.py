"""The cost model: methods, memory and time of representative circuits, without running them."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub

from qiskit_rest_provider.server.execution import cost
from qiskit_rest_provider.server.execution.cost import (
    GIB,
    MIB,
    default_max_job_memory,
    estimate_circuit,
    estimate_job,
    format_bytes,
    max_job_memory,
    parse_size,
)


def _t_layer(n: int, width: int | None = None) -> QuantumCircuit:
    qc = QuantumCircuit(width or n, n)
    qc.h(range(n))
    qc.t(range(n))
    qc.measure(range(n), range(n))
    return qc


def _ghz(n: int, width: int | None = None) -> QuantumCircuit:
    qc = QuantumCircuit(width or n, n)
    qc.h(0)
    for i in range(n - 1):
        qc.cx(i, i + 1)
    qc.measure(range(n), range(n))
    return qc


def test_module_imports_no_aer():
    code = (
        "import sys; import qiskit_rest_provider.server.execution.cost; "
        "print(any(m.startswith('qiskit_aer') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_statevector_is_16_bytes_per_amplitude():
    est = estimate_circuit(_t_layer(30), shots=1000)
    assert est.method == "statevector" and est.qubits == 30
    assert est.state_bytes == 16 * 2**30
    assert est.what == "30-qubit statevector"
    assert format_bytes(est.state_bytes) == "16 GiB"


def test_only_active_qubits_count():
    wide = estimate_circuit(_t_layer(3, width=127), shots=100)
    assert wide.qubits == 3 and wide.state_bytes == 16 * 8


def test_clifford_circuits_use_the_stabilizer_method_when_ideal():
    est = estimate_circuit(_ghz(100), shots=4096)
    assert est.method == "stabilizer" and est.qubits == 100
    assert est.state_bytes < 64 * 1024  # ~n² bits, not 2^100 amplitudes
    # rotations by multiples of pi/2 are Clifford; by pi/4 they are not
    qc = _ghz(10)
    qc.rz(math.pi / 2, 0)
    assert estimate_circuit(qc).method == "stabilizer"
    qc.rz(math.pi / 4, 0)
    assert estimate_circuit(qc).method == "statevector"
    # unbound parameters: cannot know, so not Clifford
    p = QuantumCircuit(2)
    p.rz(Parameter("a"), 0)
    assert estimate_circuit(p).method == "statevector"


def test_noise_follows_aers_rules():
    # noisy Clifford: device noise is not Clifford, so no stabilizer
    assert estimate_circuit(_ghz(5), shots=4096, noisy=True).method == "density_matrix"
    # Aer picks the density matrix only when shots > 2^n
    dm = estimate_circuit(_ghz(5), shots=4096, noisy=True)
    assert dm.state_bytes == 16 * 4**5
    assert estimate_circuit(_ghz(20), shots=4096, noisy=True).method == "statevector"
    # a mid-circuit measurement forbids sampling the final state: statevector trajectories
    qc = QuantumCircuit(3, 3)
    qc.h(0)
    qc.measure(0, 0)
    qc.x(0)
    qc.measure(range(3), range(3))
    assert estimate_circuit(qc, shots=4096, noisy=True).method == "statevector"


def test_matrix_product_state_bond_dimension_follows_entanglement():
    ghz = estimate_circuit(_ghz(127), method="matrix_product_state")
    assert ghz.method == "matrix_product_state"
    assert ghz.state_bytes < 1 * MIB  # χ = 2 across every cut of a chain
    dense = QuantumCircuit(40)
    for _ in range(30):
        for i in range(0, 39):
            dense.cx(i, (i + 7) % 40)
    heavy = estimate_circuit(dense, method="matrix_product_state")
    assert heavy.state_bytes > 1 * GIB  # many gates across the middle cut: χ up to 2^20
    with pytest.raises(ValueError, match="method"):
        estimate_circuit(dense, method="unitary")


def test_results_grow_with_shots_and_classical_bits():
    qc = QuantumCircuit(1, 100_000)
    qc.x(0)
    qc.measure(0, 0)
    est = estimate_circuit(qc, shots=2000)
    # measured: ~2.8 GiB for bit[100000] x 2000 shots
    assert 2 * GIB < est.result_bytes < 4 * GIB
    small = estimate_circuit(_ghz(2), shots=1024, parameter_sets=3)
    assert small.result_bytes == 1024 * 3 * (64 + 14 * 2)


def test_job_estimate_takes_the_largest_state_and_all_results():
    theta = Parameter("t")
    qc = QuantumCircuit(12)
    qc.rx(theta, range(12))
    qc.measure_all()
    pubs = [
        SamplerPub.coerce((qc, np.linspace(0, 1, 8).reshape(8, 1)), shots=100),
        SamplerPub.coerce(_ghz(3), shots=10),
    ]
    job = estimate_job("sampler", pubs, noisy=False)
    assert [p.method for p in job.pubs] == ["statevector", "stabilizer"]
    assert job.largest == 0
    assert job.memory_bytes == 16 * 2**12 + sum(p.result_bytes for p in job.pubs)
    assert job.pubs[0].result_bytes == 100 * 8 * (64 + 14 * 12)
    assert job.seconds > 0


def test_estimator_observables_cost_grows_quadratically():
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.t(0)
    few = estimate_job("estimator", [EstimatorPub.coerce((qc, ["ZZ"] * 10), 0.01)], noisy=False)
    many = estimate_job(
        "estimator", [EstimatorPub.coerce((qc, ["ZZ"] * 12_000), 0.01)], noisy=False
    )
    assert many.pubs[0].result_bytes >= 20 * 12_000**2  # measured: 2.7 GiB peak at 12k
    assert many.pubs[0].result_bytes > 1000 * few.pubs[0].result_bytes
    noisy = estimate_job("estimator", [EstimatorPub.coerce((qc, "ZZ"), 0.01)], noisy=True)
    assert noisy.pubs[0].method == "density_matrix"


def test_time_estimate_counts_shots_only_without_sampling():
    ideal = estimate_circuit(_t_layer(20), shots=100_000)
    noisy = estimate_circuit(_t_layer(20), shots=100_000, noisy=True)
    assert noisy.seconds > 100 * ideal.seconds


def test_sizes_parse_and_format():
    assert parse_size("4GiB") == 4 * GIB
    assert parse_size("512 MiB") == 512 * MIB
    assert parse_size("2G") == 2 * GIB
    assert parse_size("4096") == 4096 * MIB
    assert parse_size("1.5gb") == int(1.5 * GIB)
    for bad in ("", "lots", "-1G", "0"):
        with pytest.raises(ValueError, match="memory size"):
            parse_size(bad)
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536 * MIB) == "1.5 GiB"
    assert format_bytes(16 * 2**127).endswith("EiB")


def test_memory_limit_from_environment_or_a_safe_share(monkeypatch):
    monkeypatch.setenv(cost.MAX_JOB_MEMORY_ENV, "1024")
    assert max_job_memory() == 1 * GIB
    monkeypatch.delenv(cost.MAX_JOB_MEMORY_ENV)
    assert 0 < max_job_memory() <= 4 * GIB
    assert default_max_job_memory(1000) < default_max_job_memory(1) <= 4 * GIB


def test_the_limit_admission_refuses_by_is_the_one_aer_stops_at():
    from qiskit_rest_provider.server.execution.simulators import AER_MAX_MEMORY_ENV

    assert cost.MAX_JOB_MEMORY_ENV == AER_MAX_MEMORY_ENV
