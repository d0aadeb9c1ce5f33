"""Local PUB validation: errors name the PUB index, nothing is sent for a bad PUB."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Parameter
from qiskit.providers.fake_provider import GenericBackendV2
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import CouplingMap

from qiskit_rest_provider.exceptions import InvalidInputError
from qiskit_rest_provider.primitives.validation import (
    check_isa,
    coerce_estimator_pubs,
    coerce_sampler_pubs,
)


@pytest.fixture(scope="module")
def target():
    backend = GenericBackendV2(
        num_qubits=3,
        basis_gates=["cz", "id", "rz", "sx", "x"],
        coupling_map=CouplingMap.from_line(3, bidirectional=True),
        control_flow=True,
        seed=1,
    )
    return backend.target


def _measured(n=2):
    qc = QuantumCircuit(n, n)
    qc.sx(0)
    qc.cz(0, 1)
    qc.measure(range(n), range(n))
    return qc


def test_good_pubs_pass_and_shots_filled(target):
    pubs = coerce_sampler_pubs([_measured(), (_measured(), None, 10)], shots=100, target=target)
    assert [p.shots for p in pubs] == [100, 10]


def test_non_isa_gate_names_pub_instruction_and_qubits(target):
    bad = QuantumCircuit(2, 2)
    bad.h(1)
    bad.measure([0, 1], [0, 1])
    with pytest.raises(InvalidInputError, match=r"pubs\[1\].*'h' on qubits \[1\]"):
        coerce_sampler_pubs([_measured(), bad], shots=None, target=target)


def test_gate_on_unconnected_qubits_is_rejected(target):
    qc = QuantumCircuit(3, 1)
    qc.cz(0, 2)  # line 0-1-2: no edge 0-2
    qc.measure(0, 0)
    with pytest.raises(ValueError, match=r"pubs\[0\].*'cz' on qubits \[0, 2\]"):
        coerce_sampler_pubs([qc], shots=None, target=target)


def test_too_wide_circuit(target):
    qc = QuantumCircuit(4, 1)
    qc.measure(0, 0)
    with pytest.raises(InvalidInputError, match="4 qubits.*only 3"):
        check_isa(qc, target)


def test_control_flow_bodies_are_checked(target):
    qc = QuantumCircuit(QuantumRegister(2, "q"), ClassicalRegister(2, "c"))
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.h(1)
    qc.measure(1, 1)
    with pytest.raises(InvalidInputError, match="'h'"):
        check_isa(qc, target)


def test_sampler_takes_circuits_without_measurements_as_qiskit_does(target):
    """Issue 10 changed this: Qiskit's reference samplers read unmeasured registers as zeros
    and warn (returning an empty DataBin) for a circuit without classical registers."""
    qc = QuantumCircuit(2)
    qc.x(0)
    with pytest.warns(UserWarning, match=r"pubs\[0\].*no output classical registers"):
        coerce_sampler_pubs([qc], shots=None, target=target)
    qc2 = QuantumCircuit(2, 2)
    qc2.x(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (pub,) = coerce_sampler_pubs([qc2], shots=None, target=target)
    assert pub.circuit is qc2


@pytest.mark.parametrize("shots", [0, -5, 1.5, True])
def test_bad_run_shots(target, shots):
    with pytest.raises(ValueError):
        coerce_sampler_pubs([_measured()], shots=shots, target=target)


def test_bad_pub_shots(target):
    with pytest.raises(InvalidInputError, match=r"pubs\[0\]"):
        coerce_sampler_pubs([(_measured(), None, 0)], shots=None, target=target)


def test_parameter_count_mismatch(target):
    qc = QuantumCircuit(2, 1)
    qc.rz(Parameter("a"), 0)
    qc.rz(Parameter("b"), 1)
    qc.measure(0, 0)
    coerce_sampler_pubs([(qc, [0.1, 0.2])], shots=None, target=target)
    with pytest.raises(InvalidInputError, match=r"pubs\[0\]"):
        coerce_sampler_pubs([(qc, [0.1, 0.2, 0.3])], shots=None, target=target)
    with pytest.raises(InvalidInputError, match=r"pubs\[0\]"):
        coerce_sampler_pubs([qc], shots=None, target=target)


def test_single_circuit_instead_of_list():
    with pytest.raises(InvalidInputError, match="list"):
        coerce_sampler_pubs(_measured(), shots=None, target=None)


def test_estimator_checks(target):
    qc = QuantumCircuit(2)
    qc.sx(0)
    good = coerce_estimator_pubs([(qc, "ZZ")], precision=0.1, target=target)
    assert good[0].precision == 0.1
    with pytest.raises(InvalidInputError, match=r"pubs\[0\].*number of qubits"):
        coerce_estimator_pubs([(qc, SparsePauliOp("ZZZ"))], precision=None, target=target)
    for bad in (0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="precision"):
            coerce_estimator_pubs([(qc, "ZZ")], precision=bad, target=target)
    with pytest.raises(InvalidInputError, match=r"pubs\[1\].*precision"):
        coerce_estimator_pubs([(qc, "ZZ"), (qc, "ZZ", None, 0.0)], precision=None, target=target)


def test_estimator_broadcast_shapes_are_checked(target):
    a, b = Parameter("a"), Parameter("b")
    qc = QuantumCircuit(2)
    qc.rz(a, 0)
    qc.rz(b, 1)
    obs = [["ZZ"], ["XX"], ["ZI"]]
    pubs = coerce_estimator_pubs([(qc, obs, np.zeros((3, 2)))], precision=None, target=target)
    assert pubs[0].shape == (3, 3)
    flat = ["ZZ", "XX", "ZI"]
    with pytest.raises(InvalidInputError, match=r"pubs\[0\]"):
        coerce_estimator_pubs([(qc, flat, np.zeros((4, 2)))], precision=None, target=target)


def test_isa_result_is_cached_per_circuit(target):
    qc = _measured()
    check_isa(qc, target)
    # Mutating the circuit changes its length, so the cache does not hide new instructions.
    qc.h(0)
    with pytest.raises(InvalidInputError):
        check_isa(qc, target)


def test_max_shots(target):
    coerce_sampler_pubs([_measured()], shots=100, target=target, max_shots=100)
    with pytest.raises(InvalidInputError, match=r"pubs\[1\].*max_shots=100"):
        coerce_sampler_pubs(
            [_measured(), (_measured(), None, 101)], shots=None, target=target, max_shots=100
        )
