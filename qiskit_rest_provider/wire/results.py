"""PrimitiveResult <-> result bodies, in both encodings (protocol §5), vectorised.

* ``qiskit=True`` writes the Qiskit-encoded form of §5.2 that qiskit-ibm-runtime's
  ``RuntimeDecoder`` reads and ``ibm-quantum-schemas``' result models describe
  (:func:`~.contract.validate_result`): BitArrays as uint8 ``.npy``
  ``(*shape, shots, ceil(bits/8))``, other arrays as ndarray wrappers, DataBins with
  ``field_types``, datetimes and execution spans wrapped.
* ``qiskit=False`` writes the plain form of §5.1 with decisions D1/D2: hex sample strings
  (``"0x1f"``) nested to the PUB shape (a flat list for a scalar PUB), ``evs``/``stds``/
  ``ensemble_standard_error`` as nested lists or numbers.
* ``binary=True`` (with ``qiskit=True``) writes the optional binary container of :mod:`.binary`
  (media type ``application/x-qiskit-rest-result``): the Qiskit-encoded form with large arrays
  as raw buffers. :func:`to_binary` converts a stored Qiskit-encoded JSON body to it.

:func:`decode_result` detects the form (all three). Hex samples are never turned into Python
objects one by one: the sample lists are cut out of the raw body and decoded with NumPy (``_hex``).
"""

from __future__ import annotations

import datetime as _dt
import re
import secrets
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from qiskit.primitives import BitArray, DataBin, PrimitiveResult, PubResult
from qiskit.primitives.containers import SamplerPubResult

from ..exceptions import WireFormatError
from . import _hex
from . import binary as _binary
from ._spans import DoubleSliceSpan, ExecutionSpans
from .arrays import MAX_DECOMPRESSED_BYTES, _load_npy, b64decode, decode_ndarray, encode_ndarray
from .json import dumps, loads

__all__ = [
    "assemble_result",
    "decode_result",
    "encode_pub_results",
    "encode_result",
    "to_binary",
]

_SAMPLES_KEY = re.compile(rb'"samples"\s*:\s*\[')


# ----------------------------------------------------------------------------------------------
# Encoding
# ----------------------------------------------------------------------------------------------
def _span_wire(span: Any) -> dict:
    if isinstance(span, dict):
        if span.get("__type__"):
            return span
        value = {"start": span["start"], "stop": span["stop"], "data_slices": span["data_slices"]}
    elif isinstance(span, DoubleSliceSpan):
        value = span.to_wire()
    else:  # duck-typed qiskit-ibm-runtime DoubleSliceSpan
        value = DoubleSliceSpan(span.start, span.stop, span._data_slices).to_wire()
    return {"__type__": "DoubleSliceSpan", "__value__": value}


def _encode_meta(obj: Any, qiskit: bool, key: str | None = None) -> Any:
    if key == "execution_spans" and obj is not None:
        if isinstance(obj, dict) and obj.get("__type__"):
            spans: Any = obj
        else:
            spans = [_span_wire(s) for s in obj]
            spans = {"__type__": "ExecutionSpans", "__value__": {"spans": spans}}
        if qiskit:
            return _encode_meta(spans, qiskit)
        inner = spans["__value__"]["spans"] if isinstance(spans, dict) else spans
        return [_encode_meta(s.get("__value__", s), qiskit) for s in inner]
    if isinstance(obj, dict):
        return {str(k): _encode_meta(v, qiskit, str(k)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_encode_meta(v, qiskit) for v in obj]
    if isinstance(obj, _dt.datetime):
        if obj.tzinfo is None:
            obj = obj.replace(tzinfo=_dt.timezone.utc)
        return {"__type__": "datetime", "__value__": obj.isoformat()} if qiskit else obj.isoformat()
    if isinstance(obj, np.ndarray):
        return encode_ndarray(obj) if qiskit else obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, complex):
        return (
            {"__type__": "complex", "__value__": [obj.real, obj.imag]}
            if qiskit
            else [
                obj.real,
                obj.imag,
            ]
        )
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


