"""ndarray wrapper and JSON helpers of qiskit_rest_provider.wire."""

from __future__ import annotations

import base64
import io
import json
import zlib

import numpy as np
import pytest

from qiskit_rest_provider.exceptions import WireFormatError
from qiskit_rest_provider.wire import decode_ndarray, dumps, encode_ndarray, loads


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12.0).reshape(3, 4),
        np.zeros((0,)),
        np.array(3.5),
        np.arange(10, dtype=np.uint8),
        np.array([[1 + 2j, 3]], dtype=complex),
        np.array([True, False]),
        np.arange(24, dtype=np.int64).reshape(2, 3, 4)[:, ::2],  # non-contiguous
    ],
)
def test_round_trip_keeps_dtype_shape_values(array):
    wrapper = encode_ndarray(array)
    assert wrapper["__type__"] == "ndarray"
    out = decode_ndarray(loads(dumps(wrapper)))
    assert out.dtype == array.dtype
    assert out.shape == array.shape
    np.testing.assert_array_equal(out, array)
    assert out.flags.writeable


def test_payload_is_zlib_npy_as_the_official_encoder_writes():
    array = np.linspace(0, 1, 7)
    raw = zlib.decompress(base64.standard_b64decode(encode_ndarray(array)["__value__"]))
    np.testing.assert_array_equal(np.load(io.BytesIO(raw)), array)


def test_runtime_decoder_reads_our_wrapper():
    from qiskit_ibm_runtime import RuntimeDecoder, RuntimeEncoder

    array = np.arange(6.0).reshape(2, 3)
    out = json.loads(dumps({"a": encode_ndarray(array)}).decode(), cls=RuntimeDecoder)["a"]
    np.testing.assert_array_equal(out, array)
    # and we read what the official encoder writes
    theirs = json.loads(json.dumps({"a": array}, cls=RuntimeEncoder))["a"]
    np.testing.assert_array_equal(decode_ndarray(theirs), array)


@pytest.mark.parametrize(
    "obj, expected",
    [
        ({"__type__": "ndarray", "__value__": [[1, 2], [3, 4]]}, [[1, 2], [3, 4]]),
        ({"__type__": "ndarray", "__value__": 5}, 5),
        ([[0.5], [1.5]], [[0.5], [1.5]]),
        (2.0, 2.0),
    ],
)
def test_plain_payloads(obj, expected):
    np.testing.assert_array_equal(decode_ndarray(obj), np.array(expected))


def test_dtype_conversion():
    assert decode_ndarray([1, 2], dtype=float).dtype == np.float64


@pytest.mark.parametrize(
    "obj, fragment",
    [
        ({"__type__": "ndarray", "__value__": "!!!notbase64"}, "pubs[0].parameter_values"),
        ({"__type__": "ndarray", "__value__": base64.b64encode(b"garbage").decode()}, "zlib"),
        ([[1, 2], [3]], "ragged"),
        ({"__type__": "other", "__value__": 1}, "ndarray wrapper"),
        ("text", "expected an array"),
        ([["a", "b"]], "cannot convert"),
    ],
)
def test_bad_payloads_name_the_field(obj, fragment):
    with pytest.raises(WireFormatError) as info:
        decode_ndarray(obj, dtype=float, field="pubs[0].parameter_values")
    assert "pubs[0].parameter_values" in str(info.value)
    assert fragment in str(info.value)


def test_json_dumps_numpy_and_loads_lenient():
    body = dumps({"a": np.arange(3), "b": np.float32(1.5), "c": {1, 2}, "d": 1 + 2j})
    assert loads(body) == {"a": [0, 1, 2], "b": 1.5, "c": [1, 2], "d": [1.0, 2.0]}
    assert isinstance(body, bytes)
    out = loads(b'{"x": NaN, "y": Infinity, "z": -Infinity}')
    assert np.isnan(out["x"]) and out["y"] == np.inf and out["z"] == -np.inf
    with pytest.raises(ValueError):
        loads(b"{not json")


def test_zlib_bomb_is_refused(monkeypatch):
    from qiskit_rest_provider.wire import arrays

    monkeypatch.setattr(arrays, "MAX_DECOMPRESSED_BYTES", 1 << 20)
    bomb = base64.b64encode(zlib.compress(b"\0" * (8 << 20), 9)).decode()
    # Not an npy header: refused after inflating only the first 64 KiB.
    with pytest.raises(WireFormatError, match="pubs.0..parameter_values: invalid npy"):
        decode_ndarray({"__type__": "ndarray", "__value__": bomb}, field="pubs[0].parameter_values")
    truncated = base64.b64encode(zlib.compress(b"abc" * 1000)[:-5]).decode()
    with pytest.raises(WireFormatError, match="truncated|neither|invalid npy"):
        decode_ndarray({"__type__": "ndarray", "__value__": truncated})


def test_a_compressed_array_inflates_only_to_what_its_header_declares():
    """Issue 15: a 455 KiB zlib bomb of zeros is refused from its header, before inflating."""
    import base64
    import zlib

    from qiskit_rest_provider.exceptions import WireFormatError
    from qiskit_rest_provider.wire.arrays import MAX_ARRAY_BYTES, decode_ndarray, npy_bytes

    def wrap(raw: bytes) -> dict:
        return {
            "__type__": "ndarray",
            "__value__": base64.b64encode(zlib.compress(raw, 9)).decode(),
        }

    bomb = wrap(npy_bytes(np.zeros((30_000_000, 2))))
    with pytest.raises(
        WireFormatError, match=f"declares 480000000 bytes.*at most {MAX_ARRAY_BYTES}"
    ):
        decode_ndarray(bomb, field="pubs[0].parameter_values")
    lying = wrap(npy_bytes(np.zeros((3, 2))) + b"\0" * 10_000_000)
    with pytest.raises(WireFormatError, match="inflates beyond 176 bytes"):
        decode_ndarray(lying)
    assert decode_ndarray(wrap(npy_bytes(np.ones((3, 2))))).tolist() == [[1.0, 1.0]] * 3
