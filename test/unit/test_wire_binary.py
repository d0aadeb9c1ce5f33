"""The optional binary result container (``wire.binary``) and its negotiation helpers."""

from __future__ import annotations

import datetime as dt
import struct

import numpy as np
import pytest
from qiskit.primitives import BitArray, DataBin, PrimitiveResult, PubResult
from qiskit.primitives.containers import SamplerPubResult

from qiskit_rest_provider.exceptions import WireFormatError
from qiskit_rest_provider.wire import binary, decode_result, dumps, encode_result, loads
from qiskit_rest_provider.wire._spans import DoubleSliceSpan, ExecutionSpans
from qiskit_rest_provider.wire.results import to_binary

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
WIDTHS = (1, 7, 8, 9, 64, 65, 127)


def _bits(shape, shots, num_bits, seed):
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 256, size=(*shape, shots, (num_bits + 7) // 8), dtype=np.uint8)
    if num_bits % 8:
        array[..., 0] &= (1 << (num_bits % 8)) - 1
    return BitArray(array, num_bits)


def _sampler_result(shots=40):
    pubs = []
    for p, shape in enumerate([(), (2,), (2, 3)]):
        fields = {f"c{w}": _bits(shape, shots, w, seed=10 * p + w) for w in WIDTHS}
        pubs.append(SamplerPubResult(DataBin(**fields, shape=shape), {"shots": shots, "p": p}))
    span = DoubleSliceSpan(
        NOW, NOW + dt.timedelta(seconds=1), {0: ((shots,), slice(0, 1), slice(0, shots))}
    )
    return PrimitiveResult(
        pubs, {"execution": {"execution_spans": ExecutionSpans([span])}, "version": 2}
    )


def _estimator_result():
    rng = np.random.default_rng(3)
    pubs = [
        PubResult(
            DataBin(
                evs=rng.normal(size=shape),
                stds=rng.uniform(size=shape),
                ensemble_standard_error=rng.uniform(size=shape),
                shape=shape,
            ),
            {"shots": 100, "target_precision": 0.1},
        )
        for shape in [(), (2,), (2, 3), (40, 50)]
    ]
    return PrimitiveResult(pubs, {"version": 2, "resilience": {"measure_mitigation": False}})


def _assert_results_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert type(x) is type(y)
        assert x.data.shape == y.data.shape
        assert list(x.data.keys()) == list(y.data.keys())
        for name in x.data.keys():
            u, v = x.data[name], y.data[name]
            if isinstance(u, BitArray):
                assert isinstance(v, BitArray) and u == v, name
                assert u.array.dtype == v.array.dtype and u.num_bits == v.num_bits
            else:
                assert np.asarray(u).dtype == np.asarray(v).dtype, name
                np.testing.assert_array_equal(u, v)
        assert x.metadata == y.metadata
    assert a.metadata == b.metadata


@pytest.mark.parametrize("inline_max", [0, binary.INLINE_MAX, 1 << 40])
def test_sampler_binary_decodes_like_json(inline_max):
    result = _sampler_result()
    from_json = decode_result(encode_result(result, qiskit=True))
    body = encode_result(result, qiskit=True, binary=True, inline_max=inline_max)
    assert binary.is_container(body)
    decoded = decode_result(body)
    _assert_results_equal(from_json, decoded)
    _assert_results_equal(decode_result(encode_result(result, qiskit=False)), decoded)
    spans = decoded.metadata["execution"]["execution_spans"]
    assert spans == from_json.metadata["execution"]["execution_spans"]
    for pub in decoded:
        for name in pub.data.keys():
            array = pub.data[name].array
            assert array.flags.writeable and array.flags.c_contiguous


def test_estimator_binary_decodes_like_json():
    result = _estimator_result()
    from_json = decode_result(encode_result(result, qiskit=True))
    for inline_max in (0, binary.INLINE_MAX):
        body = encode_result(result, qiskit=True, binary=True, inline_max=inline_max)
        _assert_results_equal(from_json, decode_result(body))
        _assert_results_equal(
            from_json,
            decode_result(to_binary(encode_result(result, qiskit=True), inline_max=inline_max)),
        )
    # the 40 x 50 float64 arrays (16 kB) go to buffers by default; the small ones stay inline
    doc, arrays = binary.unpack(encode_result(result, qiskit=True, binary=True))
    assert [a.shape for a in arrays] == [(40, 50)] * 3
    assert b'"__ref__"' in dumps(doc) and b'"__value__":"' in dumps(doc)


@pytest.mark.parametrize("inline_max", [0, binary.INLINE_MAX])
def test_json_body_converts_to_the_same_container(inline_max):
    result = _sampler_result()
    body = encode_result(result, qiskit=True)
    converted = to_binary(body, inline_max=inline_max)
    assert converted == encode_result(result, qiskit=True, binary=True, inline_max=inline_max)
    _assert_results_equal(decode_result(body), decode_result(converted))


def test_layout_is_aligned_and_documented():
    result = _sampler_result(shots=300)
    body = encode_result(result, qiskit=True, binary=True, inline_max=0)
    magic, version, flags, length = struct.unpack_from("<8sHHI", body)
    assert (magic, version, flags) == (binary.MAGIC, 1, 0)
    header = loads(body[16 : 16 + length])
    start = -(-(16 + length) // 64) * 64
    assert len(header["buffers"]) == 3 * len(WIDTHS)
    assert set(body[16 + length : start]) <= {0}
    for entry in header["buffers"]:
        assert entry["offset"] % 64 == 0 and entry["dtype"] == "|u1"
        if "codec" in entry:  # 1-bit registers: one bit of entropy per byte
            assert entry["codec"] == "zlib-npy" and entry["shape"][-1] == 1
            assert entry["nbytes"] <= np.prod(entry["shape"]) / 2
        else:
            assert entry["nbytes"] == int(np.prod(entry["shape"]))
    last = header["buffers"][-1]
    assert len(body) == start + last["offset"] + last["nbytes"]
    fields = header["result"]["__value__"]["pub_results"][2]["__value__"]["data"]["__value__"]
    assert fields["fields"]["c9"]["__value__"]["array"] == {
        "__type__": "ndarray",
        "__ref__": 2 * len(WIDTHS) + WIDTHS.index(9),
    }


def test_big_endian_and_empty_buffers():
    transposed = np.arange(6, dtype=np.int16).reshape(2, 3).T
    arrays = [
        np.arange(5, dtype=">f8"),
        np.zeros((0, 3), dtype=np.int32),
        np.array(True),
        transposed,
    ]
    body = binary.pack({"x": [{"__type__": "ndarray", "__ref__": i} for i in range(4)]}, arrays)
    doc, out = binary.unpack(body)
    assert doc == {"x": [{"__type__": "ndarray", "__ref__": i} for i in range(4)]}
    np.testing.assert_array_equal(out[3], transposed)
    assert out[0].dtype == np.dtype("<f8") and out[0].tolist() == [0, 1, 2, 3, 4]
    assert out[1].shape == (0, 3) and out[1].dtype == np.int32
    assert out[2].shape == () and bool(out[2])
    # a big-endian buffer written by another encoder reads as well
    header = dumps(
        {"buffers": [{"dtype": ">i4", "shape": [2], "offset": 0, "nbytes": 8}], "result": 1}
    )
    pad = bytes(-(16 + len(header)) % 64)
    crafted = struct.pack("<8sHHI", binary.MAGIC, 1, 0, len(header)) + header + pad
    _, (array,) = binary.unpack(crafted + np.array([1, 2], dtype=">i4").tobytes())
    assert array.tolist() == [1, 2]


def test_not_convertible_bodies():
    assert to_binary(encode_result(_sampler_result(), qiskit=False)) is None
    assert to_binary(b"Job abc Failed: boom") is None
    with pytest.raises(ValueError, match="qiskit=True"):
        encode_result(_sampler_result(), qiskit=False, binary=True)


def _container(buffers, result, data=b"", version=1):
    header = dumps({"buffers": buffers, "result": result})
    pad = bytes(-(16 + len(header)) % 64)
    return struct.pack("<8sHHI", binary.MAGIC, version, 0, len(header)) + header + pad + data


@pytest.mark.parametrize(
    "body, fragment",
    [
        (binary.MAGIC, "magic"),
        (_container([], 1, version=2), "version"),
        (struct.pack("<8sHHI", binary.MAGIC, 1, 0, 1 << 31) + b"{}", "header length"),
        (struct.pack("<8sHHI", binary.MAGIC, 1, 0, 3) + b"{{{", "not JSON"),
        (struct.pack("<8sHHI", binary.MAGIC, 1, 0, 2) + b"[]", "buffers list"),
        (_container([{"dtype": "|O", "shape": [1], "offset": 0, "nbytes": 8}], 1), "numeric"),
        (_container([{"dtype": "V8", "shape": [1], "offset": 0, "nbytes": 8}], 1), "numeric"),
        (_container([{"dtype": None, "shape": [1], "offset": 0, "nbytes": 8}], 1), "dtype"),
        (
            _container([{"dtype": "|u1", "shape": [4], "offset": 0, "nbytes": 5}], 1, b"x" * 8),
            "nbytes",
        ),
        (_container([{"dtype": "|u1", "shape": [-1], "offset": 0, "nbytes": 1}], 1), "shape"),
        (
            _container([{"dtype": "|u1", "shape": [9], "offset": 0, "nbytes": 9}], 1, b"x" * 8),
            "beyond",
        ),
        (_container([{"dtype": "|u1", "shape": [1], "offset": 1 << 62, "nbytes": 1}], 1), "beyond"),
        (_container([], {"__type__": "PrimitiveResult", "__value__": {}}), "malformed"),
        (_container([], {"__type__": "ndarray", "__ref__": 0}), "names no buffer"),
        (_container([], [1]), "PrimitiveResult"),
    ],
)
def test_malformed_containers_are_wire_format_errors(body, fragment):
    with pytest.raises(WireFormatError, match=fragment):
        decode_result(body)


def test_truncated_container():
    body = encode_result(_sampler_result(), qiskit=True, binary=True, inline_max=0)
    for cut in (10, 100, len(body) - 1):
        with pytest.raises(WireFormatError):
            decode_result(body[:cut])


def test_bitarray_ref_must_be_uint8():
    header = {
        "__type__": "PrimitiveResult",
        "__value__": {
            "pub_results": [
                {
                    "__type__": "SamplerPubResult",
                    "__value__": {
                        "data": {
                            "__type__": "DataBin",
                            "__value__": {
                                "field_names": ["c"],
                                "shape": [],
                                "fields": {
                                    "c": {
                                        "__type__": "BitArray",
                                        "__value__": {
                                            "array": {"__type__": "ndarray", "__ref__": 0},
                                            "num_bits": 3,
                                        },
                                    }
                                },
                            },
                        },
                        "metadata": {},
                    },
                }
            ],
            "metadata": {},
        },
    }
    entry = {"dtype": "<i2", "shape": [2, 1], "offset": 0, "nbytes": 4}
    with pytest.raises(WireFormatError, match="uint8"):
        decode_result(_container([entry], header, b"\x01\x00\x02\x00"))
    entry = {"dtype": "|u1", "shape": [2, 1], "offset": 0, "nbytes": 2}
    decoded = decode_result(_container([entry], header, b"\x01\x02"))
    assert decoded[0].data.c.get_bitstrings() == ["001", "010"]


def test_media_type_is_spelled_the_same_everywhere():
    from qiskit_rest_provider.client import runtime
    from qiskit_rest_provider.server.jobs import routes as routes_jobs

    assert runtime.BINARY_RESULT == routes_jobs.BINARY_RESULT == binary.MEDIA_TYPE
    assert runtime.RESULTS_ACCEPT.startswith(binary.MEDIA_TYPE)


@pytest.mark.parametrize(
    "accept, expected",
    [
        (None, False),
        ("", False),
        ("*/*", False),
        ("application/json", False),
        ("application/x-qiskit-rest-result, application/json;q=0.9", True),
        ("application/json;q=0.9, application/x-qiskit-rest-result", True),
        ("Application/X-Qiskit-Rest-Result", True),
        ("application/x-qiskit-rest-result;q=0", False),
        ("application/x-qiskit-rest-result;q=0.5, application/json", False),
        ("application/x-qiskit-rest-result;q=0.5, */*", False),
        ("application/x-qiskit-rest-result;q=0.5, application/json;q=0.2, */*", True),
        ("application/x-qiskit-rest-result, application/json", True),
        ("application/x-qiskit-rest-result;q=bogus, application/json;q=0.1", False),
    ],
)
def test_accept_negotiation(accept, expected):
    from qiskit_rest_provider.server.jobs.routes import prefers_binary

    assert prefers_binary(accept) is expected


@pytest.mark.parametrize("convert", [False, True])
def test_low_entropy_buffers_stay_compressed(convert):
    """GHZ-like samples: zlib shrinks them ~10x, so the container keeps them compressed."""
    rng = np.random.default_rng(2)
    ones = np.array([[7, 255, 255, 255]], dtype=np.uint8)
    ghz = np.where(rng.integers(0, 2, (300_000, 1)) == 1, ones, 0).astype(np.uint8)
    noise = _bits((), 300_000, 27, seed=4)
    data = DataBin(ghz=BitArray(ghz, 27), noise=noise, shape=())
    result = PrimitiveResult([SamplerPubResult(data, {})], {})
    json_body = encode_result(result, qiskit=True)
    body = to_binary(json_body) if convert else encode_result(result, qiskit=True, binary=True)
    doc, arrays = binary.unpack(body)
    header = loads(body[16 : 16 + struct.unpack_from("<I", body, 12)[0]])
    codecs = [entry.get("codec") for entry in header["buffers"]]
    assert codecs == ["zlib-npy", None]
    assert len(body) < ghz.nbytes / 4 + noise.array.nbytes + 4096
    assert len(body) < len(json_body)
    decoded = decode_result(body)
    _assert_results_equal(decode_result(json_body), decoded)
    assert decoded[0].data.ghz.array.flags.writeable


def _zlib_npy_entry(array, **changes):
    from qiskit_rest_provider.wire.arrays import compress, npy_bytes

    payload = compress(npy_bytes(array))
    entry = {"dtype": array.dtype.str, "shape": list(array.shape), "offset": 0}
    entry.update({"nbytes": len(payload), "codec": "zlib-npy", **changes})
    return entry, payload


def test_malformed_compressed_buffers():
    array = np.zeros((100, 4), dtype=np.uint8)
    entry, payload = _zlib_npy_entry(array)
    _, (out,) = binary.unpack(_container([entry], 1, payload))
    np.testing.assert_array_equal(out, array)
    for bad, fragment in [
        (dict(codec="lz4"), "codec"),
        (dict(shape=[100, 3]), "does not"),
        (dict(dtype="<i2", shape=[100, 2]), "does not"),
        (dict(nbytes=len(payload) - 5), "does not inflate"),
        (dict(shape=[10, 4]), "does not"),
    ]:
        broken, _ = _zlib_npy_entry(array, **bad)
        with pytest.raises(WireFormatError, match=fragment):
            binary.unpack(_container([broken], 1, payload))
    with pytest.raises(WireFormatError, match="zlib"):
        binary.unpack(_container([entry], 1, b"\x00" * len(payload)))
    bomb, payload = _zlib_npy_entry(np.zeros((200_000, 4), dtype=np.uint8), shape=[10, 4])
    with pytest.raises(WireFormatError, match="does not inflate"):  # stops at the declared size
        binary.unpack(_container([bomb], 1, payload))
