"""Property-based fuzzing of every ``wire/`` decoder (issue 7).

Whatever bytes or JSON a peer sends, a decoder either decodes it or raises
:class:`~qiskit_rest_provider.exceptions.WireFormatError` (a ``ValueError`` whose message names the
problem): never another exception type (a ``KeyError``/``IndexError``/``TypeError`` escaping would
be a 500 on the server and a confusing crash in the client), and never a hang (pytest-timeout).

Two kinds of input: arbitrary JSON-like values, and *mutations* of valid documents (a real
encoded result or params body with one random node replaced), which reach much deeper into the
decoders than random values do.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.primitives import BitArray, DataBin, PrimitiveResult, PubResult
from qiskit.primitives.containers import SamplerPubResult
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub

from qiskit_rest_provider.exceptions import WireFormatError
from qiskit_rest_provider.wire import (
    decode_circuit,
    decode_estimator_params,
    decode_ndarray,
    decode_result,
    decode_sampler_params,
    encode_estimator_params,
    encode_ndarray,
    encode_qpy,
    encode_result,
    encode_sampler_params,
    import_qasm,
    loads,
)

FUZZ = settings(
    max_examples=120,
    deadline=None,  # a loaded CI machine; hangs are caught by the timeout below
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=False,
)
pytestmark = pytest.mark.timeout(240)

# ------------------------------------------------------------------------------ strategies
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["ndarray", "QuantumCircuit", "PrimitiveResult", "__type__", "0x1", "ZZ"])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(
                ["__type__", "__value__", "pubs", "version", "data", "samples", "num_bits"]
            )
            | st.text(max_size=8),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)
random_blobs = st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode()) | st.binary(
    max_size=200
).map(lambda b: base64.b64encode(zlib.compress(b)).decode())
wrappers = st.fixed_dictionaries(
    {
        "__type__": st.sampled_from(["ndarray", "QuantumCircuit", "BitArray", "nope"]),
        "__value__": random_blobs | json_values,
    }
)
anything = json_values | wrappers


def _check(fn, *args, tolerate: tuple[type[BaseException], ...] = (), **kwargs) -> Any:
    """Call a decoder: a result or WireFormatError is fine, anything else fails the test."""
    try:
        return fn(*args, **kwargs)
    except WireFormatError as exc:
        assert str(exc), "a WireFormatError must say what is wrong"
        return None
    except tolerate:
        return None


# Extra exception types tolerated from decode_result (none: every problem is a WireFormatError).
RESULT_TOLERATE: tuple[type[BaseException], ...] = ()


def _paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a node of a JSON tree."""
    out = [prefix]
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += _paths(v, (*prefix, i))
    return out


