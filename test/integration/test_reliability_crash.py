"""Crash safety end to end: ``kill -9`` of the server under load, restart on the same port.

Several client threads submit jobs with ``SamplerV2`` and wait on them with ``job.result()`` while
the server is killed hard (server and workers, SIGKILL) and restarted on the same data dir and the
same port. Submissions caught by the crash are retried by the client with their
``Idempotency-Key`` (the key must survive the crash), ``result()`` calls in flight retry through the
outage, and every job must end Completed exactly once: as many jobs as were submitted, each with
its full result, none duplicated, none lost.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
import uuid

import pytest
import requests
from qiskit import QuantumCircuit

from qiskit_rest_provider import ProviderService
from qiskit_rest_provider.client import RetryPolicy
from qiskit_rest_provider.primitives import SamplerV2

pytest.importorskip("fastapi")

N_THREADS = 5
PER_THREAD = 10  # 50 jobs
MEDIUM_EVERY = 5
SHOTS_QUICK = 100
SHOTS_MEDIUM = 3000
# generous enough to ride out a restart (a few seconds) with connection-refused retries
BELL_QASM = (
    'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] c; h q[0]; cx q[0], q[1]; '
    "c[0] = measure q[0]; c[1] = measure q[1];"
)
OUTAGE_RETRY = RetryPolicy(max_retries=12, backoff_base=0.2, backoff_max=2.0, max_elapsed=90.0)


def _bell() -> QuantumCircuit:
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure([0, 1], [0, 1])
    return qc


def _medium(n: int = 14, layers: int = 16) -> QuantumCircuit:
    """Mid-circuit measurements force shot-by-shot simulation: a job that takes a while."""
    qc = QuantumCircuit(n, n)
    for layer in range(layers):
        qc.h(range(n))
        for i in range(n - 1):
            qc.cx(i, i + 1)
        qc.measure(layer % n, layer % n)
    qc.measure(range(n), range(n))
    return qc


def _pending(server, headers) -> int:
    r = requests.get(
        f"{server.runtime_url}/jobs",
        headers=headers,
        params={"pending": "true", "limit": 1},
        timeout=10,
    )
    return r.json()["count"] if r.status_code == 200 else -1


def _post_with_key(server, headers, key: str, tag: str) -> str:
    body = {
        "program_id": "sampler",
        "backend": "rest_simulator",
        "params": {"pubs": [[BELL_QASM, None, SHOTS_QUICK]], "version": 2},
        "tags": [tag],
    }
    r = requests.post(
        f"{server.runtime_url}/jobs",
        headers={**headers, "Idempotency-Key": key},
        json=body,
        timeout=60,
    )
    assert r.status_code == 200, r.text
    return r.json()["id"]


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_kill_9_under_load_every_job_completes_exactly_once(server_factory):
    server = server_factory.start(workers=2)
    port = int(server.url.rsplit(":", 1)[1])
    headers = {"Authorization": f"apikey {server.token}"}
    tag = f"crash-{uuid.uuid4().hex[:8]}"
    service = ProviderService(
        url=server.url, token=server.token, instance=server.instance_crn, retry=OUTAGE_RETRY
    )
    backend = service.backend("rest_simulator")
    bell, medium = _bell(), _medium()

    submitted: list[tuple[str, int]] = []  # (job id, shots)
    lock = threading.Lock()
    results_pool = cf.ThreadPoolExecutor(16)
    result_futures: dict[str, cf.Future] = {}

    def submitter(index: int) -> None:
        sampler = SamplerV2(mode=backend, options={"environment": {"job_tags": [tag]}})
        for i in range(PER_THREAD):
            is_medium = (index * PER_THREAD + i) % MEDIUM_EVERY == 0
            shots = SHOTS_MEDIUM if is_medium else SHOTS_QUICK
            job = sampler.run([medium if is_medium else bell], shots=shots)
            with lock:
                submitted.append((job.job_id(), shots))
                result_futures[job.job_id()] = results_pool.submit(job.result, timeout=300)
            time.sleep(0.02)

    with cf.ThreadPoolExecutor(N_THREADS) as pool:
        submitters = [pool.submit(submitter, i) for i in range(N_THREADS)]
        # kill once a good part is in, while submissions, queued and running jobs are in flight
        deadline = time.monotonic() + 120
        while len(submitted) < (N_THREADS * PER_THREAD) // 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        pending_at_kill = _pending(server, headers)
        submitted_at_kill = len(submitted)
        key = str(uuid.uuid4())  # a creation whose answer the client will "retry" after the crash
        first = _post_with_key(server, headers, key, tag)
        server_factory.kill(server)
        assert not server.alive()
        time.sleep(1.0)  # a real outage: submissions and polls now fail to connect
        restarted = server_factory.restart(server, args=["--port", str(port)])
        assert restarted.url == server.url
        for f in submitters:
            f.result(timeout=300)  # every submission went through, retrying as needed
        # the Idempotency-Key survived the crash: a repeat answers the job made before it
        assert _post_with_key(restarted, headers, key, tag) == first

    ids = [job_id for job_id, _ in submitted]
    assert len(ids) == N_THREADS * PER_THREAD == len(set(ids))
    submitted.append((first, SHOTS_QUICK))
    ids.append(first)
    assert 0 < submitted_at_kill < len(ids)
    assert pending_at_kill > 0, "the kill should hit queued/running work"

    shots_of = dict(submitted)
    for job_id, future in result_futures.items():
        result = future.result(timeout=300)  # in-flight result() calls survived the restart
        counts = result[0].data.c.get_counts()
        assert sum(counts.values()) == shots_of[job_id]
        if shots_of[job_id] == SHOTS_QUICK:
            assert set(counts) <= {"00", "11"}
    results_pool.shutdown()

    listing = requests.get(
        f"{restarted.runtime_url}/jobs",
        headers=headers,
        params={"tags": tag, "limit": 1000},
        timeout=30,
    ).json()
    assert listing["count"] == len(ids), "a job was lost or duplicated"
    assert sorted(j["id"] for j in listing["jobs"]) == sorted(ids)
    assert all(j["status"] == "Completed" for j in listing["jobs"]), listing["jobs"]
    everything = requests.get(
        f"{restarted.runtime_url}/jobs", headers=headers, params={"limit": 1000}, timeout=30
    ).json()
    assert everything["count"] == len(ids)  # nothing extra created by retried submissions
    for job_id in ids[:: len(ids) // 6]:  # results stay served (a sample of them)
        r = requests.get(f"{restarted.runtime_url}/jobs/{job_id}/results", headers=headers)
        assert r.status_code == 200 and r.json()
