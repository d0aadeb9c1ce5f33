"""Transpile tasks in the job store (migration 0004): guarded transitions, leases, expiry.

SQLite and PostgreSQL (skipped, saying why, when no server answers).

The dispatcher relies on these: a task is claimed once, an outcome is recorded once and only by
the replica holding the claim, a stopped server's STARTED tasks go back to PENDING, and finished
tasks expire.
"""

from __future__ import annotations

import os
import time

import orjson
import pytest

pytest.importorskip("sqlalchemy")

from conftest import PostgresSchemas, postgres_available  # noqa: E402

from qiskit_rest_provider.server.config import ServerConfig  # noqa: E402
from qiskit_rest_provider.server.jobs import transpile_store as ts  # noqa: E402
from qiskit_rest_provider.server.jobs.models import TranspileTaskRow  # noqa: E402
from qiskit_rest_provider.server.jobs.store import Store, new_id  # noqa: E402

PG_URL = os.environ.get("QRP_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", "postgresql"])
def tasks(request, tmp_path):
    schemas = None
    url = None
    if request.param == "postgresql":
        reason = postgres_available(PG_URL)
        if reason:
            pytest.skip(reason)
        schemas = PostgresSchemas(PG_URL)
        url = schemas.new_url()
    config = ServerConfig(data_dir=tmp_path, db_url=url)
    config.prepare_data_dir()
    store = Store(config)
    yield ts.TranspileStore(store), store
    store.close()
    if schemas is not None:
        schemas.drop_all()


def _add(tasks: ts.TranspileStore, instance_id: str, limit: float = 5.0) -> str:
    row = TranspileTaskRow(
        id=new_id(),
        instance_id=instance_id,
        state=ts.PENDING,
        backend="rest_line_5q",
        request=orjson.dumps({"backend": "rest_line_5q", "optimization_level": 1}),
        warnings="[]",
        num_circuits=1,
        time_limit=limit,
        created=time.time(),
        attempts=0,
    )
    tasks.add(row)
    return row.id


def test_claim_once_record_once_and_only_by_the_holder(tasks):
    store_tasks, store = tasks
    a = store.ensure_instance("h/g/a", "crn:a").id
    task_id = _add(store_tasks, a)
    assert store_tasks.request(task_id) == {"backend": "rest_line_5q", "optimization_level": 1}
    assert store_tasks.claim(task_id, "r1", 30.0)
    assert not store_tasks.claim(task_id, "r2", 30.0)  # handed out once
    assert not store_tasks.transition(task_id, (ts.STARTED,), ts.SUCCESS, owner="r2")
    assert store_tasks.transition(task_id, (ts.STARTED,), ts.CANCELLED, result=b"by the user")
    assert not store_tasks.transition(task_id, (ts.STARTED,), ts.SUCCESS, owner="r1")  # once
    row = store_tasks.get(task_id, a)
    assert row is not None and row.state == ts.CANCELLED and row.finished_at is not None
    assert store_tasks.get(task_id, "another-instance") is None  # private to its instance


def test_heads_per_instance_oldest_first_and_unfinished_counts(tasks):
    store_tasks, store = tasks
    a = store.ensure_instance("h/g/a", "crn:a").id
    b = store.ensure_instance("h/g/b", "crn:b").id
    ids_a = [_add(store_tasks, a) for _ in range(3)]
    ids_b = [_add(store_tasks, b, limit=7.0)]
    heads = store_tasks.queued_heads(2, exclude=[ids_a[0]])
    assert [(h.instance_id, h.id) for h in heads] == [(a, ids_a[1]), (a, ids_a[2]), (b, ids_b[0])]
    assert all(isinstance(h, ts.QueuedTranspileTask) for h in heads)
    assert heads[2].time_limit == 7.0 and heads[2].program_id == ts.PROGRAM_ID
    assert store_tasks.unfinished_count(a) == 3
    store_tasks.claim(ids_a[0], "r1", 30.0)
    assert store_tasks.unfinished_count(a) == 3  # STARTED still counts
    store_tasks.transition(ids_a[0], (ts.STARTED,), ts.FAILURE, owner="r1", result=b"x")
    assert store_tasks.unfinished_count(a) == 2


def test_started_tasks_of_a_gone_replica_or_an_expired_lease_are_requeued(tasks):
    store_tasks, store = tasks
    a = store.ensure_instance("h/g/a", "crn:a").id
    gone, live, expired = (_add(store_tasks, a) for _ in range(3))
    store_tasks.claim(gone, "old-process", 300.0)
    store_tasks.claim(live, "alive", 300.0)
    store_tasks.claim(expired, "hung", 0.01)
    time.sleep(0.05)
    assert store_tasks.running_owners() == {"old-process", "alive", "hung"}
    assert store_tasks.renew_leases("alive", [live, gone], 300.0) == {live}
    assert store_tasks.requeue_expired(["old-process"]) == 2
    assert {store_tasks.state(t) for t in (gone, expired)} == {ts.PENDING}
    assert store_tasks.state(live) == ts.STARTED
    row = store_tasks.get(gone)
    assert row is not None and row.claimed_by is None and row.started_at is None


def test_finished_tasks_expire(tasks):
    store_tasks, store = tasks
    a = store.ensure_instance("h/g/a", "crn:a").id
    done, waiting = _add(store_tasks, a), _add(store_tasks, a)
    store_tasks.transition(done, (ts.PENDING,), ts.CANCELLED, finished_at=time.time() - 7200)
    assert store_tasks.forget_finished(time.time() - 3600) == 1
    assert store_tasks.get(done) is None and store_tasks.get(waiting) is not None
