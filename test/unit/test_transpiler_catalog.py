"""The ``rest_provider`` translation stage on every built-in catalog device, levels 0-3.

Every output instruction must be accepted by the device Target on its physical qubits (recursing
into control flow), and small circuits must keep their meaning (state check on the qubits the
transpiled circuit actually uses, full operator check on the 5-qubit device).
"""

from __future__ import annotations

import pytest
from qiskit import QuantumCircuit
from qiskit.circuit.random import random_circuit
from qiskit.quantum_info import Operator, Statevector
from qiskit.transpiler import generate_preset_pass_manager

from qiskit_rest_provider.server.backends.catalog import BackendCatalog
from qiskit_rest_provider.transpiler.passes import unsupported_instructions

DEVICES = ("rest_line_5q", "rest_hex_27q", "rest_hex_127q", "rest_simulator")
LEVELS = (0, 1, 2, 3)


@pytest.fixture(scope="module")
def catalog() -> BackendCatalog:
    return BackendCatalog.load()


def test_catalog_has_the_built_in_devices(catalog):
    assert set(DEVICES) <= set(catalog.names())


def _isa_corpus() -> list[QuantumCircuit]:
    circuits = [
        random_circuit(
            n, 3, max_operands=3, measure=True, reset=True, conditional=True, seed=100 + i
        )
        for i, n in enumerate((2, 3, 4, 4, 5, 5))
    ]
    loop = QuantumCircuit(3, 2)
    loop.h(0)
    loop.cx(0, 2)
    loop.measure(0, 0)
    with loop.if_test((loop.clbits[0], 1)) as else_:
        loop.ry(0.3, 1)
        loop.swap(1, 2)
    with else_:
        loop.rzz(1.1, 0, 2)
    with loop.for_loop(range(2)):
        loop.cp(0.4, 2, 1)
    loop.measure(1, 1)
    with loop.switch(loop.clbits[1]) as case:
        with case(0):
            loop.ecr(0, 1)
        with case(case.DEFAULT):
            loop.crx(0.9, 2, 0)
    with loop.while_loop((loop.clbits[0], 1)):
        loop.reset(0)
        loop.measure(0, 0)
    circuits.append(loop)
    return circuits


def _unitary_corpus() -> list[QuantumCircuit]:
    return [random_circuit(n, 4, max_operands=3, seed=200 + i) for i, n in enumerate((2, 3, 3, 4))]


def _transpile(target, circuits, level):
    pm = generate_preset_pass_manager(
        level, target=target, translation_method="rest_provider", seed_transpiler=3
    )
    return pm.run(circuits, num_processes=1)


def _same_state(out: QuantumCircuit, circuit: QuantumCircuit) -> bool:
    """Compare ``out`` and ``circuit`` from |0...0> on the physical qubits ``out`` touches."""
    if out.layout is None:  # a Target without connectivity constraints needs no layout
        initial = final = list(range(circuit.num_qubits))
    else:
        initial = out.layout.initial_index_layout(filter_ancillas=True)
        final = out.layout.final_index_layout(filter_ancillas=True)
    active = set(initial) | set(final)
    for inst in out.data:
        active.update(out.find_bit(q).index for q in inst.qubits)
    order = sorted(active)
    position = {physical: i for i, physical in enumerate(order)}
    assert len(order) <= 14, "corpus circuits should stay small"
    compact = QuantumCircuit(len(order), global_phase=out.global_phase)
    for inst in out.data:
        compact.append(inst.operation, [position[out.find_bit(q).index] for q in inst.qubits])
    expected = QuantumCircuit(len(order))
    expected.compose(circuit, [position[p] for p in final], inplace=True)
    return Statevector(compact).equiv(Statevector(expected))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("level", LEVELS)
def test_output_is_isa_for_every_device_and_level(catalog, device, level):
    target = catalog.get(device).target
    circuits = _isa_corpus()
    for circuit, out in zip(circuits, _transpile(target, circuits, level)):
        assert unsupported_instructions(target, out) == [], (device, level, circuit)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("level", LEVELS)
def test_output_keeps_the_meaning(catalog, device, level):
    target = catalog.get(device).target
    circuits = _unitary_corpus()
    for circuit, out in zip(circuits, _transpile(target, circuits, level)):
        assert unsupported_instructions(target, out) == []
        assert _same_state(out, circuit), (device, level, circuit)
        if out.num_qubits <= 5:
            padded = QuantumCircuit(out.num_qubits)
            padded.compose(circuit, range(circuit.num_qubits), inplace=True)
            assert Operator.from_circuit(out).equiv(Operator(padded))
