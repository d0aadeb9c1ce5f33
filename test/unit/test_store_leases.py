"""Unit tests of job claims and leases (several replicas on one database), SQLite and PostgreSQL.

A claim is exactly-once even when many threads of two stores race for the same jobs; an outcome
is recorded only while the claim is still the recorder's; leases renew, expire and return their
jobs to the queue; a store on PostgreSQL announces each change with ``NOTIFY``, and the listener
wakes the job's waiters. PostgreSQL cases skip, saying why, when no server answers.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

pytest.importorskip("sqlalchemy")

from conftest import PostgresSchemas, postgres_available  # noqa: E402

from qiskit_rest_provider.server.config import ServerConfig, default_replica_id  # noqa: E402
from qiskit_rest_provider.server.jobs.models import Job  # noqa: E402
from qiskit_rest_provider.server.jobs.notify import JobChangeListener  # noqa: E402
from qiskit_rest_provider.server.jobs.store import Store, new_id  # noqa: E402
from qiskit_rest_provider.server.jobs.watchers import JobWatchers  # noqa: E402

PG_URL = os.environ.get("QRP_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", "postgresql"])
def stores(request, tmp_path):
    """Two stores (two replicas) on one database."""
    schemas = None
    url = None
    if request.param == "postgresql":
        reason = postgres_available(PG_URL)
        if reason:
            pytest.skip(reason)
        schemas = PostgresSchemas(PG_URL)
        url = schemas.new_url()
    made = []
    for name in ("a", "b"):
        config = ServerConfig(data_dir=tmp_path / name, db_url=url or None)
        if url is None:  # both on the first replica's SQLite file
            config.db_url = f"sqlite:///{tmp_path / 'a' / 'store.sqlite3'}"
        config.prepare_data_dir()
        made.append(Store(config))
    yield made
    for store in made:
        store.close()
    if schemas is not None:
        schemas.drop_all()


def _queued(store: Store, n: int) -> list[str]:
    instance = store.ensure_instance("a/b/c", "crn:a-b-c")
    ids = []
    for _ in range(n):
        job = Job(
            id=new_id(),
            instance_id=instance.id,
            user_id="u",
            backend="rest_simulator",
            program_id="sampler",
            params=b"{}",
            state="Queued",
            tags="[]",
            created=time.time(),
            logs="",
            usage_seconds=0.0,
            quantum_seconds=0.0,
            attempts=0,
        )
        store.create_job(job)
        ids.append(job.id)
    return ids


def test_racing_claims_of_two_replicas_hand_each_job_out_once(stores):
    a, b = stores
    ids = _queued(a, 40)
    won: dict[str, list[str]] = {i: [] for i in ids}
    lock = threading.Lock()

    def claimer(store: Store, owner: str) -> None:
        for job_id in ids:
            if store.claim(job_id, owner, 30):
                with lock:
                    won[job_id].append(owner)

    threads = [
        threading.Thread(target=claimer, args=(s, f"{name}{k}"))
        for s, name in ((a, "a"), (b, "b"))
        for k in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(len(owners) == 1 for owners in won.values()), won
    for job_id, (owner,) in won.items():
        row = b.get_job(job_id)
        assert row.state == "Running" and row.claimed_by == owner
        assert row.lease_expires_at > time.time() + 20


def test_only_the_claiming_replica_records_the_outcome(stores):
    a, b = stores
    (job_id,) = _queued(a, 1)
    assert a.claim(job_id, "replica-a", 30)
    assert not b.claim(job_id, "replica-b", 30)
    assert not b.transition(job_id, ("Running",), "Completed", owner="replica-b")
    assert a.transition(job_id, ("Running",), "Completed", owner="replica-a", log="completed")
    row = b.get_job(job_id)
    assert row.state == "Completed" and row.lease_expires_at is None


def test_leases_renew_expire_and_requeue_once(stores):
    a, b = stores
    mine, other = _queued(a, 2)
    assert a.claim(mine, "replica-a", 1)
    assert b.claim(other, "replica-b", 1)
    assert a.renew_leases("replica-a", [mine, other], 30) == {mine}  # never someone else's
    time.sleep(1.1)
    assert b.requeue_expired() == 1  # other's lease ran out; mine was renewed
    assert a.get_job(other).state == "Queued" and a.get_job(other).claimed_by is None
    assert "job re-queued" in a.get_job(other).logs
    assert a.requeue_expired() == 0
    # replica b lost its claim: it may not record an outcome any more, nor renew
    assert not b.transition(other, ("Running",), "Completed", owner="replica-b")
    assert b.renew_leases("replica-b", [other], 30) == set()
    # an owner known to be gone is re-queued at once, lease or not
    assert a.running_owners() == {"replica-a"}
    assert b.requeue_expired(["replica-a"]) == 1
    assert b.get_job(mine).state == "Queued"


def test_default_replica_id_names_host_and_process():
    assert default_replica_id().endswith(f"-{os.getpid()}")
    with pytest.raises(ValueError, match="lease_seconds"):
        ServerConfig(data_dir="/tmp/x", lease_seconds=0)
    with pytest.raises(ValueError, match="executor"):
        ServerConfig(data_dir="/tmp/x", executor="spark://x")


def test_a_change_in_one_replica_wakes_waiters_in_the_other(stores):
    a, b = stores
    (job_id,) = _queued(a, 1)
    watchers = JobWatchers()
    # on PostgreSQL NOTIFY must do it well before the (long) fallback; on SQLite the fallback
    fallback = 30.0 if b.can_notify else 0.5
    listener = JobChangeListener(b, watchers, fallback_seconds=fallback)

    async def wait_for_change() -> float:
        watch = watchers.register(job_id)
        listener.start()
        if b.can_notify:
            assert await asyncio.to_thread(listener.listening.wait, 10)
        await asyncio.sleep(0.1)
        started = time.monotonic()
        threading.Timer(0.2, lambda: a.claim(job_id, "replica-a", 30)).start()
        while b.get_job(job_id).state != "Running":  # what a long-poll does: re-read, re-wait
            assert time.monotonic() - started < 20
            await watch.wait(20)
        watchers.unregister(job_id, watch)
        return time.monotonic() - started

    try:
        waited = asyncio.run(wait_for_change())
    finally:
        listener.stop()
    assert waited < 5, waited
    assert b.get_job(job_id).state == "Running"