_Wrap = Callable[[np.ndarray], dict]


def _encode_field_qiskit(value: Any, wrap: _Wrap) -> Any:
    if isinstance(value, BitArray):
        return {
            "__type__": "BitArray",
            "__value__": {"array": wrap(value.array), "num_bits": value.num_bits},
        }
    return wrap(np.asarray(value))


def _field_type(value: Any) -> str:
    """A DataBin field's type as the result models' ``field_types`` carry it (``str(type)``)."""
    return str(BitArray if isinstance(value, BitArray) else np.ndarray)


def _pub_type(pub: Any) -> str:
    if isinstance(pub, SamplerPubResult):
        return "SamplerPubResult"
    return "PubResult"


def _qiskit_pub(pub: Any, wrap: _Wrap) -> dict:
    data = pub.data
    names = list(data.keys())
    return {
        "__type__": _pub_type(pub),
        "__value__": {
            "data": {
                "__type__": "DataBin",
                "__value__": {
                    "field_names": names,
                    "field_types": [_field_type(data[n]) for n in names],
                    "shape": list(data.shape),
                    "fields": {n: _encode_field_qiskit(data[n], wrap) for n in names},
                },
            },
            "metadata": _encode_meta(dict(pub.metadata), True),
        },
    }


def _qiskit_doc(result: PrimitiveResult, wrap: _Wrap) -> dict:
    return {
        "__type__": "PrimitiveResult",
        "__value__": {
            "pub_results": [_qiskit_pub(pub, wrap) for pub in result],
            "metadata": _encode_meta(dict(result.metadata), True),
        },
    }


def _encode_qiskit(result: PrimitiveResult) -> bytes:
    return dumps(_qiskit_doc(result, encode_ndarray))


def _encode_binary(result: PrimitiveResult, inline_max: int) -> bytes:
    arrays: list[_binary.Buffer] = []

    def wrap(array: np.ndarray) -> dict:
        if not _binary.buffer_worthy(array, inline_max):
            return encode_ndarray(array)
        arrays.append(_binary.buffer_for(array))
        return {"__type__": "ndarray", "__ref__": len(arrays) - 1}

    return _binary.pack(_qiskit_doc(result, wrap), arrays)


def _plain_pub(pub: Any) -> bytes:
    token = secrets.token_hex(8)
    raw_lists: dict[bytes, np.ndarray] = {}
    data: dict[str, Any] = {}
    for name in pub.data.keys():
        value = pub.data[name]
        if isinstance(value, BitArray):
            placeholder = f"__qrp_{token}_{len(raw_lists)}"
            raw_lists[b'"' + placeholder.encode() + b'"'] = _hex.encode_hex_lists(value.array)
            data[name] = {"samples": placeholder, "num_bits": value.num_bits}
        else:
            array = np.asarray(value)
            if np.iscomplexobj(array):
                data[name] = encode_ndarray(array)
            else:
                data[name] = array.tolist()
    body = dumps({"data": data, "metadata": _encode_meta(dict(pub.metadata), False)})
    if not raw_lists:
        return body
    pieces: list[Any] = []
    rest = body
    for marker, text in raw_lists.items():
        head, _, rest = rest.partition(marker)
        pieces.append(head)
        pieces.append(memoryview(text.data))
    pieces.append(rest)
    return b"".join(pieces)


def _encode_plain(result: PrimitiveResult) -> bytes:
    return assemble_result([_plain_pub(pub) for pub in result], result.metadata, qiskit=False)


def encode_pub_results(result: PrimitiveResult, *, qiskit: bool) -> list[bytes]:
    """Each PUB result of ``result`` encoded on its own: the pieces of a result body.

    :func:`assemble_result` joins pieces (from one or several partial results, e.g. the parts of
    a job run by several workers) into the body :func:`encode_result` would write, without
    decoding or re-encoding any array.
    """
    if qiskit:
        return [dumps(_qiskit_pub(pub, encode_ndarray)) for pub in result]
    return [_plain_pub(pub) for pub in result]


