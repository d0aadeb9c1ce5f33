"""``qiskit-rest-provider tokens list|add|revoke|rotate`` on a data dir, with its server running.

The commands write the store directly; a running server must honour a revocation from the very next
request, whatever credential the client holds (API key, platform JWT, classic access token), even
though the server caches verified credentials.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

OTHER = "other/team/project"


def tokens(server_or_dir, *args: str, db: str | None = None) -> subprocess.CompletedProcess:
    data_dir = getattr(server_or_dir, "data_dir", server_or_dir)
    db = db or getattr(server_or_dir, "db_url", None)
    extra = ["--db", db] if db else []
    return subprocess.run(
        [sys.executable, "-m", "qiskit_rest_provider", "tokens", *args,
         "--data-dir", str(data_dir), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith("QISKIT_REST_")},
    )  # fmt: skip


def _listed(server) -> list[dict]:
    proc = tokens(server, "list", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _banner(proc: subprocess.CompletedProcess) -> dict[str, str]:
    assert proc.returncode == 0, proc.stderr
    return dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)


def _status(server, headers: dict[str, str]) -> int:
    return requests.get(f"{server.runtime_url}/backends", headers=headers, timeout=30).status_code


def _credentials(server, token: str) -> dict[str, dict[str, str]]:
    """Every kind of credential derived from ``token``, each used twice (caches warm)."""
    creds = {
        "apikey": {"Authorization": f"apikey {token}"},
        "jwt": {"Authorization": f"Bearer {server.iam_token(token)}"},
        "classic": {"X-Access-Token": server.classic_login(token)},
    }
    for headers in creds.values():
        assert _status(server, headers) == 200
        assert _status(server, headers) == 200
    return creds


def _error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and err.startswith("error: ")
    for needle in needles:
        assert needle in err, err


@pytest.fixture
def server(server_factory):
    return server_factory.start(workers=1, extra_tokens={"other-" + os.urandom(8).hex(): OTHER})


def test_list_shows_ids_and_instances_never_secrets(server):
    rows = _listed(server)
    assert sorted(r["instance"] for r in rows) == sorted(["local/default/main", OTHER])
    assert all(r["state"] == "active" and r["created"].endswith("Z") for r in rows)
    assert len({r["id"] for r in rows}) == 2
    table = tokens(server, "list")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == ["ID", "INSTANCE", "CREATED", "STATE"]
    for secret in (server.token, server.other_token):
        assert secret not in table.stdout and secret not in json.dumps(rows)


def test_add_works_at_once_on_the_running_server(server):
    proc = tokens(server, "add", "--instance", "new/hub/proj")
    banner = _banner(proc)
    secret = banner["API token"]
    assert banner["Instance"] == "new/hub/proj" and banner["Instance CRN"].startswith("crn:")
    assert _status(server, {"Authorization": f"apikey {secret}"}) == 200
    listed = {r["id"]: r for r in _listed(server)}
    assert listed[banner["Token id"]]["instance"] == "new/hub/proj"
    assert secret not in tokens(server, "list").stdout  # shown once, when created
    # a chosen token, and the same one again (idempotent)
    again = _banner(tokens(server, "add", "--token", "chosen-" + "x" * 20))
    assert again["API token"] == "chosen-" + "x" * 20
    assert (
        _banner(tokens(server, "add", "--token", "chosen-" + "x" * 20))["Token id"]
        == (again["Token id"])
    )


def test_revoke_fails_every_credential_at_once(server):
    """The server caches verified API keys and JWTs for 30 s; revocation must not wait for it."""
    creds = _credentials(server, server.other_token)
    other_id = next(r["id"] for r in _listed(server) if r["instance"] == OTHER)
    main_creds = _credentials(server, server.token)

    proc = tokens(server, "revoke", other_id[:14])  # a unique prefix is enough
    assert proc.returncode == 0, proc.stderr
    assert other_id in proc.stdout
    for kind, headers in creds.items():
        assert _status(server, headers) == 401, kind
    r = requests.post(
        f"{server.url}/identity/token",
        data={"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": server.other_token},
        timeout=30,
    )
    assert r.status_code in (400, 401)
    for headers in main_creds.values():  # the other tokens are untouched
        assert _status(server, headers) == 200
    assert {r["id"]: r["state"] for r in _listed(server)}[other_id] == "revoked"
    _error(tokens(server, "revoke", other_id), "already revoked")
    # a revoked secret cannot be registered again (it would undo the revocation)
    _error(tokens(server, "add", "--token", server.other_token, "--instance", OTHER), "revoked")


def test_rotate_replaces_the_secret(server):
    main_id = next(r["id"] for r in _listed(server) if r["instance"] == "local/default/main")
    old = _credentials(server, server.token)
    banner = _banner(tokens(server, "rotate", main_id))
    new_secret = banner["API token"]
    assert banner["Revoked"] == main_id and banner["Instance"] == "local/default/main"
    assert new_secret != server.token
    for kind, headers in old.items():
        assert _status(server, headers) == 401, kind
    fresh = _credentials(server, new_secret)
    assert all(_status(server, h) == 200 for h in fresh.values())
    # the rotated token owns the same instance: it sees the same jobs listing
    r = requests.get(
        f"{server.runtime_url}/jobs", headers={"Authorization": f"apikey {new_secret}"}, timeout=30
    )
    assert r.status_code == 200
    states = {r["id"]: r["state"] for r in _listed(server)}
    assert states[main_id] == "revoked" and states[banner["Token id"]] == "active"


def test_errors_are_one_line(server, tmp_path: Path):
    _error(tokens(server, "revoke", "zzzzzzzz"), "no API token", "zzzzzzzz")
    _error(tokens(server, "rotate", "ab"), "too short")
    # two tokens share their time-based head: a 4-character prefix of both is ambiguous
    ids = [r["id"] for r in _listed(server)]
    common = os.path.commonprefix(ids)
    if len(common) >= 4:
        _error(tokens(server, "revoke", common), "ambiguous")
    if server.db_url is None:
        _error(tokens(tmp_path / "nowhere", "list"), "no store", "nowhere")


def test_the_generated_main_token_stays_rotated_and_revoked_across_restarts(server_factory):
    """``serve`` re-reads ``DATA_DIR/api_token``: rotate rewrites it and revoke removes it."""
    first = server_factory.start(workers=1, generated_token=True)
    token_file = first.data_dir / "api_token"
    assert token_file.read_text().strip() == first.token
    main_id = _listed(first)[0]["id"]
    rotated = _banner(tokens(first, "rotate", main_id))["API token"]
    assert token_file.read_text().strip() == rotated
    server_factory.stop(first)

    second = server_factory.start(first.data_dir, workers=1, generated_token=True)
    assert second.token == rotated
    assert _status(second, {"Authorization": f"apikey {first.token}"}) == 401
    assert _status(second, {"Authorization": f"apikey {rotated}"}) == 200
    rotated_id = next(r["id"] for r in _listed(second) if r["state"] == "active")
    proc = tokens(second, "revoke", rotated_id)
    assert proc.returncode == 0 and "api_token" in proc.stdout, proc.stderr
    assert not token_file.exists()
    assert _status(second, {"Authorization": f"apikey {rotated}"}) == 401
    server_factory.stop(second)

    third = server_factory.start(first.data_dir, workers=1, generated_token=True)
    assert third.token not in (first.token, rotated)  # a new main token, not the revoked one
    assert _status(third, {"Authorization": f"apikey {third.token}"}) == 200
    assert _status(third, {"Authorization": f"apikey {rotated}"}) == 401
    server_factory.stop(third)

    # a fixed --token that was revoked refuses to start instead of resurrecting it
    proc = subprocess.run(
        [sys.executable, "-m", "qiskit_rest_provider", "serve", "--port", "0", "--workers", "1",
         "--data-dir", str(first.data_dir), "--token", rotated,
         *(["--db", first.db_url] if first.db_url else [])],
        capture_output=True,
        text=True,
        timeout=180,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "revoked" in proc.stderr and "Traceback" not in proc.stderr
