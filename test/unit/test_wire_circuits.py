"""OpenQASM 3 / QPY round trips of qiskit_rest_provider.wire.circuits."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from qiskit import QuantumCircuit, qasm3
from qiskit.circuit import ClassicalRegister, Parameter, ParameterVector, QuantumRegister
from qiskit.circuit.library import get_standard_gate_name_mapping
from qiskit.quantum_info import Operator, Statevector
from qiskit.transpiler import CouplingMap, generate_preset_pass_manager

from qiskit_rest_provider.exceptions import WireFormatError
from qiskit_rest_provider.wire import circuits as wc
from qiskit_rest_provider.wire import decode_circuit, encode_qpy, export_qasm3, import_qasm


def _ops(circuit):
    return [
        (
            inst.operation.name,
            tuple(circuit.find_bit(q).index for q in inst.qubits),
            tuple(circuit.find_bit(c).index for c in inst.clbits),
        )
        for inst in circuit.data
    ]


def _bind(circuit, parameters, values):
    return circuit.assign_parameters(dict(zip(parameters, values)))


def test_parameter_vector_longer_than_ten_binds_in_declaration_order():
    theta = ParameterVector("θ", 13)
    qc = QuantumCircuit(3)
    for i, t in enumerate(theta):
        qc.ry(t, i % 3)
        qc.cx(i % 3, (i + 1) % 3)
    exported = export_qasm3(qc)
    assert list(exported.parameters) == list(qc.parameters)
    imported = import_qasm(exported.text)
    assert len(imported.parameters) == 13
    # the importer sorts _θ_10_ before _θ_2_, declaration order does not
    assert list(imported.circuit.parameters) != list(imported.parameters)
    values = np.random.default_rng(1).uniform(0, 2 * np.pi, 13)
    expected = Statevector(_bind(qc, exported.parameters, values))
    got = Statevector(_bind(imported.circuit, imported.parameters, values))
    assert expected.equiv(got)


def test_parameter_names_clashing_with_keywords():
    names = ["x", "pi", "input", "U", "t", "θ", "a b"]
    params = [Parameter(n) for n in names]
    qc = QuantumCircuit(2)
    qc.x(0)
    for i, p in enumerate(params):
        qc.rz(p, i % 2)
        qc.rx(p * 2 + 1, (i + 1) % 2)
    exported = export_qasm3(qc)
    imported = import_qasm(exported.text)
    values = np.linspace(0.1, 1.3, len(names))
    a = _bind(qc, exported.parameters, values)
    b = _bind(imported.circuit, imported.parameters, values)
    assert Operator(a).equiv(Operator(b))
    assert exported.parameter_names == tuple(p.name for p in imported.parameters)


def test_register_named_output_and_keywords_restored():
    qc = QuantumCircuit(
        QuantumRegister(2, "q"),
        ClassicalRegister(1, "output"),
        ClassicalRegister(2, "c"),
        ClassicalRegister(1, "input"),
    )
    qc.h(0)
    qc.cx(0, 1)
    qc.measure(0, 0)
    qc.measure([0, 1], [1, 2])
    qc.measure(1, 3)
    text = export_qasm3(qc).text
    assert "qiskit-rest-provider registers" in text
    imported = import_qasm(text).circuit
    assert [(r.name, r.size) for r in imported.cregs] == [
        ("output", 1),
        ("c", 2),
        ("input", 1),
    ]
    assert _ops(imported) == _ops(qc)


def test_parameterized_circuit_with_output_register_uses_python_exporter():
    qc = QuantumCircuit(QuantumRegister(1, "q"), ClassicalRegister(1, "output"))
    qc.rx(Parameter("a"), 0)
    qc.measure(0, 0)
    exported = export_qasm3(qc)
    imported = import_qasm(exported.text)
    assert imported.circuit.cregs[0].name == "output"
    assert [p.name for p in imported.parameters] == ["a"]


STANDARD_NAMES = [
    name
    for name, gate in get_standard_gate_name_mapping().items()
    if name not in {"measure", "reset", "delay", "barrier", "global_phase", "store"}
    and gate.num_qubits > 0
    and not gate.num_clbits
]


@pytest.mark.parametrize("name", STANDARD_NAMES)
def test_every_standard_gate_comes_back_as_its_standard_class(name):
    template = get_standard_gate_name_mapping()[name]
    params = [0.1 * (i + 3) for i in range(len(template.params))]
    gate = template.base_class(*params) if params else template.base_class()
    qc = QuantumCircuit(template.num_qubits)
    qc.append(gate, list(range(template.num_qubits)))
    imported = import_qasm(export_qasm3(qc).text).circuit
    assert [i.operation.name for i in imported.data] == [name]
    op = imported.data[0].operation
    assert isinstance(op, template.base_class), type(op)
    assert np.allclose([float(p) for p in op.params], params)


def test_isa_gate_names_round_trip_on_same_qubits():
    qc = QuantumCircuit(QuantumRegister(4, "q"), ClassicalRegister(4, "meas"))
    qc.ecr(0, 1)
    qc.rzz(0.3, 1, 2)
    qc.id(3)
    qc.sx(2)
    qc.cz(3, 0)
    qc.rz(1.2, 1)
    qc.x(2)
    qc.barrier()
    qc.measure(range(4), range(4))
    for parameterized in (False, True):
        circuit = qc.copy()
        if parameterized:
            circuit.rz(Parameter("p"), 0)
        imported = import_qasm(export_qasm3(circuit).text).circuit
        assert _ops(imported) == _ops(circuit)
        assert type(imported.data[0].operation).__name__.endswith("ECRGate")


def test_text_without_definitions_for_standard_names_is_accepted():
    text = (
        'OPENQASM 3.0;\ninclude "stdgates.inc";\nbit[2] c;\n'
        "ecr $0, $1;\nrzz(0.5) $1, $2;\nid $0;\nc[0] = measure $0;\nc[1] = measure $2;\n"
    )
    imported = import_qasm(text, num_qubits=5).circuit
    assert imported.num_qubits == 5
    assert _ops(imported) == [
        ("ecr", (0, 1), ()),
        ("rzz", (1, 2), ()),
        ("id", (0,), ()),
        ("measure", (0,), (0,)),
        ("measure", (2,), (1,)),
    ]


def _isa_circuit(num_qubits=5, seed=3):
    qc = QuantumCircuit(
        QuantumRegister(3, "q"), ClassicalRegister(2, "a"), ClassicalRegister(1, "b")
    )
    qc.h(0)
    qc.cx(0, 1)
    qc.cx(1, 2)
    qc.ry(0.4, 2)
    qc.measure(0, 0)
    qc.measure(1, 1)
    qc.measure(2, 2)
    pm = generate_preset_pass_manager(
        optimization_level=1,
        basis_gates=["cz", "id", "rz", "sx", "x"],
        coupling_map=CouplingMap.from_line(num_qubits),
        initial_layout=[4, 2, 3],
        seed_transpiler=seed,
    )
    return pm.run(qc)


def test_hardware_qubits_keep_indices_and_backend_width():
    isa = _isa_circuit()
    text = export_qasm3(isa).text
    assert "$4" in text
    for width in (5, 7):
        imported = import_qasm(text, num_qubits=width).circuit
        assert imported.num_qubits == width
        assert _ops(imported) == _ops(isa)
    with pytest.raises(WireFormatError, match="backend has 3"):
        import_qasm(text, num_qubits=3)


def test_fast_path_agrees_with_antlr_path():
    isa = _isa_circuit()
    text = export_qasm3(isa).text
    fast = wc._qasm_import.import_fast(text)
    assert fast is not None
    antlr, params = wc._qasm_import.import_antlr(text)
    assert params == ()
    assert _ops(fast[0]) == _ops(antlr)
    assert Operator(fast[0].remove_final_measurements(inplace=False)).equiv(
        Operator(antlr.remove_final_measurements(inplace=False))
    )


def test_flat_reader_angles_literal_or_expression_and_from_many_threads():
    """Plain number angles skip ``ast.parse`` and read as Python would (``007`` is no number
    there: the flat reader leaves such a program to the general importer); expressions still
    parse, and eight threads importing at once all succeed (CPython 3.11 failed one of two
    concurrent ``ast.parse`` calls now and then: SystemError, recursion depth mismatch)."""
    import concurrent.futures as cf

    from qiskit_rest_provider.wire._qasm_flat import import_flat

    def program(angles: list[str]) -> str:
        body = " ".join(f"rz({a}) q[0];" for a in angles)
        return f'OPENQASM 3.0; include "stdgates.inc"; qubit[1] q; {body}'

    literals = ["0", "-0.5", "+1", ".5", "1.", "1e-3", "01e2", "3"]
    read = import_flat(program(literals))
    assert read is not None
    assert [float(i.operation.params[0]) for i in read[0].data] == [
        0.0, -0.5, 1.0, 0.5, 1.0, 1e-3, 100.0, 3.0,
    ]  # fmt: skip
    assert import_flat(program(["007"])) is None
    expressions = [f"pi/{k} + {k}*0.25 - (1.5*{k})" for k in range(1, 40)]
    want = [math.pi / k + k * 0.25 - 1.5 * k for k in range(1, 40)]

    def angles(shift: int) -> list[float]:
        k = shift % 39
        out = import_flat(program(expressions[k:] + expressions[:k]))
        assert out is not None
        return [float(i.operation.params[0]) for i in out[0].data]

    with cf.ThreadPoolExecutor(8) as pool:
        for shift, got in zip(range(200), pool.map(angles, range(200)), strict=True):
            k = shift % 39
            assert got == pytest.approx(want[k:] + want[:k], abs=1e-12)


def test_delays_keep_units_in_the_flat_reader():
    qc = QuantumCircuit(QuantumRegister(2, "q"), ClassicalRegister(2, "c"))
    qc.delay(100, 0, unit="dt")
    qc.delay(1.5, 1, unit="ns")
    qc.delay(2, [0, 1], unit="us")
    qc.delay(3e-6, 0, unit="s")
    qc.reset(1)
    qc.measure([0, 1], [0, 1])
    before = wc.import_stats["flat"]
    wc.clear_caches()
    imported = import_qasm(export_qasm3(qc).text).circuit
    assert wc.import_stats["flat"] == before + 1
    got = [
        (i.operation.name, i.operation.params, getattr(i.operation, "unit", None))
        for i in imported.data
    ]
    assert got[:5] == [
        ("delay", [100], "dt"),
        ("delay", [1.5], "ns"),
        ("delay", [2.0], "us"),
        ("delay", [2.0], "us"),
        ("delay", [3e-06], "s"),
    ]
    assert _ops(imported) == _ops(qc)


def test_antlr_only_features_round_trip():
    qc = QuantumCircuit(QuantumRegister(2, "q"), ClassicalRegister(2, "c"))
    qc.h(0)
    qc.delay(100, 0, unit="ns")
    qc.reset(1)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.x(1)
    qc.measure(1, 1)
    before = dict(wc.import_stats)
    imported = import_qasm(export_qasm3(qc).text).circuit
    assert wc.import_stats["antlr"] == before["antlr"] + 1
    names = [i.operation.name for i in imported.data]
    assert names == ["h", "delay", "reset", "measure", "if_else", "measure"]


def test_import_cache_returns_independent_copies():
    text = export_qasm3(_isa_circuit()).text
    first = import_qasm(text, num_qubits=5).circuit
    hits = wc.import_stats["cache_hits"]
    first.x(0)
    second = import_qasm(text, num_qubits=5).circuit
    assert wc.import_stats["cache_hits"] == hits + 1
    assert len(second.data) == len(first.data) - 1


def test_export_cache_hits_and_detects_mutation(monkeypatch):
    qc = QuantumCircuit(2)
    qc.rx(Parameter("a"), 0)
    first = export_qasm3(qc)
    assert export_qasm3(qc) is first
    qc.cx(0, 1)
    second = export_qasm3(qc)
    assert second is not first and "cx" in second.text


def test_rust_exporter_panic_falls_back(monkeypatch):
    class Panic(BaseException):
        pass

    def boom(*args, **kwargs):
        raise Panic("rust panicked")

    monkeypatch.setattr(qasm3, "dumps_experimental", boom)
    qc = QuantumCircuit(1, 1)
    qc.x(0)
    qc.measure(0, 0)
    wc.clear_caches()
    assert export_qasm3(qc).text == qasm3.dumps(qc)


def test_qasm2_and_errors():
    text = 'OPENQASM 2.0;\ninclude "qelib1.inc";\nqreg q[2];\ncreg c[2];\nh q[0];\ncx q[0],q[1];\n'
    assert _ops(import_qasm(text).circuit)[:2] == [("h", (0,), ()), ("cx", (0, 1), ())]
    with pytest.raises(WireFormatError, match="invalid OpenQASM 3"):
        import_qasm("OPENQASM 3.0; qubit[2] q; frobnicate q[0];")
    with pytest.raises(WireFormatError, match="pubs\\[2\\].circuit"):
        decode_circuit(42, field="pubs[2].circuit")
    with pytest.raises(WireFormatError, match="QPY"):
        decode_circuit({"__type__": "QuantumCircuit", "__value__": "AAAA"})


def test_qpy_wrapper_round_trip_and_runtime_decoder():
    import json

    from qiskit_ibm_runtime import RuntimeDecoder, RuntimeEncoder

    theta = ParameterVector("θ", 11)
    qc = QuantumCircuit(2, 2, global_phase=0.7)
    for t in theta:
        qc.rx(t, 0)
    qc.measure([0, 1], [0, 1])
    wrapper = encode_qpy(qc)
    imported = decode_circuit(wrapper)
    assert imported.circuit == qc
    assert imported.parameters == tuple(qc.parameters)
    assert json.loads(json.dumps(wrapper), cls=RuntimeDecoder) == qc
    theirs = json.loads(json.dumps(qc, cls=RuntimeEncoder))
    assert decode_circuit(theirs).circuit == qc
    with pytest.raises(WireFormatError, match="backend has 1"):
        decode_circuit(wrapper, num_qubits=1)


def test_global_phase_gate_and_math():
    qc = QuantumCircuit(1)
    qc.rz(math.pi / 3, 0)
    imported = import_qasm(export_qasm3(qc).text).circuit
    assert Operator(imported).equiv(Operator(qc))


def test_antlr_path_binds_in_declaration_order_too(monkeypatch):
    monkeypatch.setattr(wc._qasm_flat, "import_flat", lambda text: None)
    wc.clear_caches()
    theta = ParameterVector("θ", 12)
    qc = QuantumCircuit(2)
    for i, t in enumerate(theta):
        qc.ry(t + 0.5 * i, i % 2)
        qc.cx(0, 1)
    before = wc.import_stats["antlr"]
    exported = export_qasm3(qc)
    imported = import_qasm(exported.text)
    assert wc.import_stats["antlr"] == before + 1
    values = np.linspace(0.1, 2.0, 12)
    assert Statevector(_bind(qc, exported.parameters, values)).equiv(
        Statevector(_bind(imported.circuit, imported.parameters, values))
    )


def test_flat_reader_takes_parameterized_isa_text():
    from qiskit.circuit.library import efficient_su2

    qc = efficient_su2(4, reps=1)
    qc.measure_all()
    pm = generate_preset_pass_manager(
        optimization_level=1,
        basis_gates=["cz", "id", "rz", "sx", "x"],
        coupling_map=CouplingMap.from_line(6),
        seed_transpiler=5,
    )
    isa = pm.run(qc)
    exported = export_qasm3(isa)
    wc.clear_caches()
    before = wc.import_stats["flat"]
    imported = import_qasm(exported.text, num_qubits=6)
    assert wc.import_stats["flat"] == before + 1
    assert imported.circuit.num_qubits == 6
    values = np.random.default_rng(0).uniform(0, 6, len(exported.parameters))
    a = _bind(isa, exported.parameters, values).remove_final_measurements(inplace=False)
    b = _bind(imported.circuit, imported.parameters, values).remove_final_measurements(
        inplace=False
    )
    assert Statevector(a).equiv(Statevector(b))


def test_register_names_antlr_would_escape_are_kept():
    qc = QuantumCircuit(
        QuantumRegister(2, "Q"),
        ClassicalRegister(1, "Meas"),
        ClassicalRegister(1, "my reg"),
        ClassicalRegister(1, "c"),
    )
    qc.h(0)
    qc.measure(0, 0)
    qc.measure(1, 1)
    with qc.if_test((qc.clbits[0], 1)):  # control flow: ANTLR path
        qc.x(1)
    qc.measure(1, 2)
    imported = import_qasm(export_qasm3(qc).text).circuit
    assert [r.name for r in imported.cregs] == ["Meas", "my reg", "c"]
    assert [r.name for r in imported.qregs] == ["Q"]
    assert [i.operation.name for i in imported.data] == [
        "h",
        "measure",
        "measure",
        "if_else",
        "measure",
    ]


def test_condition_on_renamed_register_survives():
    out = ClassicalRegister(2, "output")
    qc = QuantumCircuit(QuantumRegister(2, "q"), out, ClassicalRegister(1, "Flag"))
    qc.x(0)
    qc.measure([0, 1], [0, 1])
    with qc.if_test((out, 1)):
        qc.x(1)
    qc.measure(1, 2)
    imported = import_qasm(export_qasm3(qc).text).circuit
    assert [r.name for r in imported.cregs] == ["output", "Flag"]
    condition = imported.data[3].operation.condition
    assert condition[0] == imported.cregs[0] and condition[1] == 1
    from qiskit_aer import AerSimulator

    counts = AerSimulator().run(imported, shots=20, seed_simulator=1).result().get_counts()
    assert counts == {"1 01": 20}


def test_global_phase_gates_do_not_break_export():
    from qiskit.circuit.library import GlobalPhaseGate

    qc = QuantumCircuit(1, 1)
    qc.h(0)
    qc.append(GlobalPhaseGate(0.3), [])
    qc.measure(0, 0)
    imported = import_qasm(export_qasm3(qc).text).circuit
    assert [i.operation.name for i in imported.data] == ["h", "measure"]


def test_hostile_angle_expressions_do_not_hang():
    text = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[1] q;\nrz(9**9**9) q[0];\n'
    with pytest.raises(WireFormatError):
        import_qasm(text)


@pytest.mark.parametrize(
    ("text", "num_qubits", "message"),
    [
        ("OPENQASM 3.0; qubit[100000000] q;", 5, "declares 100000000 qubits but the backend has 5"),
        ("OPENQASM 3.0; qubit[0x10000000] q;", None, "at most 100000 are allowed"),
        ("OPENQASM 3.0; qubit[1_000_000_000] q;", None, "declares 1000000000 qubits"),
        ("OPENQASM 2.0; qreg q[100000000];", 27, "declares 100000000 qubits"),
        ("OPENQASM 3.0; bit[100000000] c;", 5, "100000000 classical bits"),
        ('OPENQASM 3.0; include "stdgates.inc"; x $90000000;', 5, "hardware qubit $90000000"),
        ("OPENQASM 3.0; const int n = 9; qubit[n] q;", 5, "sizes must be integer literals"),
    ],
)
def test_huge_declarations_are_refused_before_parsing(text, num_qubits, message):
    # Before this check the importers allocated per declared bit: a fuzzed `qubit[1e8]` took
    # the test process (and would take the server) to 23 GB and the OOM killer.
    with pytest.raises(WireFormatError, match=re.escape(message)):
        import_qasm(text, num_qubits=num_qubits)


def test_declaration_check_ignores_comments_and_accepts_normal_programs():
    text = (
        'OPENQASM 3.0; include "stdgates.inc";\n// qubit[100000000] big;\n/* bit[99999999] c; */\n'
        "qubit[2] q; bit[2] c; h q[0]; cx q[0], q[1]; c = measure q;"
    )
    imported = import_qasm(text, num_qubits=5)
    assert imported.circuit.num_clbits == 2


def _corrupt_qpy_header(circuit, field_offset, pack, value):
    import base64
    import struct
    import zlib

    raw = bytearray(zlib.decompress(base64.b64decode(encode_qpy(circuit)["__value__"])))
    start = struct.unpack_from("!Q", raw, 20)[0] if raw[6] >= 16 else 20
    struct.pack_into(pack, raw, start + field_offset, value)
    return {"__type__": "QuantumCircuit", "__value__": base64.b64encode(bytes(raw)).decode()}


@pytest.mark.parametrize(
    ("field_offset", "pack", "value", "message"),
    [
        (5, "!I", 2**31, "declares 2147483648 qubits"),  # num_qubits
        (9, "!I", 2**30, "declares 1073741824 classical bits"),  # num_clbits
        (25, "!Q", 2**40, "counts exceed the payload's size"),  # num_instructions
    ],
)
def test_qpy_header_counts_are_checked_before_loading(field_offset, pack, value, message):
    # A fuzzed QPY payload claiming 2**31 qubits made qpy.load allocate until the OOM killer
    # ended the test process; a request carrying it would have done the same to the server.
    circuit = QuantumCircuit(3, 2)
    circuit.h(0)
    circuit.measure([0, 1], [0, 1])
    with pytest.raises(WireFormatError, match=re.escape(message)):
        decode_circuit(_corrupt_qpy_header(circuit, field_offset, pack, value))
