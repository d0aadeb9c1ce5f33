r"""The optional binary result container, media type ``application/x-qiskit-rest-result``.

A client that can read it asks for it on ``GET .../jobs/{id}/results`` with
``Accept: application/x-qiskit-rest-result, application/json;q=0.9``; a service that does not
know it answers JSON, and :func:`~qiskit_rest_provider.wire.results.decode_result` reads
whichever comes. The container holds the Qiskit-encoded ``PrimitiveResult`` of protocol §5.2
with each large array moved out of the JSON into a raw buffer, so that decoding is a small JSON
parse plus one copy per array: no base64, and no zlib unless it halves the size (below).

Layout (integers little-endian)::

    offset  size  field
    0       8     magic b"\x93QRESULT" (0x93 cannot start UTF-8 text, so never JSON)
    8       2     version, uint16 (1)
    10      2     flags, uint16 (0; reserved)
    12      4     H, the header length in bytes, uint32
    16      H     header: UTF-8 JSON {"buffers": [...], "result": <Qiskit-encoded result>}
    ...           zero padding up to D, the first multiple of 64 at or after 16 + H
    D + o_i       buffer i: n_i bytes; every o_i is a multiple of 64

Each ``buffers[i]`` is ``{"dtype": "<u1", "shape": [...], "offset": o_i, "nbytes": n_i}`` with
the NumPy dtype string (byte order explicit; we write little-endian) and
``n_i == prod(shape) * itemsize``: the raw array. With ``"codec": "zlib-npy"`` the buffer is
instead the ``n_i``-byte payload of the ``ndarray`` wrapper without its base64, a zlib stream
of a ``.npy`` file whose dtype and shape are those of the entry; writers use it only where it
at most halves the size (low-entropy samples), so that well-compressible results do not grow on
the wire, and readers pay an inflate for it. In ``result`` the array in buffer ``i`` is written
``{"__type__": "ndarray", "__ref__": i}``; arrays under :data:`INLINE_MAX` bytes stay inline
as the usual ``ndarray`` wrapper. Only bool, integer, float and complex dtypes are allowed.

This module knows only the container (:func:`pack`, :func:`unpack`); building and reading the
result objects is :mod:`.results`' business.
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..exceptions import WireFormatError
from .arrays import ZLIB_LEVEL, compress, npy_bytes
from .json import dumps, loads
from .protocol import BINARY_RESULT_MEDIA_TYPE

__all__ = [
    "ALIGNMENT",
    "CODEC_ZLIB_NPY",
    "Buffer",
    "INLINE_MAX",
    "MAGIC",
    "MEDIA_TYPE",
    "VERSION",
    "buffer_for",
    "buffer_worthy",
    "is_container",
    "pack",
    "unpack",
]

MEDIA_TYPE = BINARY_RESULT_MEDIA_TYPE
"""The media type of the container (``Content-Type`` of the answer, ``Accept`` of the ask)."""

MAGIC = b"\x93QRESULT"
VERSION = 1
ALIGNMENT = 64
INLINE_MAX = 1024
"""Arrays of fewer bytes than this stay inline in the JSON header (base64 ``ndarray`` wrapper)."""

CODEC_ZLIB_NPY = "zlib-npy"
_PROBE_BYTES = 1 << 16
_NPY_HEADER_MAX = (1 << 16) + 16
_WORTH = 0.5  # a compressed buffer must be at most this fraction of the raw size
_PREAMBLE = struct.Struct("<8sHHI")
_KINDS = frozenset("biufc")
MAX_HEADER_BYTES = 1 << 28
"""Refuse headers beyond this size (a hostile length field must not drive an allocation)."""


def _align(n: int) -> int:
    return -(-n // ALIGNMENT) * ALIGNMENT


def is_container(body: bytes | bytearray | memoryview) -> bool:
    """Whether ``body`` starts with the container's magic bytes."""
    return bytes(body[: len(MAGIC)]) == MAGIC


