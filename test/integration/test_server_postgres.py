"""A short job lifecycle with the store on PostgreSQL (fresh schema, dropped afterwards).

Skipped with the reason when no PostgreSQL answers at ``QRP_TEST_POSTGRES_URL`` (default
``postgresql+psycopg://root@127.0.0.1:5432/test``). The whole server suite can also run on
PostgreSQL with ``pytest --db URL``.
"""

from __future__ import annotations

import os

import pytest
import requests

pytest.importorskip("fastapi")

from conftest import PostgresSchemas, postgres_available  # noqa: E402

PG_URL = os.environ.get("QRP_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")
QASM = 'OPENQASM 3.0; include "stdgates.inc"; qubit[1] q; bit[1] c; x q[0]; c[0] = measure q[0];'

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url():
    reason = postgres_available(PG_URL)
    if reason:
        pytest.skip(reason)
    schemas = PostgresSchemas(PG_URL)
    url = schemas.new_url()
    yield url
    schemas.drop_all()


def test_job_lifecycle_on_postgres(server_factory, pg_url):
    server = server_factory.start(workers=1, db=pg_url)
    base, headers = server.runtime_url, {"Authorization": f"Bearer {server.iam_token()}"}
    body = {
        "program_id": "sampler",
        "backend": "rest_simulator",
        "params": {"pubs": [[QASM, None, 50]], "version": 2},
        "tags": ["pg"],
    }
    created = requests.post(
        f"{base}/jobs", headers={**headers, "Idempotency-Key": "k-1"}, json=body, timeout=60
    )
    assert created.status_code == 200, created.text
    job_id = created.json()["id"]
    again = requests.post(
        f"{base}/jobs", headers={**headers, "Idempotency-Key": "k-1"}, json=body, timeout=60
    )
    assert again.json()["id"] == job_id
    job = server.wait_job(base, job_id, headers)
    assert job["state"]["status"] == "Completed"
    results = requests.get(f"{base}/jobs/{job_id}/results", headers=headers, timeout=30).json()
    assert set(results["results"][0]["data"]["c"]["samples"]) == {"0x1"}
    listing = requests.get(f"{base}/jobs", headers=headers, params={"tags": "pg"}, timeout=30)
    assert listing.json()["count"] == 1

    # the store really is PostgreSQL: a restart on another data dir sees the same job
    server_factory.stop(server)
    other = server_factory.start(token=server.token, workers=1, db=pg_url)
    seen = requests.get(
        f"{other.runtime_url}/jobs/{job_id}",
        headers={"Authorization": f"apikey {server.token}"},
        timeout=30,
    )
    assert seen.status_code == 200 and seen.json()["state"]["status"] == "Completed"
    assert (
        requests.delete(
            f"{other.runtime_url}/jobs/{job_id}",
            headers={"Authorization": f"apikey {server.token}"},
            timeout=30,
        ).status_code
        == 204
    )
