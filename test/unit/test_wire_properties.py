"""Property-based round trips of the wire format (hypothesis), kept small for CI time."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qiskit import QuantumCircuit
from qiskit.circuit import ClassicalRegister, ParameterVector, QuantumRegister
from qiskit.circuit.random import random_circuit
from qiskit.primitives import BitArray, DataBin, PrimitiveResult, PubResult
from qiskit.primitives.containers import SamplerPubResult
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit.quantum_info import Statevector

from qiskit_rest_provider.exceptions import WireFormatError
from qiskit_rest_provider.wire import (
    decode_estimator_params,
    decode_ndarray,
    decode_result,
    decode_sampler_params,
    dumps,
    encode_estimator_params,
    encode_ndarray,
    encode_result,
    encode_sampler_params,
    export_qasm3,
    import_qasm,
    loads,
)

SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BIT_WIDTHS = [1, 7, 8, 9, 64, 65, 127]
shapes = st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple)


@st.composite
def bit_arrays(draw, shape=None):
    shape = draw(shapes) if shape is None else shape
    shots = draw(st.integers(1, 20))
    num_bits = draw(st.sampled_from(BIT_WIDTHS))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    nbytes = (num_bits + 7) // 8
    array = rng.integers(0, 256, size=(*shape, shots, nbytes), dtype=np.uint8)
    if num_bits % 8:
        array[..., 0] &= (1 << (num_bits % 8)) - 1
    # make zeros and all-ones common: they are the edge cases of hex formatting
    if draw(st.booleans()):
        array[..., 0, :] = 0
    return BitArray(array, num_bits)


@st.composite
def sampler_results(draw):
    shape = draw(shapes)
    names = draw(
        st.lists(
            st.sampled_from(["c", "meas", "output", "alpha", "b1"]),
            min_size=1,
            max_size=3,
            unique=True,
        )
    )
    shots = draw(st.integers(1, 20))
    fields = {}
    for name in names:
        bits = draw(bit_arrays(shape))
        fields[name] = BitArray(bits.array[..., :1, :].repeat(shots, axis=-2), bits.num_bits)
    pub = SamplerPubResult(DataBin(**fields, shape=shape), {"circuit_metadata": {"k": 1}})
    return PrimitiveResult([pub], {"version": 2})


@SETTINGS
@given(result=sampler_results(), qiskit=st.booleans())
def test_sampler_results_round_trip(result, qiskit):
    decoded = decode_result(encode_result(result, qiskit=qiskit))
    assert decoded[0].data.shape == result[0].data.shape
    for name in result[0].data.keys():
        assert decoded[0].data[name] == result[0].data[name]
    assert decoded[0].metadata == result[0].metadata


@SETTINGS
@given(bits=bit_arrays())
def test_plain_hex_matches_python_int_formatting(bits):
    body = loads(
        encode_result(
            PrimitiveResult([SamplerPubResult(DataBin(c=bits, shape=bits.shape), {})]),
            qiskit=False,
        )
    )
    samples = np.array(body["results"][0]["data"]["c"]["samples"], dtype=object)
    ints = np.zeros(bits.array.shape[:-1], dtype=object)
    for i in range(bits.array.shape[-1]):
        ints = ints * 256 + bits.array[..., i].astype(object)
    assert samples.shape == ints.shape
    assert all(s == hex(int(v)) for s, v in zip(samples.ravel(), ints.ravel()))


@SETTINGS
@given(shape=shapes, qiskit=st.booleans(), seed=st.integers(0, 1000))
def test_estimator_results_round_trip(shape, qiskit, seed):
    rng = np.random.default_rng(seed)
    evs = rng.normal(size=shape)
    pub = PubResult(
        DataBin(evs=evs, stds=np.abs(evs), ensemble_standard_error=np.abs(evs), shape=shape),
        {"shots": 10, "target_precision": 0.1},
    )
    decoded = decode_result(encode_result(PrimitiveResult([pub]), qiskit=qiskit))[0]
    np.testing.assert_array_equal(decoded.data.evs, evs)
    assert np.asarray(decoded.data.stds).shape == shape


@SETTINGS
@given(
    shape=st.lists(st.integers(0, 4), max_size=3).map(tuple),
    dtype=st.sampled_from([np.float64, np.int64, np.uint8, np.complex128, np.bool_]),
)
def test_ndarray_round_trip(shape, dtype):
    array = (np.arange(int(np.prod(shape))) % 3).reshape(shape).astype(dtype)
    out = decode_ndarray(loads(dumps(encode_ndarray(array))))
    assert out.dtype == array.dtype and out.shape == array.shape
    np.testing.assert_array_equal(out, array)


@st.composite
def random_circuits(draw):
    num_qubits = draw(st.integers(2, 4))
    depth = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 10_000))
    qc = random_circuit(num_qubits, depth, max_operands=2, seed=seed)
    n_params = draw(st.integers(0, 13))
    params = ParameterVector("θ", n_params)
    for i, p in enumerate(params):
        qc.ry(p, i % num_qubits)
        if i % 3 == 2:
            qc.cx(i % num_qubits, (i + 1) % num_qubits)
    sizes = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    names = draw(
        st.lists(
            st.sampled_from(["c", "output", "meas", "input", "x1", "gate"]),
            min_size=len(sizes),
            max_size=len(sizes),
            unique=True,
        )
    )
    out = QuantumCircuit(QuantumRegister(num_qubits, "q"))
    for name, size in zip(names, sizes):
        out.add_register(ClassicalRegister(size, name))
    out.compose(qc, qubits=range(num_qubits), inplace=True)
    for i, clbit in enumerate(out.clbits):
        out.measure(i % num_qubits, clbit)
    return out


def _ops(circuit):
    return [
        (
            inst.operation.name,
            tuple(circuit.find_bit(q).index for q in inst.qubits),
            tuple(circuit.find_bit(c).index for c in inst.clbits),
        )
        for inst in circuit.data
    ]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(circuit=random_circuits(), seed=st.integers(0, 100))
def test_random_circuits_round_trip(circuit, seed):
    exported = export_qasm3(circuit)
    imported = import_qasm(exported.text)
    assert [(r.name, r.size) for r in imported.circuit.cregs] == [
        (r.name, r.size) for r in circuit.cregs
    ]
    assert _ops(imported.circuit) == _ops(circuit)
    values = np.random.default_rng(seed).uniform(0, 2 * np.pi, len(exported.parameters))
    a = circuit.assign_parameters(dict(zip(exported.parameters, values)))
    b = imported.circuit.assign_parameters(dict(zip(imported.parameters, values)))
    a.remove_final_measurements()
    b.remove_final_measurements()
    assert Statevector(a).equiv(Statevector(b))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.lists(st.integers(1, 3), max_size=2).map(tuple),
    n_params=st.integers(1, 12),
    seed=st.integers(0, 100),
)
def test_pub_shapes_round_trip(shape, n_params, seed):
    params = ParameterVector("p", n_params)
    qc = QuantumCircuit(2)
    for i, p in enumerate(params):
        qc.rx(p, i % 2)
    values = np.random.default_rng(seed).uniform(0, 1, (*shape, n_params))
    epub = EstimatorPub.coerce((qc, "ZX", values))
    decoded = decode_estimator_params(loads(dumps(encode_estimator_params([epub])))).pubs[0]
    assert decoded.shape == epub.shape
    measured = qc.copy()
    measured.measure_all()
    spub = SamplerPub.coerce((measured, values, 5))
    out = decode_sampler_params(loads(dumps(encode_sampler_params([spub])))).pubs[0]
    assert out.shape == spub.shape and out.shots == 5


@settings(max_examples=40, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=10,
    )
)
def test_decoders_never_crash_on_junk(junk):
    for decode in (decode_sampler_params, decode_estimator_params):
        try:
            decode(junk if isinstance(junk, dict) else {"pubs": [junk]})
        except WireFormatError:
            pass
    try:
        decode_result(dumps(junk))
    except WireFormatError:
        pass
    try:
        decode_ndarray(junk)
    except WireFormatError:
        pass


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), width=st.integers(2, 5), depth=st.integers(1, 6))
def test_fast_path_matches_antlr_on_random_static_circuits(seed, width, depth):
    from qiskit.transpiler import Layout, TranspileLayout

    from qiskit_rest_provider.wire import _qasm_import

    qc = random_circuit(width, depth, max_operands=3, measure=True, seed=seed)
    qc._layout = TranspileLayout(
        initial_layout=Layout.from_qubit_list(qc.qubits),
        input_qubit_mapping={bit: i for i, bit in enumerate(qc.qubits)},
        final_layout=None,
    )
    text = export_qasm3(qc).text
    fast = _qasm_import.import_fast(text)
    antlr, _ = _qasm_import.import_antlr(text)
    if fast is None:  # outside the fast subset: nothing to compare
        return
    assert _ops(fast[0]) == _ops(antlr)
    for a, b in zip(fast[0].data, antlr.data):
        assert type(a.operation) is type(b.operation)
        assert np.allclose(
            [float(p) for p in a.operation.params], [float(p) for p in b.operation.params]
        )


def test_malicious_register_pragma_is_a_wire_error():
    text = (
        "OPENQASM 3.0;\n"
        '// qiskit-rest-provider registers {"a": "b", "b": "b"}\n'
        'include "stdgates.inc";\nbit[1] a;\nbit[1] b;\nqubit[1] q;\na[0] = measure q[0];\n'
    )
    try:
        imported = import_qasm(text)
    except WireFormatError as exc:
        assert "pragma" in str(exc)
    else:  # a harmless pragma would be fine too, as long as nothing else escapes
        assert imported.circuit.num_clbits == 2


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(circuit=random_circuits())
def test_flat_reader_matches_antlr(circuit):
    from qiskit_rest_provider.wire import _qasm_flat, _qasm_import

    text = export_qasm3(circuit).text.split("\n", 2)
    text = "\n".join(line for line in text if "qiskit-rest-provider" not in line)
    flat = _qasm_flat.import_flat(text)
    antlr, inputs = _qasm_import.import_antlr(text)
    if flat is None:
        return
    circuit_flat, flat_inputs, _ = flat
    assert [p.name for p in flat_inputs] == [p.name for p in inputs]
    assert _ops(circuit_flat) == _ops(antlr)
    for a, b in zip(circuit_flat.data, antlr.data):
        assert a.operation.name == b.operation.name
        assert [str(p) for p in a.operation.params] == [str(p) for p in b.operation.params]


def _valid_bodies():
    bits = BitArray.from_samples([0, 1, 5, 31, 2, 3], 5).reshape(2, 3)
    sampler = PrimitiveResult([SamplerPubResult(DataBin(c=bits, shape=(2,)), {"k": [1, 2]})])
    estimator = PrimitiveResult(
        [PubResult(DataBin(evs=np.ones(2), stds=np.ones(2), shape=(2,)), {"shots": 3})]
    )
    return [encode_result(r, qiskit=q) for r in (sampler, estimator) for q in (True, False)]


VALID_BODIES = _valid_bodies()


@settings(max_examples=60, deadline=None)
@given(
    index=st.integers(0, len(VALID_BODIES) - 1),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.binary(max_size=3)), max_size=4),
)
def test_result_decoder_only_raises_wire_errors_on_mutated_bodies(index, edits):
    body = bytearray(VALID_BODIES[index])
    for where, replacement in edits:
        at = int(where * len(body))
        body[at : at + len(replacement)] = replacement
    try:
        decode_result(bytes(body))
    except WireFormatError:
        pass


_QASM = (
    'OPENQASM 3.0;\ninclude "stdgates.inc";\ninput float[64] a;\nbit[2] c;\n'
    "rz(a + pi/2) $0;\nsx $1;\ncz $0, $1;\nc[0] = measure $0;\nc[1] = measure $1;\n"
)


@settings(max_examples=60, deadline=None)
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(_QASM) - 1), st.sampled_from(list("$[](),;=+*/-xa0917 \n"))),
        min_size=1,
        max_size=3,
    )
)
def test_params_decoder_only_raises_wire_errors_on_mutated_qasm(edits):
    text = list(_QASM)
    for at, char in edits:
        text[at] = char
    try:
        decode_sampler_params({"pubs": [["".join(text), [0.5], 10]]}, num_qubits=3)
    except WireFormatError:
        pass
