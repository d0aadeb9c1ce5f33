"""Cancellation, time limits and crash recovery (kill -9 + restart on the same data dir)."""

from __future__ import annotations

import collections
import concurrent.futures as cf
import os
import shutil
import time

import pytest
import requests
from workloads import slow_qasm

pytest.importorskip("fastapi")

QUICK = 'OPENQASM 3.0; include "stdgates.inc"; qubit[1] q; bit[1] c; x q[0]; c[0] = measure q[0];'


def _post(base, headers, qasm, shots, pubs=None, **extra):
    pubs = pubs or (10 if shots > 10_000 else 1)
    body = {
        "program_id": "sampler",
        "backend": "rest_simulator",
        "params": {"pubs": [[qasm, None, shots]] * pubs, "version": 2},
    }
    body.update(extra)
    r = requests.post(f"{base}/jobs", headers=headers, json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["id"]


def _state(base, headers, job_id):
    return requests.get(f"{base}/jobs/{job_id}", headers=headers, timeout=30).json()["state"]


def _wait_state(base, headers, job_id, wanted, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = _state(base, headers, job_id)
        if state["status"] == wanted:
            return state
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {wanted}: {state}")


def test_cancel_queued_and_running_and_time_limit(server_factory):
    server = server_factory.start(workers=1, args=["--cancel-grace", "1"])
    base, headers = server.runtime_url, {"Authorization": f"apikey {server.token}"}
    slow = slow_qasm()
    running = _post(base, headers, slow, 100_000)
    _wait_state(base, headers, running, "Running")
    queued = _post(base, headers, QUICK, 10)
    assert _state(base, headers, queued)["status"] == "Queued"

    assert (
        requests.post(f"{base}/jobs/{queued}/cancel", headers=headers, timeout=30).status_code
        == 204
    )
    assert _state(base, headers, queued)["status"] == "Cancelled"
    assert (
        requests.post(f"{base}/jobs/{running}/cancel", headers=headers, timeout=30).status_code
        == 204
    )
    assert _state(base, headers, running)["status"] == "Cancelled"
    assert (
        requests.post(f"{base}/jobs/{running}/cancel", headers=headers, timeout=30).status_code
        == 409
    )
    results = requests.get(f"{base}/jobs/{queued}/results", headers=headers, timeout=30)
    assert results.status_code == 200 and "cancel" in results.text.lower()

    # the cancelled job's worker is recycled after the grace: new work still runs
    after = _post(base, headers, QUICK, 10)
    assert server.wait_job(base, after, headers, timeout=120)["state"]["status"] == "Completed"

    # max_execution_time (cost): Cancelled with reason_code 1305
    limited = _post(base, headers, slow, 100_000, cost=1)
    state = _wait_state(base, headers, limited, "Cancelled", timeout=120)
    assert state["reason_code"] == 1305 and "maximum execution time" in state["reason"]
    later = _post(base, headers, QUICK, 10)
    assert server.wait_job(base, later, headers, timeout=120)["state"]["status"] == "Completed"

    # long-poll (D6) on a queued→final job returns early, not after the full wait
    t0 = time.monotonic()
    quick = _post(base, headers, QUICK, 10)
    job = requests.get(
        f"{base}/jobs/{quick}", params={"wait": 30}, headers=headers, timeout=60
    ).json()
    assert job["state"]["status"] == "Completed" and time.monotonic() - t0 < 25
    assert requests.delete(f"{base}/jobs/{quick}", headers=headers, timeout=30).status_code == 204


def test_pending_job_cannot_be_deleted_and_has_no_results(server_factory):
    server = server_factory.start(workers=1, args=["--cancel-grace", "1"])
    base, headers = server.runtime_url, {"Authorization": f"apikey {server.token}"}
    running = _post(base, headers, slow_qasm(), 100_000)
    _wait_state(base, headers, running, "Running")
    assert requests.delete(f"{base}/jobs/{running}", headers=headers, timeout=30).status_code == 409
    assert (
        requests.get(f"{base}/jobs/{running}/results", headers=headers, timeout=30).status_code
        == 409
    )
    # DELETE sessions/{id}/close cancels the session's queued jobs
    session = requests.post(
        f"{base}/sessions",
        headers=headers,
        timeout=30,
        json={"mode": "batch", "backend": "rest_simulator"},
    ).json()
    queued = _post(base, headers, QUICK, 10, session_id=session["id"])
    r = requests.delete(f"{base}/sessions/{session['id']}/close", headers=headers, timeout=30)
    assert r.status_code == 204
    assert _state(base, headers, queued)["status"] == "Cancelled"
    # a session past its max_ttl does not start its queued jobs
    short = requests.post(
        f"{base}/sessions",
        headers=headers,
        timeout=30,
        json={"mode": "dedicated", "backend": "rest_simulator", "max_ttl": 1},
    ).json()
    stale = _post(base, headers, QUICK, 10, session_id=short["id"])
    time.sleep(1.2)
    requests.post(f"{base}/jobs/{running}/cancel", headers=headers, timeout=30)
    state = _wait_state(base, headers, stale, "Cancelled", timeout=60)
    assert "max_ttl" in state["reason"]
    details = requests.get(f"{base}/sessions/{short['id']}", headers=headers, timeout=30).json()
    assert details["state"] == "closed"
    assert server_factory.stop(server) == 0  # SIGTERM: clean stop


def test_kill_9_and_restart_completes_every_job_once(server_factory):
    server = server_factory.start(workers=2)
    base, headers = server.runtime_url, {"Authorization": f"apikey {server.token}"}
    medium = slow_qasm(n=10, layers=10)
    with cf.ThreadPoolExecutor(4) as pool:
        ids = list(
            pool.map(
                lambda i: _post(
                    base, headers, medium if i % 3 == 0 else QUICK, 2000 if i % 3 == 0 else 100
                ),
                range(24),
            )
        )
    states = collections.Counter(_state(base, headers, j)["status"] for j in ids)
    server_factory.kill(server)
    assert not server.alive()

    restarted = server_factory.restart(server)
    assert restarted.url == server.url  # same port: waiting clients can retry through it
    base = restarted.runtime_url
    final = {j: restarted.wait_job(base, j, headers, timeout=300) for j in ids}
    assert all(job["state"]["status"] == "Completed" for job in final.values()), final
    listing = requests.get(
        f"{base}/jobs", headers=headers, params={"limit": 1000}, timeout=30
    ).json()
    assert listing["count"] == len(ids) == len({j["id"] for j in listing["jobs"]})
    for job_id in ids:
        r = requests.get(f"{base}/jobs/{job_id}/results", headers=headers, timeout=30)
        assert r.status_code == 200 and r.json()["results"]
    assert states["Queued"] + states["Running"] > 0, states  # the kill hit pending work


def test_failed_job_reports_reason_and_results_text(server_factory, tmp_path):
    """A queued job whose backend disappears across a restart fails with a reason; its
    ``results`` answer 200 with the error text (protocol §5.4). Also loads a fake-provider
    snapshot through ``--backends-dir``."""
    runtime = pytest.importorskip("qiskit_ibm_runtime")
    snapshot = os.path.join(
        os.path.dirname(runtime.__file__), "fake_provider", "backends", "manila"
    )
    backends_dir = tmp_path / "backends"
    backends_dir.mkdir()
    for name in ("conf_manila.json", "props_manila.json"):
        shutil.copy(os.path.join(snapshot, name), backends_dir / name)
    server = server_factory.start(workers=1, args=["--backends-dir", str(backends_dir)])
    base, headers = server.runtime_url, {"Authorization": f"apikey {server.token}"}
    names = requests.get(f"{base}/backends", headers=headers, timeout=30).json()["devices"]
    name = next(n for n in names if "manila" in n)
    blocker = _post(base, headers, slow_qasm(), 100_000)
    _wait_state(base, headers, blocker, "Running")
    qasm = 'OPENQASM 3.0; include "stdgates.inc"; bit[1] c; x $0; c[0] = measure $0;'
    body = {
        "program_id": "sampler",
        "backend": name,
        "params": {"pubs": [[qasm, None, 100]], "version": 2},
    }
    r = requests.post(f"{base}/jobs", headers=headers, json=body, timeout=60)
    assert r.status_code == 200, r.text
    doomed = r.json()["id"]
    server_factory.kill(server)

    restarted = server_factory.restart(server, workers=1, args=["--cancel-grace", "1"])
    base = restarted.runtime_url
    requests.post(f"{base}/jobs/{blocker}/cancel", headers=headers, timeout=30)
    job = restarted.wait_job(base, doomed, headers, timeout=120)
    assert job["state"]["status"] == "Failed"
    assert name in job["state"]["reason"] and job["state"]["reason_code"]
    text = requests.get(f"{base}/jobs/{doomed}/results", headers=headers, timeout=30)
    assert text.status_code == 200 and name in text.text
