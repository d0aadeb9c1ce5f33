"""SamplerV2 against the real reference server: shapes, registers, options, legacy run."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Parameter
from qiskit.primitives import BitArray, PrimitiveResult
from qiskit.providers import JobStatus
from qiskit.transpiler import generate_preset_pass_manager

from qiskit_rest_provider import SamplerV2
from qiskit_rest_provider.exceptions import InvalidInputError

pytestmark = pytest.mark.timeout(300)


def _isa(backend, circuit):
    return generate_preset_pass_manager(
        optimization_level=1, backend=backend, seed_transpiler=1
    ).run(circuit)


def test_several_registers_including_output_and_a_parameter_grid(ideal):
    """Registers keep their names (even ``output``); a (2, 3) parameter grid keeps its shape."""
    q = QuantumRegister(3, "q")
    out = ClassicalRegister(2, "output")
    flag = ClassicalRegister(1, "flag")
    extra = ClassicalRegister(3, "c")
    a, b = Parameter("a"), Parameter("b")
    qc = QuantumCircuit(q, out, flag, extra)
    qc.rx(a, 0)
    qc.rx(b, 1)
    qc.x(2)
    qc.measure(0, out[0])
    qc.measure(1, out[1])
    qc.measure(2, flag[0])
    qc.measure(2, extra[2])
    # angles 0 or pi: every outcome is deterministic.
    grid = np.array([[[0, 0], [np.pi, 0], [0, np.pi]], [[np.pi, np.pi], [0, 0], [np.pi, np.pi]]])
    isa = _isa(ideal, qc)
    job = SamplerV2(mode=ideal).run([(isa, grid)], shots=50)
    result = job.result()
    assert isinstance(result, PrimitiveResult)
    data = result[0].data
    assert sorted(data.keys()) == ["c", "flag", "output"]
    assert data.output.shape == (2, 3) and data.output.num_shots == 50
    assert data.output.num_bits == 2 and data.c.num_bits == 3
    for idx in np.ndindex(2, 3):
        expected = (grid[idx][0] > 1) + 2 * (grid[idx][1] > 1)
        assert data.output.get_int_counts(idx) == {int(expected): 50}
        assert data.flag.get_int_counts(idx) == {1: 50}
        assert data.c.get_int_counts(idx) == {4: 50}
    assert job.status() is JobStatus.DONE


def test_statistics_match_within_five_sigma_and_seed_reproduces(ideal):
    theta = Parameter("theta")
    qc = QuantumCircuit(1, 1)
    qc.ry(theta, 0)
    qc.measure(0, 0)
    isa = _isa(ideal, qc)
    angles = np.linspace(0, np.pi, 5)
    shots = 2000
    sampler = SamplerV2(mode=ideal, options={"simulator": {"seed_simulator": 1234}})
    first = sampler.run([(isa, angles[:, None])], shots=shots).result()
    second = sampler.run([(isa, angles[:, None])], shots=shots).result()
    ones = first[0].data.c.bitcount().sum(axis=-1) / shots
    p = np.sin(angles / 2) ** 2
    sigma = np.sqrt(np.maximum(p * (1 - p), 1e-12) / shots)
    assert np.all(np.abs(ones - p) <= 5 * sigma + 1e-12)
    assert np.array_equal(first[0].data.c.array, second[0].data.c.array)


def test_default_shots_option_and_pub_shots(ideal):
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    isa = _isa(ideal, qc)
    sampler = SamplerV2(mode=ideal)
    sampler.options.default_shots = 123
    result = sampler.run([isa, (isa, None, 7)]).result()
    assert result[0].data.meas.num_shots == 123
    assert result[1].data.meas.num_shots == 7
    assert set(result[0].data.meas.get_counts()) <= {"00", "11"}


def test_noisy_device_differs_from_ideal_within_error_scale(noisy):
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.cx(0, 1)
    qc.cx(1, 2)
    qc.measure_all()
    isa = _isa(noisy, qc)
    shots = 4000
    counts = SamplerV2(mode=noisy).run([isa], shots=shots).result()[0].data.meas.get_counts()
    good = counts.get("000", 0) + counts.get("111", 0)
    # Some noise, but a GHZ state on a calibrated 5q line keeps most of its weight.
    assert 0.6 * shots < good < shots


def test_invalid_pubs_raise_before_any_request(ideal, service):
    before = service.client.jobs(limit=1)["count"]
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.measure([0, 1], [0, 1])
    not_isa = QuantumCircuit(33, 1)  # wider than the 32-qubit simulator
    not_isa.measure(0, 0)
    sampler = SamplerV2(mode=ideal)
    with pytest.raises(InvalidInputError, match=r"pubs\[0\]"):
        sampler.run([not_isa])
    with pytest.raises(ValueError, match="shots"):
        sampler.run([_isa(ideal, qc)], shots=0)
    # (a circuit without measurements is no longer refused: Qiskit reads zeros, issue 10)
    with pytest.raises(ValueError, match=r"pubs\[1\].*shots"):
        sampler.run([_isa(ideal, qc), (_isa(ideal, qc), None, 0)])
    assert service.client.jobs(limit=1)["count"] == before


def test_backend_run_get_counts(ideal):
    q = QuantumRegister(2, "q")
    a = ClassicalRegister(1, "a")
    b = ClassicalRegister(2, "b")
    qc = QuantumCircuit(q, a, b)
    qc.x(0)
    qc.measure(0, a[0])
    qc.measure(1, b[1])
    qc.measure(0, b[0])
    job = ideal.run([_isa(ideal, qc)], shots=100)
    counts = job.result().get_counts()
    assert counts == {"01 1": 100}
    assert job.status() is JobStatus.DONE


def test_bitarray_type_roundtrip(ideal):
    qc = QuantumCircuit(9, 9)
    qc.x([0, 8])
    qc.measure(range(9), range(9))
    data = SamplerV2(mode=ideal).run([_isa(ideal, qc)], shots=10).result()[0].data
    assert isinstance(data.c, BitArray)
    assert data.c.get_counts() == {"100000001": 10}
