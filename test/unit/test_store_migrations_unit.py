"""Unit tests of the store's schema migrations (Alembic) on SQLite and PostgreSQL.

What they pin down: revision 0001 is byte for byte the schema 0.1.0's ``create_all`` made (the
DDL captured in ``test/data/store_v0_1_0.sql``); the head agrees with the models; opening a store
creates, stamps-and-upgrades or leaves alone, as the database needs; it refuses what it cannot
upgrade safely; and of several processes opening one database at once, exactly one migrates.
PostgreSQL tests skip, saying why, when no server answers at ``QRP_TEST_POSTGRES_URL``.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("alembic")

from alembic import command  # noqa: E402
from alembic.autogenerate import compare_metadata  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from conftest import PostgresSchemas, postgres_available  # noqa: E402
from sqlalchemy import create_engine, inspect, text  # noqa: E402

from qiskit_rest_provider.server.config import ServerConfig  # noqa: E402
from qiskit_rest_provider.server.jobs.models import Base  # noqa: E402
from qiskit_rest_provider.server.jobs.schema import (  # noqa: E402
    SchemaError,
    _alembic_config,
    head_revision,
    migrations_dir,
    schema_revision,
)
from qiskit_rest_provider.server.jobs.store import Store  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "store_v0_1_0.sql"
PG_URL = os.environ.get("QRP_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
REPO = Path(__file__).resolve().parents[2]
COMPLETED_ID = "1k8s48r0aagcb6oebist"
HEAD = "0005"  # the newest revision (update with each new migration)
QUEUED_ID = "1k8s4a0000v010queued"


def _load_v010(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript(FIXTURE.read_text())
    db.close()


def _sqlite_schema(path: Path) -> dict[str, str]:
    db = sqlite3.connect(path)
    try:
        rows = db.execute(
            "SELECT name, sql FROM sqlite_master"
            " WHERE sql IS NOT NULL AND name != 'alembic_version'"
        ).fetchall()
    finally:
        db.close()
    return dict(rows)


def _version(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [r[0] for r in db.execute("SELECT version_num FROM alembic_version")]
    finally:
        db.close()


def _models_diff(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            return compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()


def _open(tmp_path: Path, db_url: str | None = None) -> Store:
    config = ServerConfig(data_dir=tmp_path, db_url=db_url)
    config.prepare_data_dir()
    return Store(config)


@pytest.fixture
def pg_url():
    reason = postgres_available(PG_URL)
    if reason:
        pytest.skip(reason)
    schemas = PostgresSchemas(PG_URL)
    yield schemas.new_url()
    schemas.drop_all()


# ----------------------------------------------------------------------------- revisions
def test_migrations_ship_inside_the_package():
    where = migrations_dir()
    assert where.parts[-3:] == ("server", "jobs", "migrations")
    assert (where / "env.py").is_file()
    assert sorted(p.name for p in (where / "versions").glob("*.py")) == [
        "0001_initial.py",
        "0002_job_results_consumed_at.py",
        "0003_job_leases.py",
        "0004_transpile_tasks.py",
        "0005_instance_quotas.py",
    ]
    assert head_revision() == HEAD


def test_revision_0001_is_exactly_the_schema_of_0_1_0(tmp_path):
    reference = tmp_path / "v010.sqlite3"
    _load_v010(reference)
    migrated = tmp_path / "migrated.sqlite3"
    engine = create_engine(f"sqlite:///{migrated}")
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0001")
    engine.dispose()
    expected, got = _sqlite_schema(reference), _sqlite_schema(migrated)
    assert sorted(got) == sorted(expected)  # 6 tables, 4 indexes (+ SQLite's autoindexes)
    for name, ddl in expected.items():
        assert got[name] == ddl, name


def test_head_agrees_with_the_models_on_sqlite(tmp_path):
    store = _open(tmp_path)
    store.close()
    assert _models_diff(f"sqlite:///{tmp_path / 'store.sqlite3'}") == []
    engine = create_engine(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    columns = {c["name"]: c for c in inspect(engine).get_columns("jobs")}
    engine.dispose()
    assert columns["results_consumed_at"]["nullable"] is True
    assert columns["private"]["nullable"] is False


# ----------------------------------------------------------------------------- start-up
def test_fresh_sqlite_is_created_by_the_migrations(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="qiskit_rest_provider.server.jobs.schema"):
        store = _open(tmp_path)
    try:
        assert store.schema_change.before is None and store.schema_change.after == HEAD
        assert not store.schema_change.stamped
        assert schema_revision(store.engine) == HEAD
        inst = store.ensure_instance("a/b/c", "crn:x")  # the tables work
        assert store.instance(inst.id).hgp == "a/b/c"
    finally:
        store.close()
    assert _version(tmp_path / "store.sqlite3") == [HEAD]
    assert f"created store schema at revision {HEAD}" in caplog.text


def test_up_to_date_store_is_left_alone(tmp_path, caplog):
    _open(tmp_path).close()
    before = _sqlite_schema(tmp_path / "store.sqlite3")
    with caplog.at_level(logging.INFO, logger="qiskit_rest_provider.server.jobs.schema"):
        store = _open(tmp_path)
    store.close()
    assert store.schema_change.before == store.schema_change.after == HEAD
    assert not store.schema_change.changed
    assert "store schema" not in caplog.text
    assert _sqlite_schema(tmp_path / "store.sqlite3") == before


def test_store_of_0_1_0_is_stamped_and_upgraded_keeping_its_rows(tmp_path, caplog):
    _load_v010(tmp_path / "store.sqlite3")
    with caplog.at_level(logging.INFO, logger="qiskit_rest_provider.server.jobs.schema"):
        store = _open(tmp_path)
    try:
        change = store.schema_change
        assert (change.before, change.after, change.stamped) == ("0001", HEAD, True)
        done = store.get_job(COMPLETED_ID, with_result=True)
        assert done.state == "Completed" and done.results_consumed_at is None
        body = json.loads(store.read_result(done))
        assert body["results"][0]["data"]["c"]["samples"] == ["0x3"] * 64
        queued = store.queued_jobs(10)
        assert [j.id for j in queued] == [QUEUED_ID]
        assert store.get_job(QUEUED_ID).idempotency_key == "v010-queued-key"
        assert store.consume_results(COMPLETED_ID) is True  # the new column is usable
        assert store.consume_results(COMPLETED_ID) is False
    finally:
        store.close()
    assert _version(tmp_path / "store.sqlite3") == [HEAD]
    lines = [r.getMessage() for r in caplog.records if "store schema" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(f"upgraded store schema from 0001 to {HEAD}")


def test_foreign_tables_without_version_are_refused_untouched(tmp_path):
    path = tmp_path / "store.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, state TEXT)")
    db.commit()
    db.close()
    config = ServerConfig(data_dir=tmp_path)
    with pytest.raises(SchemaError, match="not made by qiskit-rest-provider"):
        Store(config)
    assert set(_sqlite_schema(path)) == {"jobs"}  # nothing created, nothing stamped


def test_0_1_0_tables_with_other_columns_are_refused(tmp_path):
    path = tmp_path / "store.sqlite3"
    _load_v010(path)
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE jobs ADD COLUMN surprise TEXT")
    db.commit()
    db.close()
    with pytest.raises(SchemaError, match=r"table 'jobs' .*unexpected columns: \['surprise'\]"):
        Store(ServerConfig(data_dir=tmp_path))
    assert "alembic_version" not in {
        r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")
    }


def test_revision_from_a_newer_release_is_refused(tmp_path):
    _open(tmp_path).close()
    db = sqlite3.connect(tmp_path / "store.sqlite3")
    db.execute("UPDATE alembic_version SET version_num = '0099'")
    db.commit()
    db.close()
    with pytest.raises(SchemaError, match="revision '0099', which this release .* does not know"):
        Store(ServerConfig(data_dir=tmp_path))


# --------------------------------------------------------------------------- concurrency
_OPEN_SCRIPT = """
import json, sys
from qiskit_rest_provider.server.config import ServerConfig
from qiskit_rest_provider.server.jobs.store import Store
config = ServerConfig(data_dir=sys.argv[1], db_url=sys.argv[2] or None)
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()  # start together
store = Store(config)
print(json.dumps([store.schema_change.before, store.schema_change.after]))
store.close()
"""


def _open_concurrently(data_dir: Path, db_url: str, n: int = 3) -> list[list[str | None]]:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_SCRIPT, str(data_dir), db_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(n)
    ]
    for p in procs:  # every process has imported everything before any starts migrating
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    outcomes = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outcomes.append(json.loads(out.strip().splitlines()[-1]))
    return outcomes


def test_concurrent_start_on_sqlite_migrates_once(tmp_path):
    outcomes = _open_concurrently(tmp_path, "")
    assert sorted(outcomes, key=str) == sorted([[None, HEAD]] + [[HEAD, HEAD]] * 2, key=str)
    assert _version(tmp_path / "store.sqlite3") == [HEAD]


# ---------------------------------------------------------------------------- PostgreSQL
@pytest.mark.postgres
def test_fresh_postgres_schema_is_created_by_the_migrations(tmp_path, pg_url):
    store = _open(tmp_path, pg_url)
    try:
        assert (store.schema_change.before, store.schema_change.after) == (None, HEAD)
        with store.engine.connect() as conn:
            schema = conn.scalar(text("SELECT current_schema()"))
            assert schema.startswith("qrp_")  # the search_path of the URL, not public
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == HEAD
    finally:
        store.close()
    assert _models_diff(pg_url) == []
    again = _open(tmp_path, pg_url)
    again.close()
    assert not again.schema_change.changed


@pytest.mark.postgres
def test_postgres_store_of_0_1_0_is_stamped_and_upgraded(tmp_path, pg_url):
    # 0.1.0's create_all schema on PostgreSQL is revision 0001 without the version table
    # (checked once against pg_dump of 0.1.0's create_all: identical)
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0001")
        conn.execute(text("DROP TABLE alembic_version"))
        conn.execute(text("INSERT INTO instances VALUES ('i1', 'a/b/c', 'crn:1', :t)"), {"t": 1.0})
        conn.execute(
            text(
                "INSERT INTO jobs (id, instance_id, user_id, backend, program_id, params, state,"
                " tags, private, created, logs, usage_seconds, quantum_seconds, attempts)"
                " VALUES ('j1', 'i1', 'u', 'rest_simulator', 'sampler', '\\x7b7d', 'Completed',"
                " '[]', false, :t, '', 0, 0, 0)"
            ),
            {"t": time.time()},
        )
    engine.dispose()
    store = _open(tmp_path, pg_url)
    try:
        assert (store.schema_change.before, store.schema_change.stamped) == ("0001", True)
        job = store.get_job("j1")
        assert job.state == "Completed" and job.params == b"{}"
        assert job.results_consumed_at is None
    finally:
        store.close()
    assert _models_diff(pg_url) == []


@pytest.mark.postgres
def test_concurrent_start_on_postgres_migrates_once(tmp_path, pg_url):
    outcomes = _open_concurrently(tmp_path, pg_url)
    assert sorted(outcomes, key=str) == sorted([[None, HEAD]] + [[HEAD, HEAD]] * 2, key=str)


# ----------------------------------------------------------------------------- the command
def test_db_command_reports_and_upgrades_a_0_1_0_data_dir(tmp_path, capsys):
    from qiskit_rest_provider.cli import main

    assert main(["db", "current", "--data-dir", str(tmp_path / "absent")]) == 1
    assert "no store at" in capsys.readouterr().out
    assert not (tmp_path / "absent").exists()  # looking creates nothing

    _load_v010(tmp_path / "store.sqlite3")
    assert main(["db", "current", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.startswith("unversioned (made by 0.1.0, revision 0001)")
    assert main(["db", "upgrade", "--data-dir", str(tmp_path)]) == 0
    assert f"from 0001 to {HEAD}" in capsys.readouterr().out
    assert main(["db", "upgrade", "--data-dir", str(tmp_path)]) == 0
    assert f"already at {HEAD} (head)" in capsys.readouterr().out
    assert main(["db", "current", "--data-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"{HEAD} (head)"


def test_db_upgrade_refuses_a_foreign_database_with_exit_code_2(tmp_path, capsys):
    from qiskit_rest_provider.cli import main

    db = sqlite3.connect(tmp_path / "store.sqlite3")
    db.execute("CREATE TABLE users (id TEXT)")
    db.commit()
    db.close()
    assert main(["db", "upgrade", "--data-dir", str(tmp_path)]) == 2
    assert "not made by qiskit-rest-provider" in capsys.readouterr().err