def _replace(tree: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    copy = dict(tree) if isinstance(tree, dict) else list(tree)
    copy[path[0]] = _replace(tree[path[0]], path[1:], value)
    return copy


@st.composite
def mutated(draw, documents: list[Any], times: int = 2) -> Any:
    """A valid document with up to ``times`` random nodes replaced (or deleted)."""
    doc = draw(st.sampled_from(documents))
    for _ in range(draw(st.integers(1, times))):
        path = draw(st.sampled_from(_paths(doc)))
        if path and draw(st.booleans()) and isinstance(_get(doc, path[:-1]), dict):
            parent = dict(_get(doc, path[:-1]))
            parent.pop(path[-1], None)
            doc = _replace(doc, path[:-1], parent)
        else:
            doc = _replace(doc, path, draw(anything))
    return doc


def _get(tree: Any, path: tuple) -> Any:
    for key in path:
        tree = tree[key]
    return tree


# ------------------------------------------------------------------------------ valid seeds
BELL = (
    'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] meas;\nh q[0];\ncx q[0], q[1];\n'
    "meas[0] = measure q[0];\nmeas[1] = measure q[1];\n"
)


def _param_circuit() -> QuantumCircuit:
    a, b = Parameter("a"), Parameter("b")
    qc = QuantumCircuit(2, 2)
    qc.rx(a, 0)
    qc.ry(b, 1)
    qc.cx(0, 1)
    qc.measure([0, 1], [0, 1])
    return qc


_QPY_RAW = zlib.decompress(base64.b64decode(encode_qpy(_param_circuit())["__value__"]))


def _sampler_docs() -> list[dict]:
    qc = _param_circuit()
    values = np.linspace(0, 1, 6).reshape(3, 2)
    docs = [
        json.loads(json.dumps(encode_sampler_params([SamplerPub.coerce((qc, values, 10))])))
        for _ in range(1)
    ]
    docs.append({"pubs": [[BELL, None, 16]], "version": 2, "shots": 8})
    docs.append(
        {"pubs": [[BELL], [BELL, None, 4]], "version": "2", "options": {"default_shots": 5}}
    )
    qpy = encode_sampler_params([SamplerPub.coerce((qc, [0.1, 0.2]))], circuit_form="qpy")
    docs.append(json.loads(json.dumps(qpy)))
    return docs


def _estimator_docs() -> list[dict]:
    qc = _param_circuit().remove_final_measurements(inplace=False)
    pub = EstimatorPub.coerce((qc, [["ZZ"], ["XI"]], [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]))
    docs = [json.loads(json.dumps(encode_estimator_params([pub], precision=0.1)))]
    bell = BELL.replace("bit[2] meas;", "").split("meas[0]")[0]
    docs.append({"pubs": [[bell, "ZZ"], [bell, {"XX": 0.5, "ZI": 1}, None, 0.05]], "version": 2})
    docs.append({"pubs": [[bell, [["ZZ", "XX"]]]], "version": 2, "resilience_level": 1})
    return docs


def _results() -> list[bytes]:
    rng = np.random.default_rng(0)
    bits = BitArray(rng.integers(0, 256, size=(2, 3, 5, 1), dtype=np.uint8), 7)
    sampler = PrimitiveResult(
        [SamplerPubResult(DataBin(meas=bits, shape=(2, 3)), metadata={"shots": 5})],
        metadata={"version": 2},
    )
    evs = rng.normal(size=(2, 2))
    estimator = PrimitiveResult(
        [
            PubResult(
                DataBin(evs=evs, stds=abs(evs), shape=(2, 2)), metadata={"target_precision": 0.1}
            )
        ],
        metadata={"version": 2},
    )
    return [
        encode_result(result, qiskit=qiskit)
        for result in (sampler, estimator)
        for qiskit in (True, False)
    ]


SAMPLER_DOCS = _sampler_docs()
ESTIMATOR_DOCS = _estimator_docs()
RESULT_BODIES = _results()
RESULT_DOCS = [json.loads(body) for body in RESULT_BODIES]


# ------------------------------------------------------------------------------ arrays / json
@FUZZ
@given(anything)
def test_decode_ndarray_never_crashes(obj):
    out = _check(decode_ndarray, obj, field="x")
    assert out is None or isinstance(out, np.ndarray)


@FUZZ
@given(st.binary(max_size=300))
def test_decode_ndarray_random_payload_bytes(raw):
    for payload in (raw, zlib.compress(raw), b"\x93NUMPY" + raw):
        wrapper = {"__type__": "ndarray", "__value__": base64.b64encode(payload).decode()}
        _check(decode_ndarray, wrapper)


@FUZZ
@given(st.data())
def test_decode_ndarray_truncated_real_payload(data):
    arr = np.arange(24, dtype=np.float64).reshape(2, 3, 4)
    value = encode_ndarray(arr)["__value__"]
    cut = data.draw(st.integers(0, len(value)))
    text = value[:cut] + data.draw(st.text(max_size=4))
    _check(decode_ndarray, {"__type__": "ndarray", "__value__": text}, dtype=float)


@FUZZ
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_loads_raises_value_error_only(text):
    try:
        loads(text)
    except ValueError:
        pass


# ------------------------------------------------------------------------------ circuits
QASM_TOKENS = st.sampled_from(
    [
        "OPENQASM 3.0;",
        "OPENQASM 2.0;",
        'include "stdgates.inc";',
        'include "qelib1.inc";',
        "qubit[2] q;",
        "qreg q[3];",
        "creg c[2];",
        "bit[2] c;",
        "input float[64] theta;",
        "h q[0];",
        "cx q[0], q[1];",
        "rz(theta) q[1];",
        "rz(pi/2) $0;",
        "x $3;",
        "c[0] = measure q[0];",
        "measure q -> c;",
        "c = measure q;",
        "barrier q;",
        "if (c[0]) { x q[1]; }",
        "gate g a { h a; }",
        "g q[0];",
        "for uint i in [0:2] { h q[0]; }",
        "{",
        "}",
        ";",
        "q[99]",
        "$",
        "[",
        "]",
        "(",
        ")",
        "//",
        "/*",
    ]
)


@FUZZ
@given(st.lists(QASM_TOKENS, max_size=12).map(" ".join))
def test_import_qasm_token_soup(text):
    out = _check(import_qasm, text, num_qubits=5)
    assert out is None or out.circuit.num_qubits >= 0


@FUZZ
@given(st.text(max_size=300), st.sampled_from([None, 2, 5, 40]))
def test_import_qasm_random_text(text, num_qubits):
    _check(import_qasm, text, num_qubits=num_qubits)


@FUZZ
@given(st.data())
def test_import_qasm_mutated_program(data):
    pos = data.draw(st.integers(0, len(BELL)))
    end = data.draw(st.integers(pos, min(len(BELL), pos + 12)))
    text = BELL[:pos] + data.draw(st.text(max_size=6)) + BELL[end:]
    _check(import_qasm, text, num_qubits=data.draw(st.sampled_from([None, 1, 2, 30])))


@FUZZ
@given(anything, st.sampled_from([None, 2, 27]))
def test_decode_circuit_never_crashes(obj, num_qubits):
    _check(decode_circuit, obj, num_qubits=num_qubits)


@FUZZ
@given(st.data())
def test_decode_circuit_corrupted_qpy(data):
    raw = _QPY_RAW  # one payload for every example: QPY bytes differ per dump (parameter uuids)
    pos = data.draw(st.integers(0, len(raw) - 1))
    junk = data.draw(st.binary(min_size=1, max_size=8))
    broken = raw[:pos] + junk + raw[pos + len(junk) :]
    if data.draw(st.booleans()):
        broken = broken[: data.draw(st.integers(0, len(broken)))]
    wrapper = {
        "__type__": "QuantumCircuit",
        "__value__": base64.b64encode(zlib.compress(broken)).decode(),
    }
    _check(decode_circuit, wrapper)


# ------------------------------------------------------------------------------ params
@FUZZ
@given(anything)
def test_decode_sampler_params_arbitrary(obj):
    _check(decode_sampler_params, obj, num_qubits=5)


@FUZZ
@given(mutated(SAMPLER_DOCS))
def test_decode_sampler_params_mutated(doc):
    out = _check(decode_sampler_params, doc, num_qubits=5)
    if out is not None:
        assert all(pub.shots > 0 for pub in out.pubs)


@FUZZ
@given(anything)
def test_decode_estimator_params_arbitrary(obj):
    _check(decode_estimator_params, obj, num_qubits=5)


@FUZZ
@given(mutated(ESTIMATOR_DOCS))
def test_decode_estimator_params_mutated(doc):
    out = _check(decode_estimator_params, doc, num_qubits=5)
    if out is not None:
        assert all(pub.precision > 0 for pub in out.pubs)


# ------------------------------------------------------------------------------ results
@FUZZ
@given(st.binary(max_size=300))
def test_decode_result_random_bytes(body):
    _check(decode_result, body, tolerate=RESULT_TOLERATE)


@FUZZ
@given(anything)
def test_decode_result_arbitrary_json(obj):
    _check(decode_result, json.dumps(obj).encode(), tolerate=RESULT_TOLERATE)


@FUZZ
@given(mutated(RESULT_DOCS, times=1))
def test_decode_result_mutated(doc):
    out = _check(decode_result, json.dumps(doc).encode(), tolerate=RESULT_TOLERATE)
    assert out is None or isinstance(out, PrimitiveResult)


@FUZZ
@given(st.sampled_from(RESULT_BODIES), st.data())
def test_decode_result_truncated(body, data):
    cut = data.draw(st.integers(0, len(body) - 1))
    _check(decode_result, body[:cut], tolerate=RESULT_TOLERATE)


@pytest.mark.parametrize(
    "data",
    [
        {"evs": [[0.1, 0.2], [0.3, 0.4]], "stds": None},  # shape () vs (2, 2)
        {"evs": [0.1, 0.2], "stds": [0.1, 0.2, 0.3]},  # (2,) vs (3,)
        {"evs": [[0.1, 0.2], [0.3, 0.4]], "stds": [None, [0.1, 0.2]]},  # ragged
    ],
)
def test_decode_result_bad_estimator_fields(data):
    body = json.dumps({"results": [{"data": data, "metadata": {}}], "metadata": {}}).encode()
    with pytest.raises(WireFormatError):
        decode_result(body)
