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
from .limits import MAX_CLBITS, MAX_QPY_BYTES, MAX_QPY_CIRCUITS, MAX_QUBITS

__all__ = ["QPY_MAX_VERSION", "decode_qpy", "encode_qpy", "load_qpy_circuits"]

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
    return load_qpy_circuits(b64decode(value, field=field), field, max_circuits=1)[0]


def load_qpy_circuits(raw: bytes, field: str, *, max_circuits: int = MAX_QPY_CIRCUITS) -> list:
    """Read a QPY file (zlib-compressed or not) of at most ``max_circuits`` circuits.

    The file is inflated within :data:`~.limits.MAX_QPY_BYTES` and every circuit header is checked
    before ``qpy.load`` allocates anything, so neither a zlib bomb nor a header claiming billions
    of qubits can exhaust the reader's memory.

    Raises:
        WireFormatError: naming ``field``.
    """
    if not raw.startswith(b"QISKIT"):
        raw = decompress(raw, field, "QPY", MAX_QPY_BYTES)
    elif len(raw) > MAX_QPY_BYTES:
        raise WireFormatError(f"{field}: QPY payload is larger than {MAX_QPY_BYTES} bytes")
    _check_header(raw, field, max_circuits)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            circuits = qpy.load(io.BytesIO(raw))
    except Exception as exc:
        raise WireFormatError(f"{field}: invalid QPY payload ({exc})") from exc
    if not all(isinstance(circuit, QuantumCircuit) for circuit in circuits):
        raise WireFormatError(f"{field}: QPY payload must hold circuits only")
    if max_circuits == 1 and len(circuits) != 1:
        raise WireFormatError(f"{field}: QPY payload must hold exactly one circuit")
    return circuits


QPY_MIN_VERSION = 12
"""Oldest QPY version read (the circuit header layout checked below; the service takes 13-17)."""

_FILE_HEADER = struct.Struct("!6sBBBBQc")  # preface, version, qiskit x.y.z, programs, encoding
_CIRCUIT_HEADER = struct.Struct("!H1cHIIQIQI")  # QPY >= 12 circuit header
_OFFSET = struct.Struct("!Q")


def _check_header(raw: bytes, field: str, max_circuits: int = 1) -> None:
    """Check the QPY file and circuit headers before ``qpy.load`` trusts their sizes.

    ``qpy.load`` builds one object per qubit and clbit the header declares, so a few corrupted
    bytes could ask for billions of them. Counts that the payload cannot possibly hold are
    refused here, with the same limits as OpenQASM programs. Files of several circuits must be
    QPY 16 or newer, whose table of program offsets lets every circuit header be checked.
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
        if max_circuits == 1 and programs != 1:
            raise WireFormatError(f"{field}: QPY payload must hold exactly one circuit")
        if not 1 <= programs <= max_circuits:
            raise WireFormatError(
                f"{field}: QPY payload holds {programs} programs (1 to {max_circuits} accepted)"
            )
        offset = _FILE_HEADER.size
        if raw[offset : offset + 1] != b"q":
            raise WireFormatError(f"{field}: QPY payload must hold a circuit")
        offset += 1
        if version >= 16:  # a table of program offsets follows
            offsets = [_OFFSET.unpack_from(raw, offset + 8 * i)[0] for i in range(programs)]
        elif programs == 1:
            offsets = [offset]
        else:
            raise WireFormatError(
                f"{field}: a QPY file of several circuits must be QPY version 16 or newer"
            )
        headers = [_CIRCUIT_HEADER.unpack_from(raw, at) for at in offsets]
    except struct.error as exc:
        raise WireFormatError(f"{field}: truncated QPY payload ({exc})") from exc
    for header in headers:
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