def assemble_result(pieces: Sequence[bytes], metadata: Any, *, qiskit: bool) -> bytes:
    """A result body from :func:`encode_pub_results` pieces (in PUB order) and the metadata.

    Example:
        >>> import numpy as np
        >>> from qiskit.primitives import DataBin, PrimitiveResult, PubResult
        >>> pubs = [PubResult(DataBin(evs=np.array(v), shape=())) for v in (0.5, -1.0)]
        >>> whole = PrimitiveResult(pubs, metadata={"version": 2})
        >>> halves = [PrimitiveResult([p]) for p in pubs]
        >>> pieces = [b for half in halves for b in encode_pub_results(half, qiskit=True)]
        >>> body = assemble_result(pieces, {"version": 2}, qiskit=True)
        >>> [float(p.data.evs) for p in decode_result(body)]
        [0.5, -1.0]
    """
    joined = b",".join(pieces)
    meta = dumps(_encode_meta(dict(metadata), qiskit))
    if qiskit:
        return (
            b'{"__type__":"PrimitiveResult","__value__":{"pub_results":['
            + joined
            + b'],"metadata":'
            + meta
            + b"}}"
        )
    return b'{"results":[' + joined + b'],"metadata":' + meta + b"}"


def encode_result(
    result: PrimitiveResult,
    *,
    qiskit: bool,
    binary: bool = False,
    inline_max: int = _binary.INLINE_MAX,
) -> bytes:
    """Serialize a ``PrimitiveResult`` as a result body (UTF-8 JSON bytes, or the container).

    Args:
        result: sampler results (``SamplerPubResult`` with a ``BitArray`` per register) or
            estimator results (``PubResult`` with ``evs``, ``stds``, ...). Metadata must hold
            JSON-able values, datetimes, NumPy values; ``metadata["execution"]["execution_spans"]``
            may hold spans (ours, qiskit-ibm-runtime's, or dicts with start/stop/data_slices).
        qiskit: ``True`` for the Qiskit-encoded form (§5.2), ``False`` for plain JSON (§5.1).
        binary: write the binary container of :mod:`.binary` instead of JSON (only with
            ``qiskit=True``).
        inline_max: with ``binary``, arrays of fewer bytes stay inline in the JSON header.
    """
    if binary:
        if not qiskit:
            raise ValueError("binary=True needs qiskit=True (the container is Qiskit-encoded)")
        return _encode_binary(result, inline_max)
    return _encode_qiskit(result) if qiskit else _encode_plain(result)


# ----------------------------------------------------------------------------------------------
# Decoding
# ----------------------------------------------------------------------------------------------
_BLOB_MARK = "qrp-blob:"  # never valid base64 (":"), so it cannot collide with a payload
_BLOB_KEY = re.compile(rb'"__value__"\s*:\s*"')
_BLOB_MIN = 1 << 16


def _extract_blobs(body: bytes, minimum: int = _BLOB_MIN) -> tuple[bytes, list[memoryview]]:
    """Cut large base64 ndarray payloads out of the body before JSON parsing.

    The JSON parser would copy and validate each payload into a ``str`` only for base64 to
    decode it again; handing base64 the bytes of the body directly saves that pass.
    """
    view = memoryview(body)
    parts: list[Any] = []
    blobs: list[memoryview] = []
    cursor = search = 0
    while True:
        found = body.find(b'"__value__"', search)
        if found < 0:
            break
        search = found + 11
        match = _BLOB_KEY.match(body, found)
        if match is None or b'"ndarray"' not in body[max(0, found - 40) : found]:
            continue
        start = match.end()
        stop = body.find(b'"', start)
        if stop < 0:
            break
        search = stop + 1
        if stop - start < minimum:
            continue
        parts.append(view[cursor:start])
        parts.append(f"{_BLOB_MARK}{len(blobs)}".encode())
        blobs.append(view[start:stop])
        cursor = stop
    if not blobs:
        return body, []
    parts.append(view[cursor:])
    return b"".join(parts), blobs


