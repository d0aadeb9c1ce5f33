"""Legacy Result built from sampler results: counts formatted exactly as Qiskit does."""

from __future__ import annotations

from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.primitives import StatevectorSampler

from qiskit_rest_provider.primitives.backend_run import primitive_result_to_result


def _circuits():
    q = QuantumRegister(3, "q")
    a = ClassicalRegister(1, "a")
    b = ClassicalRegister(2, "output")
    two = QuantumCircuit(q, a, b, name="two_regs", metadata={"k": 1})
    two.x(0)
    two.x(2)
    two.measure(0, a[0])
    two.measure(1, b[0])
    two.measure(2, b[1])
    bell = QuantumCircuit(2, name="bell")
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    return [two, bell]


def test_counts_and_memory_match_qiskit_format():
    circuits = _circuits()
    primitive = StatevectorSampler(seed=1).run(circuits, shots=200).result()
    result = primitive_result_to_result(
        primitive, circuits, backend_name="b", job_id="j", memory=True
    )
    # The last register is leftmost, registers separated by a space.
    assert result.get_counts(0) == {"10 1": 200}
    assert result.get_counts(circuits[0]) == {"10 1": 200}
    assert result.get_memory(0)[:2] == ["10 1", "10 1"]
    bell = result.get_counts(1)
    assert set(bell) <= {"00", "11"} and sum(bell.values()) == 200
    assert result.get_counts() == [result.get_counts(0), bell]
    assert result.job_id == "j"
    assert result.results[0].header["metadata"] == {"k": 1}
