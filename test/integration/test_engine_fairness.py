"""Fair share: instances served round-robin, per-instance queue limits, bounded time limits.

User story: instance A fills the only worker and queues 20 more jobs; instance B submits one Bell
job. B's job runs next, not after A's queue drains. A cannot queue more than the server allows,
cannot ask for an absurd ``max_execution_time``, and a job without one gets the server's default
time limit, which a user may raise up to the server's maximum.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime

import pytest
import requests
from workloads import slow_qasm

pytest.importorskip("fastapi")

OTHER = "other/team/project"
QUICK = 'OPENQASM 3.0; include "stdgates.inc"; qubit[1] q; bit[1] c; x q[0]; c[0] = measure q[0];'
BELL = (
    'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] c; h q[0]; cx q[0], q[1]; '
    "c = measure q;"
)


def _submit(base, headers, qasm, shots, pubs=1, **extra):
    body = {
        "program_id": "sampler",
        "backend": "rest_simulator",
        "params": {"pubs": [[qasm, None, shots]] * pubs, "version": 2},
        **extra,
    }
    return requests.post(f"{base}/jobs", headers=headers, json=body, timeout=60)


def _job_id(response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["id"]


def _state(base, headers, job_id):
    return requests.get(f"{base}/jobs/{job_id}", headers=headers, timeout=30).json()["state"]


def _wait_state(base, headers, job_id, wanted, timeout=60.0):
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = _state(base, headers, job_id)
        if state["status"] == wanted:
            return state
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {wanted}: {state}")


def _started(base, headers, job_id) -> float:
    r = requests.get(f"{base}/jobs/{job_id}/metrics", headers=headers, timeout=30)
    running = r.json()["timestamps"]["running"]
    assert running, f"job {job_id} never ran"
    return datetime.fromisoformat(running.replace("Z", "+00:00")).timestamp()


# serial: A's blocker must still hold the only worker (8 s) while A queues 20 jobs and B one; on
# a CPU shared with other tests the submissions can outlast it and B then queues behind A's jobs
@pytest.mark.serial
def test_instance_b_is_served_while_a_has_20_queued(server_factory):
    other_token = "other-" + secrets.token_hex(8)
    server = server_factory.start(
        workers=1,
        extra_tokens={other_token: OTHER},
        args=[
            "--cancel-grace", "1",
            "--default-execution-time", "8",
            "--max-execution-time", "60",
            "--max-queued-per-instance", "20",
        ],
    )  # fmt: skip
    base = server.runtime_url
    a = {"Authorization": f"apikey {server.token}"}
    b = {"Authorization": f"apikey {other_token}"}

    # A's blocker holds the only worker until the default time limit (8 s) cancels it
    blocker = _job_id(_submit(base, a, slow_qasm(), 100_000, pubs=20))
    _wait_state(base, a, blocker, "Running")
    a_jobs = [_job_id(_submit(base, a, QUICK, 10)) for _ in range(20)]

    # the 21st queued job of A is refused, naming the limit and the flag; B is not affected
    refused = _submit(base, a, QUICK, 10)
    assert refused.status_code == 429, refused.text
    error = refused.json()["errors"][0]
    assert error["code"] == "queue_limit_reached"
    assert "20 per instance" in error["message"] and "--max-queued-per-instance" in error["message"]
    assert refused.json()["status_code"] == 429
    b_job = _job_id(_submit(base, b, BELL, 100))

    done_b = server.wait_job(base, b_job, b, timeout=120)
    assert done_b["state"]["status"] == "Completed"
    state = _state(base, a, blocker)
    assert state["status"] == "Cancelled" and state["reason_code"] == 1305
    assert "8 s" in state["reason"]

    for job_id in a_jobs:
        assert server.wait_job(base, job_id, a, timeout=120)["state"]["status"] == "Completed"
    b_started = _started(base, b, b_job)
    a_started = sorted(_started(base, a, j) for j in a_jobs)
    # B waited for at most one of A's queued jobs, not for A's whole queue
    assert sum(t < b_started for t in a_started) <= 1, (b_started, a_started)
    assert b_started < a_started[-1]


def test_execution_time_is_bounded_and_the_default_can_be_raised(server_factory):
    server = server_factory.start(
        workers=1, args=["--cancel-grace", "1", "--default-execution-time", "2",
                         "--max-execution-time", "60"],
    )  # fmt: skip
    base, headers = server.runtime_url, {"Authorization": f"apikey {server.token}"}

    for cost in (1e9, 61):
        r = _submit(base, headers, QUICK, 10, cost=cost)
        assert r.status_code == 400, r.text
        message = r.json()["errors"][0]["message"]
        assert message.startswith("cost:") and "60 s" in message
        assert "--max-execution-time" in message

    # without cost: the server default (2 s); with cost 4: the user's 4 s (raised, <= maximum)
    default = _job_id(_submit(base, headers, slow_qasm(), 100_000, pubs=20))
    state = _wait_state(base, headers, default, "Cancelled", timeout=60)
    assert state["reason_code"] == 1305 and "2 s" in state["reason"]
    raised = _job_id(_submit(base, headers, slow_qasm(), 100_000, pubs=20, cost=4))
    state = _wait_state(base, headers, raised, "Cancelled", timeout=60)
    assert state["reason_code"] == 1305 and "4 s" in state["reason"]
    quick = _job_id(_submit(base, headers, QUICK, 10, cost=60))
    assert server.wait_job(base, quick, headers, timeout=120)["state"]["status"] == "Completed"


def test_queue_heads_put_session_jobs_first_within_each_instance(tmp_path):
    """The store's view the dispatcher serves from: per instance, session jobs, then FIFO."""
    from qiskit_rest_provider.server.config import ServerConfig, instance_crn
    from qiskit_rest_provider.server.jobs.models import Job
    from qiskit_rest_provider.server.jobs.store import Store, new_id

    config = ServerConfig(data_dir=tmp_path)
    config.prepare_data_dir()
    store = Store(config)
    try:
        inst = {h: store.ensure_instance(h, instance_crn(h)).id for h in ("a/b/c", OTHER)}
        ids: dict[str, list[str]] = {h: [] for h in inst}
        for i in range(8):
            hgp = "a/b/c" if i % 4 else OTHER
            job = Job(
                id=new_id(), instance_id=inst[hgp], user_id="u", backend="rest_simulator",
                program_id="sampler", params=b"{}", state="Queued", tags="[]",
                created=time.time(), logs="", usage_seconds=0.0, quantum_seconds=0.0,
                attempts=0, session_id="s1" if i == 6 else None,
            )  # fmt: skip
            store.create_job(job)
            ids[hgp].append(job.id)
        heads = store.queued_heads(2)
        by_instance = {h: [j.id for j in heads if j.instance_id == inst[h]] for h in inst}
        assert by_instance["a/b/c"] == [ids["a/b/c"][4], ids["a/b/c"][0]]  # session job first
        assert by_instance[OTHER] == ids[OTHER][:2]
        assert store.queued_count(inst["a/b/c"]) == 6
        assert store.transition(ids[OTHER][0], ("Queued",), "Running")
        assert not store.transition(ids[OTHER][0], ("Queued",), "Running")  # claimed once
        rest = store.queued_heads(1, exclude=[ids["a/b/c"][4]])
        assert sorted(j.id for j in rest) == sorted([ids["a/b/c"][0], ids[OTHER][1]])
    finally:
        store.close()
