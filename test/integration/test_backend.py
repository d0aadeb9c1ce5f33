"""RestBackend against the real reference server: the Target drives Qiskit's transpiler.

User story: "user transpiles with ``generate_preset_pass_manager(backend=service.backend(...))``
and every instruction of the result is supported by the backend on exactly its qubits".
"""

from __future__ import annotations

import math

import pytest
from qiskit.circuit import QuantumCircuit
from qiskit.circuit.library import QFTGate, efficient_su2
from qiskit.transpiler import generate_preset_pass_manager

from qiskit_rest_provider import ProviderService

DIRECTIVES = {"barrier"}


@pytest.fixture(scope="module")
def service(reference_server) -> ProviderService:
    return ProviderService(
        url=reference_server.url,
        token=reference_server.token,
        instance=reference_server.instance_crn,
    )


def _circuits() -> list[QuantumCircuit]:
    ghz = QuantumCircuit(6, 6, name="ghz")
    ghz.h(0)
    for q in range(5):
        ghz.cx(q, q + 1)
    ghz.measure(range(6), range(6))
    qft = QuantumCircuit(5, name="qft")
    qft.append(QFTGate(5), range(5))
    qft.measure_all()
    ansatz = efficient_su2(4, reps=2)
    ansatz = ansatz.assign_parameters([0.1 * (i + 1) for i in range(ansatz.num_parameters)])
    ansatz.measure_all()
    mixed = QuantumCircuit(4, 2, name="mixed")
    mixed.h(0)
    mixed.ccx(0, 1, 2)
    mixed.swap(1, 3)
    mixed.rzz(math.pi / 3, 0, 3)
    mixed.reset(2)
    mixed.barrier()
    mixed.measure([0, 3], [0, 1])
    return [ghz, qft, ansatz, mixed]


def _assert_isa(circuit: QuantumCircuit, target) -> None:
    for instruction in circuit.data:
        name = instruction.operation.name
        if name in DIRECTIVES:
            continue
        qargs = tuple(circuit.find_bit(q).index for q in instruction.qubits)
        params = getattr(instruction.operation, "params", None)
        assert target.instruction_supported(name, qargs), (
            f"{circuit.name}: {name} on {qargs} is not in the Target"
        )
        if params and name in target.operation_names:
            assert target.instruction_supported(
                name, qargs, parameters=params
            ) or target.instruction_supported(name, qargs), f"{name}{params} on {qargs}"


@pytest.mark.parametrize("level", [1, 2, 3])
def test_preset_pass_manager_output_is_isa_for_the_27q_device(service, level):
    backend = service.backend("rest_hex_27q")
    pm = generate_preset_pass_manager(optimization_level=level, backend=backend, seed_transpiler=7)
    for circuit in _circuits():
        isa = pm.run(circuit)
        assert isa.num_qubits == 27
        _assert_isa(isa, backend.target)


def test_faulty_or_missing_edges_are_respected(service):
    """Two-qubit gates land only on pairs that the properties list for them."""
    backend = service.backend("rest_hex_27q")
    target = backend.target
    two_qubit = {qargs for qargs in target.qargs or () if len(qargs) == 2}
    assert two_qubit, "the 27q device lists two-qubit gates"
    pm = generate_preset_pass_manager(optimization_level=1, backend=backend, seed_transpiler=3)
    isa = pm.run(_circuits()[0])
    for instruction in isa.data:
        if instruction.operation.num_qubits == 2:
            qargs = tuple(isa.find_bit(q).index for q in instruction.qubits)
            assert qargs in two_qubit


def test_translation_plugin_is_used_by_default(service):
    backend = service.backend("rest_line_5q")
    pm = generate_preset_pass_manager(optimization_level=1, backend=backend)
    assert backend.get_translation_stage_plugin() == "rest_provider"
    circuit = QuantumCircuit(2, 2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure([0, 1], [0, 1])
    _assert_isa(pm.run(circuit), backend.target)


def test_backend_run_counts(service):
    pytest.importorskip("qiskit_rest_provider.primitives.backend_run")
    backend = service.backend("rest_simulator")
    circuit = QuantumCircuit(2, 2)
    circuit.x(0)
    circuit.measure([0, 1], [0, 1])
    job = backend.run(circuit, shots=64)
    counts = job.result().get_counts()
    assert counts == {"01": 64}


def test_the_runtime_client_docstring_lists_the_servers_backends(reference_server):
    # The module's example shows what GET /backends answers: it must be the server's real list.
    import ast
    import re

    from qiskit_rest_provider.account import Account
    from qiskit_rest_provider.client import runtime

    shown = re.search(r"client\.backends\(\)\]  # doctest: \+SKIP\n\s+(\[.*?\])", runtime.__doc__)
    assert shown is not None, "the example's listing is gone"
    client = runtime.RuntimeClient(
        Account(
            "ibm_quantum_platform",
            reference_server.url,
            reference_server.token,
            instance=reference_server.instance_crn,
        )
    )
    assert ast.literal_eval(shown.group(1)) == [b["name"] for b in client.backends()]
