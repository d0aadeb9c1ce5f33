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

from qiskit_rest_provider.server.transpile.tasks import (
    QPY_INFLATE_FLOOR,
    QPY_INFLATE_RATIO,
    TranspileRequest,
    _load,
    qpy_inflate_cap,
    read_qpy_input,
)
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
    cap = qpy_inflate_cap(len(bomb), MAX_QPY_BYTES)
    assert cap == max(QPY_INFLATE_FLOOR, QPY_INFLATE_RATIO * len(bomb)) < MAX_QPY_BYTES
    with pytest.raises(
        ValueError,
        match=f"qpy_circuits: the compressed QPY payload \\({len(bomb)} bytes\\) "
        f"inflates beyond {cap} bytes",
    ):
        _load(_request(bomb))


def test_the_inflate_cap_follows_the_input_size_and_the_server_limit() -> None:
    raw = _qpy([QuantumCircuit(1)]) + b"\0" * (8 << 20)  # QPY then 8 MiB of zeros: ~8 KB zlib
    packed = base64.b64encode(zlib.compress(raw, 9)).decode()
    small = len(zlib.compress(raw, 9))
    assert QPY_INFLATE_RATIO * small < 8 << 20  # a 1000:1 ratio: over 100 times its size
    with pytest.raises(ValueError, match="inflates beyond 4194304 bytes.*--max-transpile-qpy"):
        read_qpy_input(packed, MAX_QPY_BYTES)
    plain = _qpy([QuantumCircuit(2)])
    assert read_qpy_input(base64.b64encode(zlib.compress(plain)).decode(), 1 << 20) == plain
    with pytest.raises(ValueError, match=f"more than this server's limit of {len(plain) - 1}"):
        read_qpy_input(base64.b64encode(plain).decode(), len(plain) - 1)
    assert qpy_inflate_cap(10 << 20, 16 << 20) == 16 << 20  # never past the server's limit


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


def test_server_transpile_limits_are_checked_and_the_default_clamped(tmp_path) -> None:
    from qiskit_rest_provider.server.config import ServerConfig

    config = ServerConfig(data_dir=tmp_path, default_transpile_time=60, max_transpile_time=10)
    assert config.default_transpile_time == 10  # at most the maximum
    with pytest.raises(ValueError, match="transpile time limits"):
        ServerConfig(data_dir=tmp_path, max_transpile_time=0)
    with pytest.raises(ValueError, match="max_transpile_qpy_bytes"):
        ServerConfig(data_dir=tmp_path, max_transpile_qpy_bytes=MAX_QPY_BYTES + 1)
