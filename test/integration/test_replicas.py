"""Several ``serve`` replicas on one PostgreSQL database and one Dask cluster.

Real parts only: the PostgreSQL server at ``QRP_TEST_POSTGRES_URL`` (default
``127.0.0.1:5432/test``; each test gets a fresh schema, dropped afterwards), a
``distributed.LocalCluster`` and ``serve`` subprocesses. What must hold:

* 200 jobs from 4 clients spread over two replicas each complete exactly once (one claim that
  ends Completed, one "completed" log line), and both replicas did part of the work;
* SIGKILL of one replica under load: its claimed jobs are re-queued once their lease expires
  (``--lease-seconds 2``) and every job still completes exactly once; submissions caught by the
  kill are retried on the other replica with the same ``Idempotency-Key`` (keys live in the
  database, so the retry answers the job the dead replica may already have stored);
* a long-poll on replica A wakes when replica B's dispatcher finishes the job — through
  PostgreSQL ``NOTIFY``, well before A's periodic fallback re-read (set to 60 s here).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import socket
import threading
import time
import uuid

import pytest
import requests

distributed = pytest.importorskip("distributed")
pytest.importorskip("fastapi")
pytest.importorskip("psycopg")

from conftest import (  # noqa: E402
    PostgresSchemas,
    ServerFactory,
    postgres_available,
    worker_cluster,
)
from qiskit import QuantumCircuit  # noqa: E402
from qiskit.primitives.containers.sampler_pub import SamplerPub  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from qiskit_rest_provider.wire.pubs import encode_sampler_params  # noqa: E402

pytestmark = pytest.mark.postgres

PG_URL = os.environ.get("QRP_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
TOKEN = "replica-token-0123456789abcdef"
FINAL = ("Completed", "Failed", "Cancelled")


@pytest.fixture
def pg_url():
    reason = postgres_available(PG_URL)
    if reason:
        pytest.skip(f"several replicas need a shared PostgreSQL: {reason}")
    schemas = PostgresSchemas(PG_URL)
    yield schemas.new_url()
    schemas.drop_all()


@pytest.fixture(scope="module")
def cluster():
    with worker_cluster(2) as local:
        with distributed.Client(local, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
        yield local.scheduler_address.replace("tcp://", "dask://")


@pytest.fixture
def factory(tmp_path):
    made = ServerFactory(tmp_path, None, None)
    yield made
    made.cleanup()


def _replica(factory, pg_url, executor, *extra):
    """A ``serve`` replica; all share one data dir (signing key, large results), as deployed."""
    return factory.start(
        factory.base_dir / "shared-data",
        token=TOKEN,
        db=pg_url,
        args=["--executor", executor, "--rate-limit", "100000", *extra],
    )


def _replica_id(server) -> str:
    """The default ``--replica-id`` of a server subprocess: ``<hostname>-<pid>``."""
    return f"{socket.gethostname()}-{server.process.pid}"


def _headers() -> dict[str, str]:
    return {"Authorization": f"apikey {TOKEN}", "Content-Type": "application/json"}


def _bell(seed: int) -> dict:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return encode_sampler_params(
        [SamplerPub.coerce(qc, shots=64)], options={"simulator": {"seed_simulator": seed}}
    )


def _submit(server, params: dict, session: requests.Session, key: str | None = None) -> str:
    body = {"program_id": "sampler", "backend": "rest_simulator", "params": params}
    headers = {**_headers(), **({"Idempotency-Key": key} if key else {})}
    r = session.post(f"{server.runtime_url}/jobs", headers=headers, json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["id"]


def _rows(pg_url: str) -> dict[str, tuple[str, str, str | None]]:
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, state, logs, claimed_by FROM jobs")).all()
    finally:
        engine.dispose()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def _wait_all_final(pg_url: str, ids: list[str], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        rows = _rows(pg_url)
        pending = [i for i in ids if rows.get(i, ("?",))[0] not in FINAL]
        if not pending:
            return rows
        assert time.monotonic() < deadline, f"{len(pending)} job(s) not final, e.g. {pending[:3]}"
        time.sleep(0.25)


def _assert_exactly_once(rows: dict, ids: list[str]) -> None:
    assert len(ids) == len(set(ids))
    for job_id in ids:
        state, logs, _ = rows[job_id]
        assert state == "Completed", (job_id, state, logs)
        assert logs.count("completed (simulation") == 1, logs


def _long_params() -> dict:
    """A ~2 s dense statevector job (20 qubits, ~1,000 gates)."""
    qc = QuantumCircuit(20)
    for layer in range(30):
        for i in range(20):
            qc.rx(0.1 * (i + layer + 1), i)
        for i in range(layer % 2, 19, 2):
            qc.cx(i, i + 1)
    qc.measure_all()
    return encode_sampler_params([SamplerPub.coerce(qc, shots=32)])


def _load(servers, n_jobs: int, clients: int = 4) -> list[str]:
    """``clients`` threads submit ``n_jobs`` in all, alternating over ``servers``."""
    ids: list[str] = []
    lock = threading.Lock()

    def client(index: int) -> None:
        with requests.Session() as session:
            for i in range(n_jobs // clients):
                first = (index + i) % len(servers)
                key = uuid.uuid4().hex
                for attempt in range(len(servers)):  # a dead replica: the load balancer's retry
                    server = servers[(first + attempt) % len(servers)]
                    try:
                        job_id = _submit(server, _bell(index * 1000 + i), session, key)
                        break
                    except requests.ConnectionError:
                        if attempt == len(servers) - 1:
                            raise
                with lock:
                    ids.append(job_id)

    with cf.ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client, k) for k in range(clients)]:
            f.result()
    return ids


def test_200_jobs_over_two_replicas_each_complete_exactly_once(pg_url, cluster, factory):
    a = _replica(factory, pg_url, cluster)
    b = _replica(factory, pg_url, cluster)
    ids = _load([a, b], 200)
    rows = _wait_all_final(pg_url, ids, timeout=120)
    _assert_exactly_once(rows, ids)
    owners = {rows[i][2] for i in ids}
    assert owners == {_replica_id(a), _replica_id(b)}  # both replicas' dispatchers did work

    # idempotency keys and sessions live in the database: they hold across replicas
    with requests.Session() as http:
        key = uuid.uuid4().hex
        assert _submit(a, _bell(1), http, key) == _submit(b, _bell(1), http, key)
        r = http.post(
            f"{a.runtime_url}/sessions",
            headers=_headers(),
            json={"mode": "dedicated", "backend": "rest_simulator"},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        session_id = r.json()["id"]
        body = {
            "program_id": "sampler",
            "backend": "rest_simulator",
            "params": _bell(2),
            "session_id": session_id,
        }
        r = http.post(f"{b.runtime_url}/jobs", headers=_headers(), json=body, timeout=30)
        assert r.status_code == 200, r.text
        job = b.wait_job(b.runtime_url, r.json()["id"], _headers(), timeout=60)
        assert job["state"]["status"] == "Completed" and job["session_id"] == session_id
        r = http.get(f"{b.runtime_url}/sessions/{session_id}", headers=_headers(), timeout=30)
        assert r.status_code == 200 and r.json()["id"] == session_id
        # a JWT issued by one replica is good on the other (the signing key is in the data dir)
        r = http.get(
            f"{b.runtime_url}/jobs", headers=a.platform_headers(), params={"limit": 1}, timeout=30
        )
        assert r.status_code == 200 and r.json()["count"] == len(ids) + 2, r.text


def test_sigkill_of_one_replica_under_load_every_job_still_completes_once(pg_url, cluster, factory):
    a = _replica(factory, pg_url, cluster, "--lease-seconds", "2")
    b = _replica(factory, pg_url, cluster, "--lease-seconds", "2")
    a_id, b_id = _replica_id(a), _replica_id(b)
    with requests.Session() as session:  # ~2 s jobs: A surely still runs one when killed
        long_ids = [_submit((a, b)[k % 2], _long_params(), session) for k in range(4)]
    with cf.ThreadPoolExecutor(1) as pool:
        loading = pool.submit(_load, [a, b], 80)
        deadline = time.monotonic() + 60
        held: list[str] = []
        while not held and time.monotonic() < deadline:
            rows = _rows(pg_url)
            held = [i for i in long_ids if rows[i][0] == "Running" and rows[i][2] == a_id]
            time.sleep(0.02)
        assert held, "replica A never held a long job"
        time.sleep(0.3)  # let more submissions and claims pile up on A
        factory.kill(a)  # SIGKILL while it holds jobs
        assert not a.alive()
        ids = loading.result(timeout=60)
    ids = long_ids + ids
    rows = _wait_all_final(pg_url, ids, timeout=90)
    _assert_exactly_once(rows, ids)
    # what A held went back to the queue once its lease expired, and B completed it
    for job_id in held:
        state, logs, owner = rows[job_id]
        assert f"running (on {a_id})" in logs and "job re-queued" in logs, logs
        assert owner == b_id
    assert b.alive()


@contextlib.contextmanager
def _idle_and_working_replicas(factory, pg_url, cluster):
    """Replicas A and B on one database: A runs nothing (a scheduler without workers: capacity
    0) and re-reads the store only every 60 s, B runs on ``cluster``. What A stores B must run,
    and only B's NOTIFY can wake A's waiters quickly."""
    with distributed.LocalCluster(
        n_workers=0, processes=False, protocol="tcp://", dashboard_address=None
    ) as empty:
        a = _replica(
            factory,
            pg_url,
            empty.scheduler_address.replace("tcp://", "dask://"),
            "--notify-fallback",
            "60",
        )
        yield a, _replica(factory, pg_url, cluster)


def test_long_poll_on_one_replica_wakes_when_another_finishes_the_job(pg_url, cluster, factory):
    # B's dispatcher must finish the job A stored; only its NOTIFY wakes A's long-poll quickly
    with _idle_and_working_replicas(factory, pg_url, cluster) as (a, b):
        params = _long_params()
        with requests.Session() as session:
            job_id = _submit(a, params, session)
            started = time.monotonic()
            r = session.get(
                f"{a.runtime_url}/jobs/{job_id}",
                params={"wait": 30},
                headers=_headers(),
                timeout=60,
            )
            waited = time.monotonic() - started
        assert r.status_code == 200, r.text
        assert r.json()["state"]["status"] == "Completed", r.json()
        assert waited < 15, waited  # woken by B's NOTIFY, not by A's 60 s fallback or timeout
        state, logs, owner = _rows(pg_url)[job_id]
        assert owner == _replica_id(b) and f"running (on {owner})" in logs
        assert b.alive() and a.alive()


def test_transpile_task_on_one_replica_is_run_by_another_and_wakes_the_first(
    pg_url, cluster, factory
):
    # As for jobs: B must claim the task A stored, and only B's NOTIFY of its end wakes A quickly
    with _idle_and_working_replicas(factory, pg_url, cluster) as (a, b):
        bearer = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
        qasm = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[2]; h q[0]; cx q[0], q[1];'
        with requests.Session() as session:
            r = session.post(
                f"{a.url}/transpile",
                params={"backend": "rest_line_5q"},
                json={"qasm_circuits": [qasm]},
                headers=bearer,
                timeout=60,
            )
            assert r.status_code == 200, r.text
            task_id = r.json()["task_id"]
            started = time.monotonic()
            r = session.get(
                f"{a.url}/transpile/{task_id}",
                params={"wait": 30},
                headers=bearer,
                timeout=60,
            )
            waited = time.monotonic() - started
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "SUCCESS", r.json()
        assert waited < 15, waited  # woken by B's NOTIFY, not by A's 60 s fallback or timeout
        engine = create_engine(pg_url)
        try:
            with engine.connect() as conn:
                owner = conn.execute(
                    text("SELECT claimed_by FROM transpile_tasks WHERE id = :id"), {"id": task_id}
                ).scalar()
        finally:
            engine.dispose()
        assert owner == _replica_id(b)
        assert b.alive() and a.alive()
