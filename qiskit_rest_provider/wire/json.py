"""JSON bytes in and out: orjson with NumPy support, and a lenient reader.

``dumps`` returns ``bytes`` (what HTTP bodies are). NumPy arrays and scalars are written as plain
JSON numbers/lists; use :func:`~qiskit_rest_provider.wire.arrays.encode_ndarray` where the wire
format wants the compact wrapper. ``loads`` accepts the non-standard ``NaN``/``Infinity`` tokens
that some services emit (falling back to the standard library parser only when orjson refuses).
"""

from __future__ import annotations

import datetime
import json as _stdjson
from typing import Any

import numpy as np
import orjson

__all__ = ["dumps", "loads"]

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, complex):
        return [obj.real, obj.imag]
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, datetime.date):
        return obj.isoformat()
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def dumps(obj: Any) -> bytes:
    """Serialize ``obj`` to JSON bytes (UTF-8). NaN and infinities are written as ``null``.

    Integers beyond 64 bits (which orjson refuses) fall back to the standard library encoder.
    """
    try:
        return orjson.dumps(obj, default=_default, option=_OPTIONS)
    except orjson.JSONEncodeError as exc:
        if "Integer exceeds" not in str(exc):
            raise
        return _stdjson.dumps(obj, default=_default, separators=(",", ":")).encode("utf-8")


def loads(text: str | bytes | bytearray | memoryview) -> Any:
    """Parse JSON, accepting the ``NaN``, ``Infinity`` and ``-Infinity`` tokens too.

    Raises:
        ValueError: the text is not JSON (``json.JSONDecodeError`` is a ``ValueError``).
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        if isinstance(text, (bytes, bytearray, memoryview)):
            text = bytes(text).decode("utf-8")
        return _stdjson.loads(text)
