"""NumPy arrays on the wire: the ``{"__type__": "ndarray", "__value__": ...}`` wrapper.

The payload is ``base64(zlib(npy))``, exactly what qiskit-ibm-runtime's ``RuntimeEncoder`` writes
and its ``RuntimeDecoder`` reads, so either side of a conversation may be the official client or
service. A low zlib level is used (level 1 compresses almost as well as the default 6 at a
fraction of the time), and payloads that do not compress at all (random parameter values,
high-entropy samples) are written as stored zlib blocks: still zlib, as the official decoder
requires, at memcpy speed (see :func:`compress` and ``benchmarks/wire.py``).

Decoding is lenient: the wrapper with a base64 payload (zlib-compressed or not), the wrapper with
a list or number payload (what a plain-JSON service may write), plain nested lists and plain
numbers are all accepted.
"""

from __future__ import annotations

import binascii
import io
import zlib
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from ..exceptions import WireFormatError

try:  # pybase64 is a drop-in, SIMD-accelerated base64; optional.
    from pybase64 import b64decode as _b64decode
    from pybase64 import b64encode as _b64encode
except ImportError:  # pragma: no cover - exercised only where pybase64 is absent
    from base64 import b64decode as _b64decode  # type: ignore[assignment]
    from base64 import b64encode as _b64encode  # type: ignore[assignment]

__all__ = [
    "ZLIB_LEVEL",
    "b64decode",
    "b64encode",
    "compress",
    "decode_ndarray",
    "decompress",
    "encode_ndarray",
]

ZLIB_LEVEL = 1
"""zlib level used for every compressed payload (speed over the last few percent of size)."""

_NPY_MAGIC = b"\x93NUMPY"


def b64encode(data: bytes) -> str:
    """Standard base64 (with padding) of ``data`` as ``str``."""
    return _b64encode(data).decode("ascii")


def b64decode(text: str | bytes | memoryview, *, field: str = "value") -> bytes:
    """Decode standard base64, raising :class:`WireFormatError` naming ``field`` on bad input."""
    try:
        return _b64decode(text, validate=False)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise WireFormatError(f"{field}: invalid base64 payload ({exc})") from exc


def npy_bytes(array: np.ndarray) -> bytes:
    """Serialize ``array`` in the ``.npy`` format (no pickles)."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


MAX_DECOMPRESSED_BYTES = 1 << 30
"""Refuse payloads that inflate beyond this (a zlib bomb in a request must not exhaust memory)."""

MAX_ARRAY_BYTES = 128 << 20
"""Most bytes one ``.npy`` array on the wire may declare (16 M float64 values).

