"""PrimitiveResult <-> result bodies (both encodings) of qiskit_rest_provider.wire.results."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from qiskit.primitives import BitArray, DataBin, PrimitiveResult, PubResult
from qiskit.primitives.containers import SamplerPubResult

from qiskit_rest_provider.exceptions import WireFormatError
from qiskit_rest_provider.wire import decode_result, encode_result, loads
from qiskit_rest_provider.wire._spans import DoubleSliceSpan, ExecutionSpans

NOW = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)


def _bits(shape, shots, num_bits, seed=0):
    rng = np.random.default_rng(seed)
    nbytes = (num_bits + 7) // 8
    array = rng.integers(0, 256, size=(*shape, shots, nbytes), dtype=np.uint8)
    if num_bits % 8:
        array[..., 0] &= (1 << (num_bits % 8)) - 1
    return BitArray(array, num_bits)


def _sampler_result(shape=(2, 3), shots=5):
    spans = ExecutionSpans(
        [
            DoubleSliceSpan(
                NOW,
                NOW + dt.timedelta(seconds=2),
                {0: ((*shape, shots), slice(0, 6), slice(0, shots))},
            )
        ]
    )
    data = DataBin(meas=_bits(shape, shots, 9), output=_bits(shape, shots, 1, 1), shape=shape)
    return PrimitiveResult(
        [SamplerPubResult(data, {"circuit_metadata": {"name": "x"}, "shots": shots})],
        {"execution": {"execution_spans": spans}, "version": 2},
    )


def _estimator_result():
    pubs = [
        PubResult(
            DataBin(
                evs=np.arange(6.0).reshape(2, 3),
                stds=np.full((2, 3), 0.1),
                ensemble_standard_error=np.full((2, 3), 0.2),
                shape=(2, 3),
            ),
            {"shots": 100, "target_precision": 0.1},
        ),
        PubResult(
            DataBin(
                evs=np.array(-0.5),
                stds=np.array(0.01),
                ensemble_standard_error=np.array(0.02),
                shape=(),
            ),
            {"shots": 4096},
        ),
    ]
    return PrimitiveResult(pubs, {"version": 2, "resilience": {"measure_mitigation": False}})


def _assert_sampler_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert isinstance(y, SamplerPubResult)
        assert x.data.shape == y.data.shape
        assert list(x.data.keys()) == list(y.data.keys())
        for name in x.data.keys():
            assert x.data[name] == y.data[name], name


@pytest.mark.parametrize("qiskit", [True, False])
def test_sampler_round_trip(qiskit):
    result = _sampler_result()
    decoded = decode_result(encode_result(result, qiskit=qiskit))
    _assert_sampler_equal(result, decoded)
    assert decoded[0].metadata == {"circuit_metadata": {"name": "x"}, "shots": 5}
    spans = decoded.metadata["execution"]["execution_spans"]
    assert spans == result.metadata["execution"]["execution_spans"]
    assert spans[0].mask(0).shape == (2, 3, 5) and spans.duration == 2.0


def test_plain_form_follows_d1():
    body = loads(encode_result(_sampler_result(), qiskit=False))
    samples = body["results"][0]["data"]["meas"]["samples"]
    assert body["results"][0]["data"]["meas"]["num_bits"] == 9
    assert np.array(samples).shape == (2, 3, 5)
    ints = _sampler_result()[0].data.meas.array
    expected = (ints[..., 0].astype(int) << 8) | ints[..., 1]
    assert [[[int(s, 16) for s in r] for r in m] for m in samples] == expected.tolist()
    assert all(s == hex(int(s, 16)) for s in np.ravel(samples))  # "0x1f", no padding
    assert body["metadata"]["execution"]["execution_spans"][0]["start"] == NOW.isoformat()


def test_scalar_pub_gives_flat_list_as_in_seeds():
    bits = BitArray.from_samples([1, 1, 0, 3], 2)
    result = PrimitiveResult([SamplerPubResult(DataBin(c=bits, shape=()), {})], {"version": 2})
    body = loads(encode_result(result, qiskit=False))
    assert body["results"][0]["data"]["c"] == {
        "samples": ["0x1", "0x1", "0x0", "0x3"],
        "num_bits": 2,
    }
    assert decode_result(json.dumps(body))[0].data.c.get_counts() == {"01": 2, "00": 1, "11": 1}


def test_seed_style_plain_body_decodes():
    body = (
        '{"results": [{"data": {"meas": {"samples": ["0x3", "0x3", "0x2", "0x1"], "num_bits": 2}},'
        ' "metadata": {"circuit_metadata": {}}}], "metadata": {"version": 2}}'
    )
    result = decode_result(body)
    assert result[0].data.meas.get_int_counts() == {3: 2, 2: 1, 1: 1}
    assert result.metadata == {"version": 2}


def test_plain_body_with_whitespace_uppercase_and_no_num_bits():
    body = '{"results": [{"data": {"c": {"samples": [ [ "0X1F" , "0x0" ] ,\n ["0x2", "0x10"] ]}}}]}'
    bits = decode_result(body)[0].data.c
    assert bits.num_bits == 5 and bits.shape == (2,)
    assert bits.array.reshape(-1).tolist() == [31, 0, 2, 16]


@pytest.mark.parametrize(
    "samples, fragment",
    [
        ('["0x1", "0xg"]', "invalid hex"),
        ('[["0x1"], ["0x1", "0x2"]]', "ragged"),
        ('["0x100"]', "wider than num_bits"),
        ('["0x1", ""]', "empty"),
    ],
)
def test_bad_samples(samples, fragment):
    body = '{"results": [{"data": {"c": {"samples": SAMPLES, "num_bits": 8}}}]}'
    body = body.replace("SAMPLES", samples)
    with pytest.raises(WireFormatError, match=fragment):
        decode_result(body)


@pytest.mark.parametrize("qiskit", [True, False])
def test_estimator_round_trip(qiskit):
    result = _estimator_result()
    decoded = decode_result(encode_result(result, qiskit=qiskit))
    for x, y in zip(result, decoded):
        assert type(y) is PubResult
        assert y.data.shape == x.data.shape
        for name in ("evs", "stds", "ensemble_standard_error"):
            np.testing.assert_array_equal(y.data[name], x.data[name])
            assert np.asarray(y.data[name]).shape == x.data.shape
        assert y.metadata == x.metadata
    assert decoded.metadata == result.metadata


def test_plain_estimator_numbers_for_scalar_pub():
    body = loads(encode_result(_estimator_result(), qiskit=False))
    assert body["results"][1]["data"] == {
        "evs": -0.5,
        "stds": 0.01,
        "ensemble_standard_error": 0.02,
    }
    assert body["results"][0]["data"]["evs"] == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]


def test_runtime_decoder_reads_our_qiskit_form():
    from qiskit_ibm_runtime import RuntimeDecoder

    result = _sampler_result()
    theirs = json.loads(encode_result(result, qiskit=True).decode(), cls=RuntimeDecoder)
    assert isinstance(theirs, PrimitiveResult)
    _assert_sampler_equal(result, theirs)
    assert theirs[0].metadata == result[0].metadata
    spans = theirs.metadata["execution"]["execution_spans"]
    assert spans[0].start == NOW and spans[0].stop == NOW + dt.timedelta(seconds=2)
    np.testing.assert_array_equal(spans[0].mask(0), np.ones((2, 3, 5), dtype=bool))
    est = json.loads(encode_result(_estimator_result(), qiskit=True).decode(), cls=RuntimeDecoder)
    np.testing.assert_array_equal(est[0].data.evs, _estimator_result()[0].data.evs)
    assert est[1].data.evs == -0.5


def test_we_read_what_the_official_encoder_writes():
    from qiskit_ibm_runtime import RuntimeEncoder
    from qiskit_ibm_runtime.execution_span import DoubleSliceSpan as TheirSpan
    from qiskit_ibm_runtime.execution_span import ExecutionSpans as TheirSpans

    result = _sampler_result()
    spans = TheirSpans([TheirSpan(NOW, NOW, {0: ((2, 3, 5), slice(0, 6), slice(0, 5))})])
    result = PrimitiveResult(list(result), {"execution": {"execution_spans": spans}})
    body = json.dumps(result, cls=RuntimeEncoder)
    decoded = decode_result(body)
    _assert_sampler_equal(result, decoded)
    assert decoded.metadata["execution"]["execution_spans"][0].pub_idxs == [0]
    # and their span objects are accepted by our encoder
    again = json.loads(encode_result(result, qiskit=True).decode())
    span = again["__value__"]["metadata"]["execution"]["execution_spans"]["__value__"]["spans"][0]
    assert span["__type__"] == "DoubleSliceSpan"


def test_not_a_result():
    for body in (b"not json", b"[1, 2]", b'{"foo": 1}'):
        with pytest.raises(WireFormatError):
            decode_result(body)


def test_zero_shots_and_empty_shape():
    bits = BitArray(np.zeros((0, 0, 1), dtype=np.uint8), 3)
    result = PrimitiveResult([SamplerPubResult(DataBin(c=bits, shape=(0,)), {})], {})
    for qiskit in (True, False):
        out = decode_result(encode_result(result, qiskit=qiskit))
        assert out[0].data.c.num_bits == 3 if qiskit else True


@pytest.mark.parametrize("spaced", [False, True])
def test_large_payloads_bypass_the_json_parser(spaced):
    bits = _bits((2,), 40_000, 27, seed=5)  # 320 kB payload: cut out before parsing
    result = PrimitiveResult([SamplerPubResult(DataBin(meas=bits, shape=(2,)), {})])
    body = encode_result(result, qiskit=True)
    if spaced:  # the official encoder's spacing
        body = json.dumps(json.loads(body)).encode()
    assert decode_result(body)[0].data.meas == bits
    key = b'"__value__": "' if spaced else b'"__value__":"'
    at = body.rindex(key) + len(key)
    broken = body[:at] + body[at + 1001 :]  # payload cut short
    with pytest.raises(WireFormatError):
        decode_result(broken)
