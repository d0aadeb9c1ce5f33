"""Idempotent job creation (D7) under lost, reset, cut-off and late answers (issue 7).

Every test puts the fault-injecting proxy of ``test/faults.py`` between the real client and the
real reference server. The proxy lets the server create the job and then loses the answer in some
way; the client retries with the same ``Idempotency-Key`` and must end up with the job the server
already made: one job (same id), never two. The server side of D7 is also tested directly over
HTTP: repeats, a repeat with another body, concurrent repeats, and keys scoped per instance.
"""

from __future__ import annotations

import concurrent.futures as cf
import uuid

import pytest
import requests
from faults import FaultProxy

from qiskit_rest_provider import ProviderService
from qiskit_rest_provider.client import RetryPolicy

pytest.importorskip("fastapi")

X_MEASURE = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nbit[1] c;\nx $0;\nc[0] = measure $0;\n'
FAST_RETRY = RetryPolicy(max_retries=4, backoff_base=0.05, backoff_max=0.2)


@pytest.fixture
def proxy(reference_server):
    with FaultProxy(reference_server.url) as p:
        yield p


def _service(url: str, server, channel: str = "ibm_quantum_platform", **kw) -> ProviderService:
    instance = server.instance_hgp if channel == "ibm_quantum" else server.instance_crn
    return ProviderService(
        channel=channel, url=url, token=server.token, instance=instance, retry=FAST_RETRY, **kw
    )


def _count(server, tag: str, token: str | None = None) -> int:
    headers = {"Authorization": f"apikey {token or server.token}"}
    r = requests.get(
        f"{server.runtime_url}/jobs", headers=headers, params={"tags": tag}, timeout=30
    )
    r.raise_for_status()
    body = r.json()
    assert body["count"] == len(body["jobs"])
    return body["count"]


def _submit(service: ProviderService, tag: str) -> dict:
    return service.client.create_job(
        program_id="sampler",
        backend="rest_simulator",
        params={"pubs": [[X_MEASURE, None, 8]], "version": 2},
        tags=[tag],
    )


@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    "kind,extra",
    [
        ("drop", {}),
        ("reset", {}),
        ("truncate", {"keep": 0.3}),
        ("delay", {"delay": 6.0}),  # answer arrives after the client's read timeout
    ],
)
@pytest.mark.parametrize("channel", ["ibm_quantum_platform", "ibm_quantum"])
def test_lost_creation_answer_yields_one_job(proxy, reference_server, kind, extra, channel):
    service = _service(proxy.url, reference_server, channel)
    service.client.submit_timeout = 2.5
    tag = f"idem-{kind}-{uuid.uuid4().hex[:8]}"
    fault = proxy.add(kind, method="POST", path=r"/jobs$", **extra)
    job = _submit(service, tag)
    assert fault.hits == 1
    posts = proxy.seen("POST", r"/jobs$")
    assert len(posts) >= 2, [p.fault for p in posts]  # the original and its retries
    keys = {p.headers.get("Idempotency-Key") for p in posts}
    assert len(keys) == 1 and None not in keys
    assert _count(reference_server, tag) == 1
    listed = service.client.jobs(job_tags=[tag])
    assert [j["id"] for j in listed["jobs"]] == [job["id"]]
    final = reference_server.wait_job(
        reference_server.runtime_url,
        job["id"],
        {"Authorization": f"apikey {reference_server.token}"},
    )
    assert final["state"]["status"] == "Completed"


@pytest.mark.timeout(180)
def test_sampler_run_with_lost_answers_and_gateway_errors_runs_once(proxy, reference_server):
    """End to end: ``SamplerV2.run`` through a lost answer and a 502/503 burst -> one job."""
    from qiskit import QuantumCircuit

    from qiskit_rest_provider.primitives import SamplerV2

    service = _service(proxy.url, reference_server)
    backend = service.backend("rest_simulator")
    tag = f"idem-sampler-{uuid.uuid4().hex[:8]}"
    qc = QuantumCircuit(2, 2)
    qc.x(0)
    qc.measure([0, 1], [0, 1])
    sampler = SamplerV2(mode=backend, options={"environment": {"job_tags": [tag]}})
    proxy.add("drop", method="POST", path=r"/jobs$")
    proxy.add("status", method="POST", path=r"/jobs$", status=502, body=b"bad gateway")
    proxy.add("status", method="POST", path=r"/jobs$", status=503, headers={"Retry-After": "0"})
    job = sampler.run([qc], shots=50)
    counts = job.result(timeout=120)[0].data.c.get_counts()
    assert counts == {"01": 50}
    assert len(proxy.seen("POST", r"/jobs$")) == 4
    assert _count(reference_server, tag) == 1