def buffer_worthy(array: np.ndarray, inline_max: int = INLINE_MAX) -> bool:
    """Whether ``array`` goes to a buffer (large, and of a plain numeric dtype)."""
    return array.dtype.kind in _KINDS and array.nbytes >= inline_max


@dataclass(frozen=True)
class Buffer:
    """One buffer to :func:`pack`: an array's dtype and shape, its bytes and their codec."""

    dtype: np.dtype
    shape: tuple[int, ...]
    data: bytes | memoryview
    codec: str | None = None

    @classmethod
    def raw(cls, array: Any) -> Buffer:
        """The array's own bytes (C order, little-endian)."""
        array = np.asarray(array)
        if not array.flags.c_contiguous:  # (np.ascontiguousarray would make 0-d arrays 1-d)
            array = array.copy(order="C")
        if array.dtype.kind not in _KINDS:
            raise TypeError(f"binary result: unsupported buffer dtype {array.dtype}")
        if array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("<"))
        return cls(array.dtype, array.shape, memoryview(array.reshape(-1).view(np.uint8)))


def _compresses_well(array: np.ndarray) -> bool:
    """A cheap guess, from a 64 KiB probe, whether zlib halves ``array`` (large arrays only)."""
    if array.nbytes <= 4 * _PROBE_BYTES or not array.flags.c_contiguous:
        return True
    flat = array.reshape(-1).view(np.uint8)
    middle = flat.size // 2
    probe = flat[middle : middle + _PROBE_BYTES].tobytes()
    return len(zlib.compress(probe, ZLIB_LEVEL)) <= _WORTH * len(probe)


def buffer_for(array: np.ndarray, payload: bytes | memoryview | None = None) -> Buffer:
    """The buffer for ``array``: raw, or ``zlib-npy`` where that at most halves its size.

    Args:
        array: the array.
        payload: its zlib(npy) payload if already at hand (a JSON body's ``ndarray`` wrapper
            without base64); otherwise it is computed when a probe says it may pay off.
    """
    if payload is None and _compresses_well(array):
        payload = compress(npy_bytes(array))
    if payload is not None and len(payload) <= _WORTH * array.nbytes:
        return Buffer(array.dtype, array.shape, payload, CODEC_ZLIB_NPY)
    return Buffer.raw(array)


def pack(result: Any, buffers: Sequence[Buffer | np.ndarray]) -> bytes:
    """Build a container from a Qiskit-encoded result document and the buffers it refers to.

    Args:
        result: the JSON-able document; ``{"__type__": "ndarray", "__ref__": i}`` names
            ``buffers[i]``.
        buffers: :class:`Buffer` objects, or arrays (any layout; written raw, C-ordered,
            little-endian).
    """
    table = []
    payloads = []
    offset = 0
    for item in buffers:
        buffer = item if isinstance(item, Buffer) else Buffer.raw(item)
        entry: dict[str, Any] = {
            "dtype": buffer.dtype.str,
            "shape": list(buffer.shape),
            "offset": offset,
            "nbytes": len(buffer.data),
        }
        if buffer.codec:
            entry["codec"] = buffer.codec
        table.append(entry)
        payloads.append(buffer.data)
        offset = _align(offset + len(buffer.data))
    header = dumps({"buffers": table, "result": result})
    start = _align(_PREAMBLE.size + len(header))
    pieces: list[Any] = [
        _PREAMBLE.pack(MAGIC, VERSION, 0, len(header)),
        header,
        bytes(start - _PREAMBLE.size - len(header)),
    ]
    position = 0
    for entry, payload in zip(table, payloads, strict=True):
        pieces.append(bytes(entry["offset"] - position))
        pieces.append(payload)
        position = entry["offset"] + entry["nbytes"]
    return b"".join(pieces)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise WireFormatError(f"binary result: {what} must be a non-negative integer")
    return value