A compressed array is inflated only up to the size its own ``.npy`` header declares, and a
header declaring more than this is refused before anything is inflated: a 340 KiB request of
zeros otherwise became 2.7 GiB in the API process (issue 15).
"""

_PROBE_BYTES = 1 << 16
_INCOMPRESSIBLE = 0.9


def compress(raw: bytes) -> bytes:
    """zlib-compress ``raw``, cheaply: store incompressible data instead of deflating it.

    Random-looking payloads (uniform parameter values, high-entropy samples) shrink by a few
    percent at best, and deflating them costs ~10 ms per MB; a 64 KiB probe decides, and data
    that does not compress is written as stored zlib blocks (still valid zlib, ~memcpy speed).
    """
    if len(raw) > 4 * _PROBE_BYTES:
        probe = raw[len(raw) // 2 : len(raw) // 2 + _PROBE_BYTES]
        if len(zlib.compress(probe, ZLIB_LEVEL)) > _INCOMPRESSIBLE * len(probe):
            return zlib.compress(raw, 0)
    return zlib.compress(raw, ZLIB_LEVEL)


def encode_ndarray(array: Any) -> dict:
    """Wrap ``array`` as ``{"__type__": "ndarray", "__value__": base64(zlib(npy))}``.

    Object arrays cannot be written as ``.npy`` without pickles; they are sent as nested lists,
    which is what the official encoder does too.

    Example:
        >>> wrapper = encode_ndarray(np.arange(3.0))
        >>> decode_ndarray(wrapper).tolist()
        [0.0, 1.0, 2.0]
    """
    array = np.asarray(array)
    if array.dtype.hasobject:
        return {"__type__": "ndarray", "__value__": array.tolist()}
    payload = compress(npy_bytes(array))
    return {"__type__": "ndarray", "__value__": b64encode(payload)}


def decompress(raw: bytes, field: str, what: str, limit: int | None = None) -> bytes:
    """zlib-decompress ``raw`` with a size cap (``limit`` bytes, :data:`MAX_DECOMPRESSED_BYTES`).

    Raises:
        WireFormatError: not zlib data, or it inflates beyond the cap.
    """
    if limit is None:
        limit = MAX_DECOMPRESSED_BYTES
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(raw, limit)
    except zlib.error as exc:
        raise WireFormatError(f"{field}: {what} payload is neither zlib nor {what}") from exc
    if inflater.unconsumed_tail:
        raise WireFormatError(f"{field}: {what} payload inflates beyond {limit} bytes")
    if not inflater.eof:
        raise WireFormatError(f"{field}: {what} payload is truncated")
    return out


def _declared_npy_bytes(head: bytes, field: str, max_bytes: int) -> int:
    """The total length (header + data) an ``.npy`` file declares in its first bytes."""
    from numpy.lib import format as npy_format

    stream = io.BytesIO(head)
    try:
        version = npy_format.read_magic(stream)
        read = (
            npy_format.read_array_header_1_0
            if version == (1, 0)
            else (npy_format.read_array_header_2_0)
        )
        shape, _, dtype = read(stream)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        raise WireFormatError(f"{field}: invalid npy payload ({exc})") from exc
    if dtype.hasobject:
        raise WireFormatError(f"{field}: npy payloads of Python objects are not accepted")
    count = 1
    for extent in shape:
        count *= int(extent)
    nbytes = count * dtype.itemsize
    if nbytes > max_bytes:
        raise WireFormatError(
            f"{field}: the array declares {nbytes} bytes (shape {tuple(shape)}, {dtype}); at "
            f"most {max_bytes} bytes per array are accepted"
        )
    return stream.tell() + nbytes


def _load_npy(raw: bytes, field: str, max_bytes: int = MAX_ARRAY_BYTES) -> np.ndarray:
    if raw.startswith(_NPY_MAGIC):
        _declared_npy_bytes(raw[:65536], field, max_bytes)
    else:
        # Inflate the header first, then no more than the header declares.
        try:
            head = zlib.decompressobj().decompress(raw, 65536)
        except zlib.error as exc:
            raise WireFormatError(f"{field}: npy payload is neither zlib nor npy") from exc
        raw = decompress(raw, field, "npy", _declared_npy_bytes(head, field, max_bytes))
    try:
        return np.load(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise WireFormatError(f"{field}: invalid npy payload ({exc})") from exc


def _from_plain(obj: Any, field: str) -> np.ndarray:
    try:
        array = np.asarray(obj)
    except (ValueError, TypeError) as exc:
        raise WireFormatError(f"{field}: ragged or invalid nested list ({exc})") from exc
    if array.dtype.hasobject:
        raise WireFormatError(f"{field}: expected numbers in a rectangular nested list")
    return array


def decode_ndarray(
    obj: Any,
    *,
    dtype: DTypeLike | None = None,
    field: str = "value",
    max_bytes: int = MAX_ARRAY_BYTES,
) -> np.ndarray:
    """Decode the ndarray wrapper, a plain nested list or a number into an array.

    Args:
        obj: ``{"__type__": "ndarray", "__value__": <base64 str | list | number>}``, a nested list
            or a number.
        dtype: if given, the result is converted to this dtype (a ``WireFormatError`` if the
            values cannot be).
        field: name of the field being decoded, used in error messages
            (``pubs[0].parameter_values``).
        max_bytes: the most bytes a ``.npy`` payload may declare (checked before inflating).

    Returns:
        The decoded array (read-write).

    Raises:
        WireFormatError: the payload is not a valid array; the message names ``field``.
    """
    if isinstance(obj, dict):
        if obj.get("__type__") != "ndarray" or "__value__" not in obj:
            raise WireFormatError(f"{field}: expected an ndarray wrapper, got keys {sorted(obj)}")
        value = obj["__value__"]
        if isinstance(value, (str, bytes, memoryview)):
            array = _load_npy(b64decode(value, field=field), field, max_bytes)
        elif isinstance(value, (list, int, float, bool)):
            array = _from_plain(value, field)
        else:
            raise WireFormatError(f"{field}: unsupported ndarray payload {type(value).__name__}")
    elif isinstance(obj, (list, tuple, int, float, np.ndarray, np.generic)) and not isinstance(
        obj, bool
    ):
        array = _from_plain(obj, field)
    else:
        raise WireFormatError(f"{field}: expected an array, got {type(obj).__name__}")
    if dtype is not None and array.dtype != np.dtype(dtype):
        try:
            array = array.astype(dtype)
        except (ValueError, TypeError) as exc:
            raise WireFormatError(f"{field}: cannot convert to {np.dtype(dtype)} ({exc})") from exc
    if not array.flags.writeable:
        array = array.copy()
    return array
