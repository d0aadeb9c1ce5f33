"""Acceptance: a data dir written by 0.1.0 is upgraded in place by ``serve`` and still served.

The data dir holds the SQLite store 0.1.0 wrote (``test/data/store_v0_1_0.sql``: its
``create_all`` schema, no ``alembic_version``, a Completed Sampler job with results and a Queued
one, and the salted hash of the API token it was started with). The server started on it must
upgrade the schema to the head (one log line saying so), accept the old token, serve the old job
and its results, and run the queued job to completion. Always SQLite, even under ``--db``: the
data dir is what is being upgraded.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
import requests

pytest.importorskip("fastapi")
pytest.importorskip("alembic")

from qiskit_rest_provider.server.jobs.schema import head_revision  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "store_v0_1_0.sql"
V010_TOKEN = "v010-fixture-token-4f2b9c"
COMPLETED_ID = "1k8s48r0aagcb6oebist"
QUEUED_ID = "1k8s4a0000v010queued"


def _v010_data_dir(root: Path) -> Path:
    data_dir = root / "v010-data"
    (data_dir / "results").mkdir(parents=True)
    db = sqlite3.connect(data_dir / "store.sqlite3")
    db.executescript(FIXTURE.read_text())
    # the fixture's token row really is that token, hashed the way server/auth.py does
    salt, digest = db.execute("SELECT salt, hash FROM api_tokens").fetchone()
    assert hashlib.sha256((salt + V010_TOKEN).encode()).hexdigest() == digest
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "alembic_version" not in tables and "jobs" in tables
    db.close()
    return data_dir


def test_serve_upgrades_a_0_1_0_data_dir_and_serves_its_jobs(server_factory, tmp_path):
    data_dir = _v010_data_dir(tmp_path)
    server = server_factory.start(data_dir, workers=1, db=f"sqlite:///{data_dir / 'store.sqlite3'}")
    base = server.runtime_url
    headers = {"Authorization": f"apikey {V010_TOKEN}"}  # the token 0.1.0 stored

    done = requests.get(f"{base}/jobs/{COMPLETED_ID}", headers=headers, timeout=30)
    assert done.status_code == 200, done.text
    assert done.json()["state"]["status"] == "Completed"
    assert done.json()["backend"] == "rest_simulator"
    results = requests.get(f"{base}/jobs/{COMPLETED_ID}/results", headers=headers, timeout=30)
    assert results.status_code == 200, results.text
    data = results.json()["results"][0]["data"]["c"]
    assert data["samples"] == ["0x3"] * 64 and data["num_bits"] == 2

    # the job 0.1.0 left queued runs on the upgraded store (x then cx: always 11)
    finished = server.wait_job(base, QUEUED_ID, headers, timeout=180)
    assert finished["state"]["status"] == "Completed", finished["state"]
    queued_results = requests.get(f"{base}/jobs/{QUEUED_ID}/results", headers=headers, timeout=30)
    assert queued_results.status_code == 200, queued_results.text
    samples = queued_results.json()["results"][0]["data"]["c"]["samples"]
    assert len(samples) == 64 and set(samples) == {"0x3"}

    listing = requests.get(f"{base}/jobs", headers=headers, params={"tags": "v010"}, timeout=30)
    assert listing.status_code == 200 and listing.json()["count"] == 2

    # the server's own token (provisioned at start) acts on the same old instance
    mine = requests.get(
        f"{base}/jobs/{COMPLETED_ID}",
        headers={"Authorization": f"apikey {server.token}"},
        timeout=30,
    )
    assert mine.status_code == 200

    server_factory.stop(server)
    db = sqlite3.connect(data_dir / "store.sqlite3")
    try:
        assert [r[0] for r in db.execute("SELECT version_num FROM alembic_version")] == [
            head_revision()
        ]
        columns = {r[1] for r in db.execute("PRAGMA table_info(jobs)")}
        assert "results_consumed_at" in columns
    finally:
        db.close()
    upgraded = [line for line in server.log_text().splitlines() if "store schema" in line]
    assert len(upgraded) == 1, upgraded
    assert f"upgraded store schema from 0001 to {head_revision()}" in upgraded[0]
