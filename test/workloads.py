"""Workloads several test modules share (imported by name: ``from workloads import slow_qasm``)."""

from __future__ import annotations

from typing import Any


def slow_qasm(n: int = 16, layers: int = 40) -> str:
    """A program that keeps a worker busy for seconds per 100k shots.

    Mid-circuit measurements force Aer to simulate shot by shot, so the run time scales with the
    shots: the tests that need a job to be Running (cancel, time limits, fairness) use it.
    """
    lines = ['OPENQASM 3.0; include "stdgates.inc";', f"qubit[{n}] q; bit[{n}] c;"]
    for layer in range(layers):
        lines += [f"h q[{i}];" for i in range(n)]
        lines += [f"cx q[{i}], q[{i + 1}];" for i in range(n - 1)]
        lines.append(f"c[{layer % n}] = measure q[{layer % n}];")
    return " ".join(lines)


# --- the edge attacks of issue 15 (test_edge_attacks.py and benchmarks/load.py's attack rows)

BELL_QASM = (
    'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] meas; h q[0]; cx q[0], q[1]; '
    "meas[0] = measure q[0]; meas[1] = measure q[1];"
)
TWO_PARAMETER_QASM = (
    'OPENQASM 3.0; include "stdgates.inc"; input float[64] a; input float[64] b; qubit[1] q; '
    "bit[1] c; rx(a) q[0]; ry(b) q[0]; c[0] = measure q[0];"
)


def sampler_job(*pubs, **params) -> dict:
    """A plain-REST sampler job on ``rest_simulator`` with these PUBs and extra params keys."""
    return {"program_id": "sampler", "backend": "rest_simulator",
            "params": {"pubs": list(pubs), "version": 2, **params}}  # fmt: skip


def inflation_bomb_body() -> bytes:
    """A sampler job whose parameter values are 352 MB of float64 zeros in ~340 KiB of zlib."""
    import base64
    import io
    import json
    import zlib

    import numpy as np

    npy = np.lib.format.header_data_from_array_1_0(np.zeros((1, 2)))
    npy["shape"] = (22_000_000, 2)
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, npy)
    raw = zlib.compress(buffer.getvalue() + b"\0" * (22_000_000 * 16), 9)
    bomb = {"__type__": "ndarray", "__value__": base64.b64encode(raw).decode()}
    return json.dumps(sampler_job([TWO_PARAMETER_QASM, bomb, 10])).encode()


def big_qasm_bodies() -> list[bytes]:
    """Two 583 KiB programs only the general importer reads, two flat ones refused later."""
    import json

    header = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] b;\n'
    general = header + "gate g(a) x { rz(a) x; }\n" + "g(0.5) q[0];\n" * 45_900
    flat = header + "rz(0.5) q[0];\n" * 42_600  # read fast, then refused (shots 0)
    jobs = [sampler_job([general, None, 10]), sampler_job([general + "//2", None, 10]),
            sampler_job([flat, None, 0]), sampler_job([flat + "//2", None, 0])]  # fmt: skip
    return [json.dumps(job).encode() for job in jobs]


def padding_bodies(count: int = 6) -> list[bytes]:
    """Bell jobs each carrying 50 MiB under an unknown ``params`` key."""
    import json

    return [json.dumps(sampler_job([BELL_QASM, None, 10], padding="x" * (50 << 20), n=i)).encode()
            for i in range(count)]  # fmt: skip


def bell_circuit() -> Any:
    """The 2-qubit Bell circuit with ``measure_all`` (register ``meas``): the smallest real job."""
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return qc


def handoff_circuits() -> tuple[Any, Any]:
    """A circuit a task carries as QPY (with metadata), and one with a delay in ``ns`` that it
    carries pickled (QPY would turn the unit into ``dt``): the two ways of ``.handoff``."""
    from qiskit import QuantumCircuit

    plain = QuantumCircuit(3, name="plain", metadata={"k": 1})
    plain.h(0)
    plain.cx(0, 1)
    plain.rz(0.125, 2)
    plain.measure_all()
    timed = QuantumCircuit(1, name="timed")
    timed.delay(100, 0, unit="ns")
    timed.x(0)
    return plain, timed
