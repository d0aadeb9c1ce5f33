"""The QPY wrapper form of circuits: ``{"__type__": "QuantumCircuit", "__value__": ...}``.

The payload is ``base64(zlib(QPY))`` with exactly one circuit.

What qiskit-ibm-runtime sends (protocol §4.5). Internal; use :mod:`.circuits`.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from typing import Any

from qiskit import QuantumCircuit, qpy

from ..exceptions import WireFormatError
from .arrays import ZLIB_LEVEL, b64decode, b64encode, decompress
from .limits import MAX_CLBITS, MAX_QUBITS

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
    _check_header(raw, field)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            circuits = qpy.load(io.BytesIO(raw))
    except Exception as exc:
        raise WireFormatError(f"{field}: invalid QPY payload ({exc})") from exc
    if len(circuits) != 1 or not isinstance(circuits[0], QuantumCircuit):
        raise WireFormatError(f"{field}: QPY payload must hold exactly one circuit")
    return circuits[0]


QPY_MIN_VERSION = 12
"""Oldest QPY version read (the circuit header layout checked below; the service takes 13-17)."""

_FILE_HEADER = struct.Struct("!6sBBBBQc")  # preface, version, qiskit x.y.z, programs, encoding
_CIRCUIT_HEADER = struct.Struct("!H1cHIIQIQI")  # QPY >= 12 circuit header
_OFFSET = struct.Struct("!Q")


def _check_header(raw: bytes, field: str) -> None:
    """Check the QPY file and circuit headers before ``qpy.load`` trusts their sizes.

    ``qpy.load`` builds one object per qubit and clbit the header declares, so a few corrupted
    bytes could ask for billions of them. Counts that the payload cannot possibly hold are
    refused here, with the same limits as OpenQASM programs.
    """
    size = len(raw)
    try:
        preface, version, _, _, _, programs, _ = _FILE_HEADER.unpack_from(raw, 0)
        if preface != b"QISKIT":
            raise WireFormatError(f"{field}: not a QPY payload")
        if not QPY_MIN_VERSION <= version <= qpy.QPY_VERSION:
            raise WireFormatError(
                f"{field}: QPY version {version} is not supported "
                f"({QPY_MIN_VERSION}-{qpy.QPY_VERSION})"
            )
        if programs != 1:
            raise WireFormatError(f"{field}: QPY payload must hold exactly one circuit")
        offset = _FILE_HEADER.size
        if raw[offset : offset + 1] != b"q":
            raise WireFormatError(f"{field}: QPY payload must hold a circuit")
        offset += 1
        if version >= 16:  # a table of program offsets follows
            offset = _OFFSET.unpack_from(raw, offset)[0]
        header = _CIRCUIT_HEADER.unpack_from(raw, offset)
    except struct.error as exc:
        raise WireFormatError(f"{field}: truncated QPY payload ({exc})") from exc
    _, _, _, qubits, clbits, metadata, registers, instructions, variables = header
    if qubits > MAX_QUBITS:
        raise WireFormatError(
            f"{field}: the circuit declares {qubits} qubits (at most {MAX_QUBITS})"
        )
    if clbits > MAX_CLBITS:
        raise WireFormatError(
            f"{field}: the circuit declares {clbits} classical bits (at most {MAX_CLBITS})"
        )
    if max(metadata, registers, instructions, variables) > size:
        raise WireFormatError(f"{field}: QPY header counts exceed the payload's size")