def _decode_wrapped(obj: Any, blobs: Sequence[memoryview | np.ndarray]) -> Any:
    """Decode a Qiskit-encoded document into result objects.

    ``blobs`` are the base64 payloads cut out by :func:`_extract_blobs` (JSON body) or the
    arrays of a binary container (named by ``__ref__``).
    """
    if isinstance(obj, list):
        return [_decode_wrapped(v, blobs) for v in obj]
    if not isinstance(obj, dict):
        return obj
    kind = obj.get("__type__")
    if kind == "ndarray" and "__ref__" in obj:
        ref = obj["__ref__"]
        if isinstance(ref, bool) or not isinstance(ref, int) or not 0 <= ref < len(blobs):
            raise WireFormatError(f"result: ndarray reference {ref!r} names no buffer")
        array = blobs[ref]
        if not isinstance(array, np.ndarray):
            raise WireFormatError("result: ndarray reference outside a binary container")
        return array
    if kind is None or "__value__" not in obj:
        return {k: _decode_wrapped(v, blobs) for k, v in obj.items()}
    value = obj["__value__"]
    if kind == "ndarray":
        if isinstance(value, str) and value.startswith(_BLOB_MARK):
            obj = {"__type__": "ndarray", "__value__": blobs[int(value[len(_BLOB_MARK) :])]}
        return decode_ndarray(obj, field="result", max_bytes=MAX_DECOMPRESSED_BYTES)
    if kind == "BitArray":
        array = _decode_wrapped(value["array"], blobs)
        if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
            raise WireFormatError("result BitArray: array must be a uint8 ndarray")
        return BitArray(array, int(value["num_bits"]))
    if kind == "DataBin":
        fields = {k: _decode_wrapped(v, blobs) for k, v in value.get("fields", {}).items()}
        return DataBin(**fields, shape=tuple(value.get("shape", ())))
    if kind in ("SamplerPubResult", "PubResult", "EstimatorPubResult"):
        data = _decode_wrapped(value["data"], blobs)
        metadata = _decode_wrapped(value.get("metadata") or {}, blobs)
        cls = SamplerPubResult if kind == "SamplerPubResult" else PubResult
        return cls(data, metadata)
    if kind == "PrimitiveResult":
        pubs = [_decode_wrapped(p, blobs) for p in value["pub_results"]]
        return PrimitiveResult(pubs, _decode_wrapped(value.get("metadata") or {}, blobs))
    if kind == "datetime":
        return _parse_datetime(value)
    if kind == "complex":
        return complex(value[0], value[1])
    if kind in ("ExecutionSpans", "ExecutionSpanCollection"):
        return ExecutionSpans(_decode_wrapped(s, blobs) for s in value["spans"])
    if kind == "DoubleSliceSpan":
        return DoubleSliceSpan.from_wire(_decode_wrapped(value, blobs))
    return {k: _decode_wrapped(v, blobs) for k, v in obj.items()}


