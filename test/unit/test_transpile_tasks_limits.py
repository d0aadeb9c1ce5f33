"""The transpile service reads QPY within the same caps as job circuits (issue 10).

A 300 KB request body once inflated to 692 MiB in a worker; now the inflate stops at
``MAX_QPY_BYTES`` and every circuit header of a multi-circuit file is checked before ``qpy.load``.
"""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
from qiskit import QuantumCircuit, qpy

from qiskit_rest_provider.server.transpile.tasks import TranspileRequest, _load
from qiskit_rest_provider.wire.limits import MAX_QPY_BYTES, MAX_QUBITS


def _qpy(circuits: list[QuantumCircuit], version: int = 17) -> bytes:
    buffer = io.BytesIO()
    qpy.dump(circuits, buffer, version=version)
    return buffer.getvalue()


def _request(raw: bytes) -> TranspileRequest:
    return TranspileRequest(
        backend=None, optimization_level=1, qpy_circuits=base64.b64encode(raw).decode()
    )


def test_several_circuits_load_plain_and_zlib() -> None:
    circuits = [QuantumCircuit(n + 1) for n in range(3)]
    raw = _qpy(circuits)
    for payload in (raw, zlib.compress(raw)):
        loaded = _load(_request(payload))
        assert [name for name, _ in loaded] == [f"qpy_circuits[{i}]" for i in range(3)]
        assert [c.num_qubits for _, c in loaded] == [1, 2, 3]


def test_zlib_bomb_stops_at_the_cap() -> None:
    bomb = zlib.compress(_qpy([QuantumCircuit(1)]) + b"\0" * (MAX_QPY_BYTES + 1), 9)
    assert len(bomb) < 200_000
    with pytest.raises(
        ValueError, match=f"qpy_circuits: QPY payload inflates beyond {MAX_QPY_BYTES}"
    ):
        _load(_request(bomb))


def test_a_later_circuit_header_claiming_too_many_qubits_is_refused() -> None:
    raw = bytearray(_qpy([QuantumCircuit(1), QuantumCircuit(2)]))
    second = struct.unpack_from("!Q", raw, 20 + 8)[0]  # the program offset table follows 'q'
    struct.pack_into("!I", raw, second + 5, 2**31)  # num_qubits of the second circuit
    with pytest.raises(ValueError, match=f"declares {2**31} qubits \\(at most {MAX_QUBITS}\\)"):
        _load(_request(bytes(raw)))


def test_old_qpy_of_several_circuits_is_refused_by_name() -> None:
    raw = _qpy([QuantumCircuit(1), QuantumCircuit(1)], version=13)
    with pytest.raises(ValueError, match="several circuits must be QPY version 16 or newer"):
        _load(_request(raw))
