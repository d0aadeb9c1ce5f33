"""The QPY wrapper form of circuits: ``{"__type__": "QuantumCircuit", "__value__": ...}``.

The payload is ``base64(zlib(QPY))`` with exactly one circuit.

What qiskit-ibm-runtime sends (protocol §4.5). Internal; use :mod:`.circuits`.
"""

from __future__ import annotations

import io
import warnings
import zlib
from typing import Any

from qiskit import QuantumCircuit, qpy

from ..exceptions import WireFormatError
from .arrays import ZLIB_LEVEL, b64decode, b64encode, decompress

__all__ = ["QPY_MAX_VERSION", "decode_qpy", "encode_qpy"]

QPY_MAX_VERSION = 17
"""Highest QPY version the official service accepts (``SERVICE_MAX_SUPPORTED_QPY_VERSION``)."""


def encode_qpy(circuit: QuantumCircuit) -> dict:
    """Wrap ``circuit`` as ``{"__type__": "QuantumCircuit", "__value__": b64(zlib(QPY))}``.

    QPY version ``min(17, qiskit's)``, what the official service accepts. QPY keeps what
    OpenQASM 3 loses (global phase, parameter identity, real-time variables) but not delay units
    other than ``dt`` reliably (Qiskit/qiskit#8293).
    """
    buffer = io.BytesIO()
    qpy.dump(circuit, buffer, version=min(QPY_MAX_VERSION, qpy.QPY_VERSION))
    return {
        "__type__": "QuantumCircuit",
        "__value__": b64encode(zlib.compress(buffer.getvalue(), ZLIB_LEVEL)),
    }


def decode_qpy(value: Any, field: str) -> QuantumCircuit:
    """Decode the wrapper's payload (zlib optional); exactly one circuit.

    Raises:
        WireFormatError: naming ``field``.
    """
    if not isinstance(value, str):
        raise WireFormatError(f"{field}: QPY payload must be a base64 string")
    raw = b64decode(value, field=field)
    if not raw.startswith(b"QISKIT"):
        raw = decompress(raw, field, "QPY")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            circuits = qpy.load(io.BytesIO(raw))
    except Exception as exc:
        raise WireFormatError(f"{field}: invalid QPY payload ({exc})") from exc
    if len(circuits) != 1 or not isinstance(circuits[0], QuantumCircuit):
        raise WireFormatError(f"{field}: QPY payload must hold exactly one circuit")
    return circuits[0]