def _buffer(body: bytes | bytearray | memoryview, start: int, i: int, entry: Any) -> np.ndarray:
    where = f"buffers[{i}]"
    if not isinstance(entry, dict):
        raise WireFormatError(f"binary result: {where} must be an object")
    if not isinstance(entry.get("dtype"), str):
        raise WireFormatError(f"binary result: {where}.dtype must be a string")
    try:
        dtype = np.dtype(entry["dtype"])
    except (TypeError, ValueError) as exc:
        raise WireFormatError(f"binary result: {where}.dtype is not a NumPy dtype") from exc
    if dtype.kind not in _KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise WireFormatError(f"binary result: {where}.dtype {dtype} is not a numeric dtype")
    shape = entry.get("shape")
    if not isinstance(shape, list):
        raise WireFormatError(f"binary result: {where}.shape must be a list")
    dims = tuple(_int(d, f"{where}.shape[]") for d in shape)
    offset = _int(entry.get("offset"), f"{where}.offset")
    nbytes = _int(entry.get("nbytes"), f"{where}.nbytes")
    count = math.prod(dims)
    codec = entry.get("codec")
    if codec not in (None, CODEC_ZLIB_NPY):
        raise WireFormatError(f"binary result: {where}.codec {codec!r} is not supported")
    if codec is None and count * dtype.itemsize != nbytes:
        raise WireFormatError(f"binary result: {where}.nbytes does not match its shape and dtype")
    begin = start + offset
    if begin + nbytes > len(body):
        raise WireFormatError(f"binary result: {where} lies beyond the end of the body")
    if codec == CODEC_ZLIB_NPY:
        inflater = zlib.decompressobj()
        try:
            raw = inflater.decompress(
                memoryview(body)[begin : begin + nbytes], count * dtype.itemsize + _NPY_HEADER_MAX
            )
        except zlib.error as exc:
            raise WireFormatError(f"binary result: {where} is not a zlib stream") from exc
        if inflater.unconsumed_tail or not inflater.eof:
            raise WireFormatError(f"binary result: {where} does not inflate to its dtype and shape")
        try:
            array = np.load(io.BytesIO(raw), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise WireFormatError(f"binary result: {where} is not a zlib-npy payload") from exc
        if array.dtype != dtype or array.shape != dims:
            raise WireFormatError(f"binary result: {where} does not match its dtype and shape")
        return array if array.flags.writeable else array.copy()
    if count == 0:
        return np.empty(dims, dtype=dtype)
    return np.frombuffer(body, dtype=dtype, count=count, offset=begin).reshape(dims).copy()


def unpack(body: bytes | bytearray | memoryview) -> tuple[Any, list[np.ndarray]]:
    """Split a container into its result document and its arrays (each a writeable copy).

    Raises:
        WireFormatError: not a container, an unknown version, or a malformed header/buffer.
    """
    if len(body) < _PREAMBLE.size or not is_container(body):
        raise WireFormatError("binary result: missing magic bytes")
    _, version, _flags, length = _PREAMBLE.unpack_from(body, 0)
    if version != VERSION:
        raise WireFormatError(f"binary result: unsupported container version {version}")
    if length > MAX_HEADER_BYTES or _PREAMBLE.size + length > len(body):
        raise WireFormatError("binary result: header length exceeds the body")
    try:
        header = loads(memoryview(body)[_PREAMBLE.size : _PREAMBLE.size + length])
    except (ValueError, UnicodeDecodeError) as exc:
        raise WireFormatError(f"binary result: header is not JSON ({exc})") from exc
    if not isinstance(header, dict) or not isinstance(header.get("buffers"), list):
        raise WireFormatError("binary result: header must be an object with a buffers list")
    if "result" not in header:
        raise WireFormatError("binary result: header has no result")
    start = _align(_PREAMBLE.size + length)
    arrays = [_buffer(body, start, i, e) for i, e in enumerate(header["buffers"])]
    return header["result"], arrays