def _post(server, key: str | None, tag: str, token: str | None = None, shots: int = 8):
    headers = {"Authorization": f"apikey {token or server.token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    body = {
        "program_id": "sampler",
        "backend": "rest_simulator",
        "params": {"pubs": [[X_MEASURE, None, shots]], "version": 2},
        "tags": [tag],
    }
    return requests.post(f"{server.runtime_url}/jobs", headers=headers, json=body, timeout=60)


def test_repeat_with_same_key_returns_first_job(reference_server):
    tag = f"idem-http-{uuid.uuid4().hex[:8]}"
    key = str(uuid.uuid4())
    first = _post(reference_server, key, tag)
    assert first.status_code == 200, first.text
    again = _post(reference_server, key, tag)
    other_body = _post(reference_server, key, tag, shots=99)  # D7: the key wins over the body
    assert again.status_code == other_body.status_code == 200
    assert first.json()["id"] == again.json()["id"] == other_body.json()["id"]
    assert _count(reference_server, tag) == 1
    fresh = _post(reference_server, str(uuid.uuid4()), tag)
    no_key = _post(reference_server, None, tag)
    assert len({first.json()["id"], fresh.json()["id"], no_key.json()["id"]}) == 3
    assert _count(reference_server, tag) == 3


def test_concurrent_repeats_create_one_job(reference_server):
    """Eight racing POSTs with one key (a client retrying while the first is in flight)."""
    tag = f"idem-race-{uuid.uuid4().hex[:8]}"
    key = str(uuid.uuid4())
    with cf.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: _post(reference_server, key, tag), range(8)))
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    assert _count(reference_server, tag) == 1


def test_key_is_scoped_to_the_instance(reference_server):
    """The same key from another instance makes that instance its own job (no leak, no clash)."""
    tag = f"idem-scope-{uuid.uuid4().hex[:8]}"
    key = str(uuid.uuid4())
    mine = _post(reference_server, key, tag)
    theirs = _post(reference_server, key, tag, token=reference_server.other_token)
    assert mine.status_code == theirs.status_code == 200, theirs.text
    assert mine.json()["id"] != theirs.json()["id"]
    assert _count(reference_server, tag) == 1
    assert _count(reference_server, tag, token=reference_server.other_token) == 1


@pytest.mark.parametrize("key", ["", "k" * 201])
def test_bad_idempotency_key_is_rejected(reference_server, key):
    tag = f"idem-bad-{uuid.uuid4().hex[:8]}"
    r = _post(reference_server, key, tag)
    assert r.status_code == 400 and "Idempotency-Key" in r.json()["errors"][0]["message"]
    assert _count(reference_server, tag) == 0


def test_key_is_remembered_for_24_hours(reference_server):
    """D7's window: a repeat 23 h later still answers the first job; 25 h later it is a new job.

    The job's creation time is moved back in the SQLite store (time travel without waiting).
    """
    if reference_server.db_url is not None:
        pytest.skip("moves a job's creation time in the SQLite file of the data dir")
    import sqlite3
    import time

    tag = f"idem-ttl-{uuid.uuid4().hex[:8]}"
    key = str(uuid.uuid4())
    first = _post(reference_server, key, tag).json()["id"]

    def age(hours: float) -> None:
        db = sqlite3.connect(reference_server.data_dir / "store.sqlite3", timeout=30)
        with db:
            db.execute(
                "UPDATE jobs SET created = ? WHERE id = ?", (time.time() - hours * 3600, first)
            )
        db.close()

    age(23)
    assert _post(reference_server, key, tag).json()["id"] == first
    assert _count(reference_server, tag) == 1
    age(25)
    later = _post(reference_server, key, tag)
    assert later.status_code == 200 and later.json()["id"] != first
    assert _count(reference_server, tag) == 2
