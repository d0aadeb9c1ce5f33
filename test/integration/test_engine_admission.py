"""Admission sizing: jobs that cannot fit are refused at submission (D13), the server stays up.

User story: a user sends 30 active qubits to ``rest_simulator`` (16 GiB of statevector), 3000
PUBs to a backend that advertises ``max_experiments`` 300, or ``bit[100000]`` x 2000 shots to a
server capped at 1 GiB per job. Each answers 400 ``job_too_large`` at once, naming the estimate,
the limit and the flag that raises it; nothing is stored, and the next Bell job runs.
"""

from __future__ import annotations

import pytest
import requests

pytest.importorskip("fastapi")

BELL = (
    'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] c; h q[0]; cx q[0], q[1]; '
    "c = measure q;"
)


def _wide(n: int) -> str:
    """``n`` active qubits, T gates and CX across the middle: no stabilizer nor MPS shortcut.

    Each CX pairs qubit ``i`` with ``i + n/2``, so every cut of the line is crossed by up to
    n/2 gates and a matrix product state would be as large as the statevector.
    """
    body = " ".join(f"h q[{i}]; t q[{i}];" for i in range(n))
    body += " ".join(f" cx q[{i}], q[{i + n // 2}];" for i in range(n // 2))
    return f'OPENQASM 3.0; include "stdgates.inc"; qubit[{n}] q; bit[{n}] c; {body} c = measure q;'


def _post(server, headers, pubs, backend="rest_simulator"):
    body = {
        "program_id": "sampler",
        "backend": backend,
        "params": {"pubs": pubs, "version": 2},
    }
    return requests.post(f"{server.runtime_url}/jobs", headers=headers, json=body, timeout=120)


def _refused(response, *fragments):
    assert response.status_code == 400, response.text
    body = response.json()
    error = body["errors"][0]
    assert error["code"] == "job_too_large", error
    assert body["status_code"] == 400
    for fragment in fragments:
        assert fragment in error["message"], error["message"]
    return error["message"]


def _jobs_count(server, headers):
    r = requests.get(f"{server.runtime_url}/jobs", headers=headers, timeout=30)
    return r.json()["count"]


def _bell_runs(server, headers):
    r = _post(server, headers, [[BELL, None, 100]])
    assert r.status_code == 200, r.text
    job = server.wait_job(server.runtime_url, r.json()["id"], headers, timeout=120)
    assert job["state"]["status"] == "Completed"


def test_oversized_jobs_are_refused_naming_the_limit(server_factory):
    server = server_factory.start(workers=1)
    headers = {"Authorization": f"apikey {server.token}"}

    message = _refused(
        _post(server, headers, [[_wide(30), None, 100]]),
        "params.pubs[0]",
        "30-qubit statevector needs ~16 GiB",
        "per job (--max-job-memory)",
    )
    assert "this server allows" in message

    _refused(
        _post(server, headers, [[BELL, None, 10]] * 3000),
        "params.pubs",
        "3000 PUBs",
        "at most 300",
        "max_experiments",
    )
    assert _jobs_count(server, headers) == 0  # nothing stored
    assert requests.get(f"{server.url}/health", timeout=10).status_code == 200
    _bell_runs(server, headers)
    # 300 PUBs (the backend's max_experiments) are still fine
    assert _post(server, headers, [[BELL, None, 10]] * 300).status_code == 200


def test_max_job_memory_flag_sets_the_limit(server_factory):
    server = server_factory.start(workers=1, args=["--max-job-memory", "1GiB"])
    headers = {"Authorization": f"apikey {server.token}"}

    _refused(
        _post(server, headers, [[_wide(27), None, 100]]),
        "27-qubit statevector needs ~2 GiB",
        "allows 1 GiB per job (--max-job-memory)",
    )
    many_bits = 'OPENQASM 3.0; include "stdgates.inc"; qubit[1] q; bit[100000] c; x q[0]; c[0] = measure q[0];'  # noqa: E501
    _refused(
        _post(server, headers, [[many_bits, None, 2000]]),
        "params.pubs:",
        "samples (shots x classical bits)",
        "allows 1 GiB",
    )
    # 20 active qubits (16 MiB) fit: the job runs and completes
    r = _post(server, headers, [[_wide(20), None, 100]])
    assert r.status_code == 200, r.text
    job = server.wait_job(server.runtime_url, r.json()["id"], headers, timeout=120)
    assert job["state"]["status"] == "Completed"
    assert requests.get(f"{server.url}/health", timeout=10).status_code == 200


def test_a_bad_memory_size_stops_serve_with_a_message(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable, "-m", "qiskit_rest_provider", "serve", "--port", "0",
            "--data-dir", str(tmp_path), "--max-job-memory", "lots",
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2
    assert "memory size" in out.stderr and "'lots'" in out.stderr


def _descendants(pid: int) -> dict[int, int]:
    """``{pid: parent pid}`` of every descendant of ``pid`` (read from /proc)."""
    from pathlib import Path

    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out: dict[int, int] = {}
    todo = [pid]
    while todo:
        parent = todo.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in out:
                out[child] = ppid
                todo.append(child)
    return out


def _slow_circuit():
    from qiskit import QuantumCircuit

    n = 16
    qc = QuantumCircuit(n, n)
    for layer in range(40):
        qc.h(range(n))
        for i in range(n - 1):
            qc.cx(i, i + 1)
        qc.measure(layer % n, layer % n)  # mid-circuit measurements: shot-by-shot simulation
    return qc


def test_a_worker_killed_for_memory_fails_its_job_once(server_factory):
    """The OOM killer's SIGKILL (sent here by the test) fails the job at once: no retry."""
    import os
    import signal
    import time

    from qiskit_rest_provider import ProviderService, SamplerV2
    from qiskit_rest_provider.exceptions import JobFailedError

    server = server_factory.start(workers=1, args=["--max-job-memory", "2GiB"])
    headers = {"Authorization": f"apikey {server.token}"}
    service = ProviderService(
        channel="ibm_quantum_platform",
        url=server.url,
        token=server.token,
        instance=server.instance_crn,
    )
    backend = service.backend("rest_simulator")
    _bell_runs(server, headers)  # the worker is up (not still starting) when it is killed
    job = SamplerV2(mode=backend).run([_slow_circuit()] * 20, shots=100_000)
    deadline = time.monotonic() + 60
    while job.status().name != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let the worker get into the simulation
    tree = _descendants(server.process.pid)
    # the worker: a child of the forkserver (itself a child of the server)
    workers = [p for p, parent in tree.items() if parent != server.process.pid]
    assert workers, tree
    for pid in workers:
        os.kill(pid, signal.SIGKILL)

    with pytest.raises(JobFailedError) as info:
        job.result(timeout=60)
    assert "out of memory" in info.value.reason
    assert "2 GiB per job (--max-job-memory)" in info.value.reason
    state = requests.get(f"{server.runtime_url}/jobs/{job.job_id()}", headers=headers, timeout=30)
    assert state.json()["state"]["reason_code"] == 1502
    logs = requests.get(
        f"{server.runtime_url}/jobs/{job.job_id()}/logs", headers=headers, timeout=30
    ).text
    assert "re-queued" not in logs and logs.count(" running\n") == 1
    # the server lives on: a replacement worker runs the next job
    assert server.alive()
    _bell_runs(server, headers)


def test_aer_memory_errors_become_out_of_memory_reasons(monkeypatch):
    from qiskit import QuantumCircuit

    from qiskit_rest_provider.server.backends.catalog import BackendCatalog
    from qiskit_rest_provider.server.execution import runner
    from qiskit_rest_provider.server.execution.cost import out_of_memory_reason
    from qiskit_rest_provider.server.jobs.admission import prepare_job
    from qiskit_rest_provider.wire import encode_qpy

    sim = BackendCatalog.load(None).get("rest_simulator")
    qc = QuantumCircuit(22)
    qc.h(range(22))
    qc.t(range(22))
    qc.measure_all()
    monkeypatch.setenv(runner.AER_MAX_MEMORY_ENV, "1024")
    prepared = prepare_job("sampler", {"pubs": [[encode_qpy(qc), None, 10]]}, sim)
    monkeypatch.setenv(runner.AER_MAX_MEMORY_ENV, "16")  # Aer now stops at 16 MiB
    with pytest.raises(RuntimeError) as info:
        runner.execute_job(prepared, sim)
    assert str(info.value) == (
        "simulation failed: out of memory: the simulation needs ~64 MiB; this server allows "
        "16 MiB per job (--max-job-memory)"
    )
    overflow = RuntimeError("ERROR: Required memory: 18446744073709551615M, max memory: 4096M")
    assert "needs more than 16 EiB" in out_of_memory_reason(overflow)
    assert out_of_memory_reason(ValueError("something else")) == "something else"
