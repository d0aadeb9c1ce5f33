"""Remote transpilation pieces that need no server: the worker function and layout rebuilding."""

from __future__ import annotations

import base64
import io

import pytest
from qiskit import QuantumCircuit, qpy
from qiskit.circuit.random import random_circuit
from qiskit.quantum_info import Operator
from qiskit.transpiler import CouplingMap, generate_preset_pass_manager

from qiskit_rest_provider.server.backends.catalog import BackendCatalog
from qiskit_rest_provider.server.transpile.tasks import TranspileRequest, run_transpile
from qiskit_rest_provider.transpiler.passes import unsupported_instructions
from qiskit_rest_provider.transpiler.remote import _circuit_from_item, _request_body
from qiskit_rest_provider.wire.circuits import export_qasm3


@pytest.fixture(scope="module")
def catalog():
    return BackendCatalog.load()


def _routed() -> QuantumCircuit:
    circuit = QuantumCircuit(4)
    circuit.h(0)
    circuit.cx(0, 3)
    circuit.cx(3, 1)
    circuit.cx(1, 2)
    circuit.cx(2, 0)
    circuit.rz(0.25, 2)
    return circuit


@pytest.mark.parametrize("device", ["rest_line_5q", "rest_hex_27q", "rest_simulator"])
@pytest.mark.parametrize("form", ["qasm", "qpy"])
def test_worker_output_rebuilds_the_local_layout(catalog, device, form):
    spec = catalog.get(device)
    circuit = _routed()
    request = TranspileRequest(
        backend=device,
        optimization_level=1,
        options={"seed_transpiler": 4},
        spec=spec,
        **(
            {"qasm_circuits": [export_qasm3(circuit).text]}
            if form == "qasm"
            else {"qpy_circuits": _qpy(circuit)}
        ),
    )
    outcome = run_transpile(request)
    assert outcome["ok"], outcome
    [item] = outcome["result"]
    local = generate_preset_pass_manager(
        1, target=spec.target, translation_method="rest_provider", seed_transpiler=4
    ).run(circuit)
    rebuilt = _circuit_from_item(item, circuit, export_qasm3(circuit))
    assert unsupported_instructions(spec.target, rebuilt) == []
    if local.layout is None:
        assert rebuilt.layout is None
    else:
        assert rebuilt.layout.initial_index_layout() == local.layout.initial_index_layout()
        assert rebuilt.layout.final_index_layout() == local.layout.final_index_layout()
        assert rebuilt.layout.routing_permutation() == local.layout.routing_permutation()
    if rebuilt.num_qubits <= 5:
        padded = QuantumCircuit(rebuilt.num_qubits)
        padded.compose(circuit, range(circuit.num_qubits), inplace=True)
        assert Operator.from_circuit(rebuilt).equiv(Operator(padded))


def _qpy(*circuits: QuantumCircuit) -> str:
    buffer = io.BytesIO()
    qpy.dump(list(circuits), buffer)
    return base64.b64encode(buffer.getvalue()).decode()


def test_worker_reports_bad_input_by_field(catalog):
    spec = catalog.get("rest_line_5q")
    bad_qasm = run_transpile(
        TranspileRequest(
            backend="rest_line_5q",
            optimization_level=1,
            qasm_circuits=['OPENQASM 2.0; include "qelib1.inc"; qreg q[1];', "nonsense"],
            spec=spec,
        )
    )
    assert not bad_qasm["ok"]
    assert bad_qasm["message"].startswith("qasm_circuits[1]")
    bad_qpy = run_transpile(
        TranspileRequest(
            backend="rest_line_5q", optimization_level=1, qpy_circuits="!!!", spec=spec
        )
    )
    assert not bad_qpy["ok"] and "qpy_circuits" in bad_qpy["message"]
    too_wide = QuantumCircuit(7)
    too_wide.h(range(7))
    wide = run_transpile(
        TranspileRequest(
            backend="rest_line_5q",
            optimization_level=1,
            qasm_circuits=[export_qasm3(too_wide).text],
            spec=spec,
        )
    )
    assert not wide["ok"] and "7" in wide["message"]


def test_worker_with_coupling_map_only():
    circuit = random_circuit(3, 3, max_operands=2, seed=1)
    outcome = run_transpile(
        TranspileRequest(
            backend=None,
            optimization_level=2,
            qasm_circuits=[export_qasm3(circuit).text],
            coupling_map=[[0, 1], [1, 2]],
        )
    )
    assert outcome["ok"], outcome
    [item] = outcome["result"]
    out = _circuit_from_item(item, circuit, None)
    assert set(out.count_ops()) <= {"cz", "rz", "sx", "x", "id", "barrier"}
    cmap = CouplingMap([[0, 1], [1, 2]])
    for inst in out.data:
        if inst.operation.num_qubits == 2:
            pair = tuple(out.find_bit(q).index for q in inst.qubits)
            assert cmap.graph.has_edge(*pair)


def test_request_body_splits_service_and_qiskit_options():
    circuit = QuantumCircuit(1)
    circuit.h(0)
    body, exported = _request_body(
        [circuit],
        "qasm3",
        {"seed_transpiler": 3, "use_ai": True, "coupling_map": CouplingMap([[0, 1]])},
    )
    assert body["qiskit_transpile_options"] == {"seed_transpiler": 3}
    assert body["use_ai"] is True
    assert body["backend_coupling_map"] == [[0, 1]]
    assert body["qasm_circuits"][0].startswith("OPENQASM 3")
    assert exported[0].text == body["qasm_circuits"][0]