def _parse_datetime(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value


def _plain_meta(meta: Any) -> Any:
    if isinstance(meta, dict):
        out = {k: _plain_meta(v) for k, v in meta.items()}
        execution = out.get("execution")
        if isinstance(execution, dict) and isinstance(execution.get("execution_spans"), list):
            spans = []
            for span in execution["execution_spans"]:
                span = dict(span)
                span["start"] = _parse_datetime(span.get("start"))
                span["stop"] = _parse_datetime(span.get("stop"))
                spans.append(DoubleSliceSpan.from_wire(span))
            execution["execution_spans"] = ExecutionSpans(spans)
        return out
    if isinstance(meta, list):
        return [_plain_meta(v) for v in meta]
    return meta


def _extract_samples(body: bytes) -> tuple[bytes, list[Any]]:
    """Cut every ``"samples": [...]`` list out of the body; leave its index in its place."""
    data = np.frombuffer(body, dtype=np.uint8)
    parts: list[bytes] = []
    segments: list[Any] = []
    cursor = 0
    search = 0
    while True:
        found = body.find(b'"samples"', search)
        if found < 0:
            break
        match = _SAMPLES_KEY.match(body, found)
        search = found + 9
        if match is None:
            continue
        start = match.end() - 1
        try:
            stop = _hex.find_array_end(data, start)
        except WireFormatError:
            return body, []  # not a plain list of hex strings: let the JSON parser see it
        parts.append(body[cursor:start])
        parts.append(str(len(segments)).encode())
        segments.append(data[start:stop])
        cursor = search = stop
    if not segments:
        return body, []
    parts.append(body[cursor:])
    return b"".join(parts), segments


def _samples_json(samples: Any) -> bytes:
    """Re-serialize a parsed samples list (slow path, for bodies the scanner did not cut)."""
    flat = np.asarray(samples, dtype=object).ravel() if isinstance(samples, list) else None
    if flat is None or not all(isinstance(s, str) for s in flat):
        raise WireFormatError("samples: expected a (nested) list of hex strings")
    return dumps(samples)


def _decode_plain(doc: dict, segments: list[bytes]) -> PrimitiveResult:
    results = doc.get("results")
    if not isinstance(results, list):
        raise WireFormatError("results: expected a list")
    pubs = []
    for i, item in enumerate(results):
        if not isinstance(item, dict) or not isinstance(item.get("data"), dict):
            raise WireFormatError(f"results[{i}].data: expected an object")
        fields: dict[str, Any] = {}
        shape: tuple[int, ...] | None = None
        sampler = False
        for name, value in item["data"].items():
            if isinstance(value, dict) and "samples" in value:
                sampler = True
                samples = value["samples"]
                raw = segments[samples] if isinstance(samples, int) else _samples_json(samples)
                packed, num_bits, full = _hex.decode_hex_array(raw, value.get("num_bits"))
                fields[name] = BitArray(packed, num_bits)
                shape = full[:-1]
            elif isinstance(value, dict) and value.get("__type__") == "ndarray":
                fields[name] = decode_ndarray(
                    value, field=f"results[{i}].data.{name}", max_bytes=MAX_DECOMPRESSED_BYTES
                )
            else:
                fields[name] = np.asarray(value, dtype=float)
                if shape is None and name in ("evs", "stds", "ensemble_standard_error"):
                    shape = fields[name].shape
        if shape is None:
            shape = ()
        metadata = _plain_meta(item.get("metadata") or {})
        cls = SamplerPubResult if sampler else PubResult
        pubs.append(cls(DataBin(**fields, shape=shape), metadata))
    return PrimitiveResult(pubs, _plain_meta(doc.get("metadata") or {}))


def _decode_qiskit(doc: Any, blobs: Sequence[memoryview | np.ndarray]) -> PrimitiveResult:
    try:
        decoded = _decode_wrapped(doc, blobs)
    except WireFormatError:
        raise
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as exc:
        raise WireFormatError(f"result: malformed Qiskit-encoded result ({exc!r})") from exc
    if not isinstance(decoded, PrimitiveResult):
        raise WireFormatError("result: expected a PrimitiveResult")
    return decoded


def decode_result(body: bytes | str) -> PrimitiveResult:
    """Decode a result body of either encoding into a ``PrimitiveResult``.

    Sampler PUBs give ``SamplerPubResult`` with one ``BitArray`` per register; estimator PUBs
    give ``PubResult`` with ``evs``, ``stds``, ``ensemble_standard_error`` shaped like the PUB.
    ``body`` may be plain JSON (§5.1), Qiskit-encoded JSON (§5.2) or the binary container of
    :mod:`.binary` (recognised by its magic bytes).

    Raises:
        WireFormatError: the body is none of these forms.
    """
    if isinstance(body, str):
        body = body.encode("utf-8")
    if _binary.is_container(body):
        doc, arrays = _binary.unpack(body)
        return _decode_qiskit(doc, arrays)
    try:
        if _is_qiskit_body(body):
            stripped, blobs = _extract_blobs(body)
            return _decode_qiskit(loads(stripped), blobs)
        stripped, segments = _extract_samples(body)
        doc = loads(stripped)
    except ValueError as exc:
        if isinstance(exc, WireFormatError):
            raise
        raise WireFormatError(f"result: not JSON ({exc})") from exc
    if isinstance(doc, dict) and doc.get("__type__") == "PrimitiveResult":
        return _decode_qiskit(doc, [])
    if not isinstance(doc, dict) or "results" not in doc:
        raise WireFormatError("result: neither a PrimitiveResult nor a plain result body")
    try:
        return _decode_plain(doc, segments)
    except WireFormatError:
        raise
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as exc:
        raise WireFormatError(f"result: malformed plain result ({exc})") from exc


# ----------------------------------------------------------------------------------------------
# JSON -> binary container (the server's answer to a client that accepts it)
# ----------------------------------------------------------------------------------------------
_CONVERT_MIN = 256  # base64 characters; shorter payloads are left inline without a look


def _is_qiskit_body(body: bytes) -> bool:
    return b'"__type__"' in body[:200].lstrip() and b"PrimitiveResult" in body[:400]


def to_binary(body: bytes, *, inline_max: int = _binary.INLINE_MAX) -> bytes | None:
    """Convert a Qiskit-encoded JSON result body (§5.2) into the binary container.

    Arrays of at least ``inline_max`` bytes become buffers: raw (one base64 decode and inflate
    each), or their zlib(npy) payload as is where that at most halves the size; the rest of the
    document is carried over unchanged. The result decodes with
    :func:`decode_result` to the same ``PrimitiveResult`` as ``body``.

    Returns:
        The container, or ``None`` when ``body`` is not Qiskit-encoded (plain §5.1 bodies and
        error texts have no container form).

    Raises:
        WireFormatError: ``body`` looks Qiskit-encoded but is malformed.
    """
    if not _is_qiskit_body(body):
        return None
    stripped, blobs = _extract_blobs(body, min(_CONVERT_MIN, inline_max))
    try:
        doc = loads(stripped)
    except ValueError as exc:
        raise WireFormatError(f"result: not JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("__type__") != "PrimitiveResult":
        return None
    arrays: list[_binary.Buffer] = []

    def blob_of(text: str) -> memoryview | None:
        index = text[len(_BLOB_MARK) :]
        if not text.startswith(_BLOB_MARK) or not index.isdigit() or int(index) >= len(blobs):
            return None
        return blobs[int(index)]

    def convert(obj: Any) -> Any:
        if isinstance(obj, str):  # a payload cut out of something other than an ndarray
            blob = blob_of(obj)
            return obj if blob is None else bytes(blob).decode("ascii")
        if isinstance(obj, list):
            return [convert(v) for v in obj]
        if not isinstance(obj, dict):
            return obj
        value = obj.get("__value__")
        blob = blob_of(value) if isinstance(value, str) else None
        if obj.get("__type__") == "ndarray" and blob is not None:
            payload = b64decode(blob, field="result")
            array = _load_npy(payload, "result", MAX_DECOMPRESSED_BYTES)
            if not _binary.buffer_worthy(array, inline_max):
                return {"__type__": "ndarray", "__value__": bytes(blob).decode("ascii")}
            zlib_npy = payload if payload[:1] == b"x" else None  # (else a bare .npy)
            arrays.append(_binary.buffer_for(array, zlib_npy))
            return {"__type__": "ndarray", "__ref__": len(arrays) - 1}
        return {k: convert(v) for k, v in obj.items()}

    return _binary.pack(convert(doc), arrays)
