"""Unit tests of the server store: guarded transitions, idempotency, listing, crash recovery."""

from __future__ import annotations

import time

import orjson
import pytest

pytest.importorskip("sqlalchemy")

from qiskit_rest_provider.server.config import ServerConfig, instance_crn, normalize_db_url
from qiskit_rest_provider.server.jobs.models import Job
from qiskit_rest_provider.server.jobs.store import JobFilters, Store, new_id


@pytest.fixture
def store(tmp_path):
    config = ServerConfig(data_dir=tmp_path, result_inline_bytes=100)
    config.prepare_data_dir()
    s = Store(config)
    yield s
    s.close()


def _job(instance_id: str, **kw) -> Job:
    values = dict(
        id=new_id(),
        instance_id=instance_id,
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
    values.update(kw)
    return Job(**values)


def test_ids_are_unique_and_sortable():
    ids = [new_id() for _ in range(200)]
    assert len(set(ids)) == 200
    assert all(len(i) == 20 and i.isalnum() and i.islower() for i in ids if not i.isdigit())


def test_crn_and_db_url_helpers():
    assert instance_crn("a/b/c") == "crn:v1:local:public:quantum-computing:local:a/a:b-c::"
    assert normalize_db_url("postgresql://root@h/db") == "postgresql+psycopg://root@h/db"
    assert normalize_db_url("sqlite:///x") == "sqlite:///x"
    with pytest.raises(ValueError, match="hub/group/project"):
        ServerConfig(data_dir="/tmp/x", instance="nope")


def test_idempotency_key_returns_first_job(store):
    inst = store.ensure_instance("a/b/c", instance_crn("a/b/c"))
    first, created = store.create_job(_job(inst.id, idempotency_key="k1"))
    again, created2 = store.create_job(_job(inst.id, idempotency_key="k1"))
    assert created and not created2
    assert again.id == first.id
    other = store.ensure_instance("x/y/z", instance_crn("x/y/z"))
    third, created3 = store.create_job(_job(other.id, idempotency_key="k1"))
    assert created3 and third.id != first.id  # keys are per instance
    assert store.list_jobs(JobFilters(instance_id=inst.id))[1] == 1


def test_transitions_are_guarded(store):
    inst = store.ensure_instance("a/b/c", instance_crn("a/b/c"))
    job, _ = store.create_job(_job(inst.id))
    assert store.transition(job.id, ("Queued",), "Running", log="running")
    assert not store.transition(job.id, ("Queued",), "Cancelled")  # no longer queued
    assert store.transition(job.id, ("Running",), "Cancelled", reason="user")
    assert not store.transition(job.id, ("Running",), "Completed")  # never two final states
    row = store.get_job(job.id)
    assert row.state == "Cancelled" and row.finished_at and row.running_at
    assert "running" in row.logs
    assert store.get_job(job.id, "another-instance") is None


def test_requeue_running_after_crash(store):
    inst = store.ensure_instance("a/b/c", instance_crn("a/b/c"))
    jobs = [store.create_job(_job(inst.id))[0] for _ in range(3)]
    store.transition(jobs[0].id, ("Queued",), "Running")
    store.transition(jobs[1].id, ("Queued",), "Running")
    store.transition(jobs[1].id, ("Running",), "Completed")
    assert store.requeue_running() == 1
    assert [r.id for r in store.queued_jobs(10)] == [jobs[0].id, jobs[2].id]  # FIFO order
    assert "re-queued" in store.get_job(jobs[0].id).logs


def test_list_filters_and_exact_count(store):
    inst = store.ensure_instance("a/b/c", instance_crn("a/b/c"))
    t0 = time.time()
    for i in range(7):
        store.create_job(
            _job(
                inst.id,
                program_id="sampler" if i % 2 else "estimator",
                tags=orjson.dumps(["even" if i % 2 == 0 else "odd", "all"]).decode(),
                created=t0 + i,
                backend="rest_line_5q" if i < 3 else "rest_simulator",
            )
        )
    page, count = store.list_jobs(JobFilters(instance_id=inst.id, limit=2, offset=2))
    assert count == 7 and len(page) == 2
    assert page[0].created > page[1].created  # newest first
    _, count = store.list_jobs(JobFilters(instance_id=inst.id, tags=["odd", "all"]))
    assert count == 3
    _, count = store.list_jobs(JobFilters(instance_id=inst.id, program="estimator"))
    assert count == 4
    _, count = store.list_jobs(JobFilters(instance_id=inst.id, backend="rest_line_5q"))
    assert count == 3
    _, count = store.list_jobs(JobFilters(instance_id=inst.id, created_after=t0 + 5))
    assert count == 2
    asc, _ = store.list_jobs(JobFilters(instance_id=inst.id, ascending=True, limit=1))
    assert asc[0].created == t0
    _, count = store.list_jobs(JobFilters(instance_id=inst.id, pending=False))
    assert count == 0


def test_large_results_go_to_files(store):
    inst = store.ensure_instance("a/b/c", instance_crn("a/b/c"))
    job, _ = store.create_job(_job(inst.id))
    store.transition(job.id, ("Queued",), "Running")
    body = b"x" * 1000
    values = store.save_result(job.id, body)
    assert values["result"] is None and values["result_file"]
    store.transition(job.id, ("Running",), "Completed", **values)
    row = store.get_job(job.id, with_result=True)
    assert store.read_result(row) == body
    assert store.delete_job(job.id)
    assert store.get_job(job.id) is None


def test_expired_idempotency_key_can_be_reused(tmp_path):
    config = ServerConfig(data_dir=tmp_path, idempotency_ttl=10)
    config.prepare_data_dir()
    store = Store(config)
    try:
        inst = store.ensure_instance("a/b/c", instance_crn("a/b/c"))
        old, _ = store.create_job(_job(inst.id, idempotency_key="k", created=time.time() - 60))
        new, created = store.create_job(_job(inst.id, idempotency_key="k"))
        assert created and new.id != old.id
        assert store.job_by_key(inst.id, "k").id == new.id
    finally:
        store.close()
