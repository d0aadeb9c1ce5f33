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
    """``n`` active qubits in superposition with T gates: no stabilizer shortcut."""
    body = " ".join(f"h q[{i}]; t q[{i}];" for i in range(n))
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
