"""Security of the reference server and the client (issue 7).

* secrets at rest: API tokens and access tokens only as salted hashes (the raw secrets appear in
  no file of the data dir, except the generated API token the server keeps for its operator in
  ``api_token``, mode 0600); signing key 0600, data dir 0700;
* logout invalidates (both channels); JWT signature, algorithm and expiry are verified;
* another instance's jobs, sessions and listings stay invisible;
* per-token rate limit answering 429 with ``Retry-After`` (and only for that token);
* CORS closed by default, open only to configured origins;
* no credential in any log line, server (DEBUG) or client (DEBUG, caplog);
* saved client credentials are written with mode 0600.
"""

from __future__ import annotations

import logging
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jwt
import pytest
import requests

from qiskit_rest_provider import ProviderService

pytest.importorskip("fastapi")

BELL = (
    'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] meas; h q[0]; cx q[0], q[1]; '
    "meas[0] = measure q[0]; meas[1] = measure q[1];"
)


def _job_body(tag: str = "sec") -> dict:
    return {
        "program_id": "sampler",
        "backend": "rest_simulator",
        "params": {"pubs": [[BELL, None, 10]], "version": 2},
        "tags": [tag],
    }


def _files_containing(root: Path, secret: str) -> list[Path]:
    """Every file under ``root`` whose bytes contain ``secret`` (SQLite, WAL, results, keys)."""
    needle = secret.encode()
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------------------- secrets at rest
def test_tokens_and_access_tokens_are_stored_hashed(reference_server):
    server = reference_server
    access = server.classic_login()
    bearer = server.iam_token()
    base = server.runtime_url
    for headers in (
        {"X-Access-Token": access},
        {"Authorization": f"Bearer {bearer}"},
        {"Authorization": f"apikey {server.token}"},
    ):
        r = requests.post(f"{base}/jobs", headers=headers, json=_job_body(), timeout=60)
        assert r.status_code == 200, r.text
        server.wait_job(base, r.json()["id"], headers)
    access_id, _, access_secret = access.partition(".")
    # every file of the data dir: SQLite store and its WAL/journal, result files, keys
    for secret in (
        server.token,
        server.other_token,
        access_secret,
        bearer,
        bearer.split(".")[2],
    ):
        assert _files_containing(server.data_dir, secret) == [], "a raw secret is stored"
    if server.db_url is None:  # SQLite in the data dir: the row is there (by id), not its secret
        assert _files_containing(server.data_dir, access_id)
    assert _mode(server.data_dir) == 0o700
    assert _mode(server.data_dir / "jwt_signing_key") == 0o600


def _spawn_without_token(data_dir: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    """``serve`` with no ``--token``: the server generates one and keeps it for the operator."""
    cmd = [
        sys.executable, "-m", "qiskit_rest_provider", "serve", "--host", "127.0.0.1",
        "--port", "0", "--data-dir", str(data_dir), "--workers", "1",
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    banner: dict[str, str] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        key, sep, value = line.strip().partition(": ")
        if sep:
            banner[key] = value
        if key == "Data dir":
            break
    assert "API token" in banner, banner
    return proc, banner


@pytest.mark.timeout(240)
def test_generated_token_is_kept_only_in_the_operator_file(tmp_path):
    data_dir = tmp_path / "data"
    proc, banner = _spawn_without_token(data_dir)
    try:
        token = banner["API token"]
        deadline = time.monotonic() + 120
        while True:
            try:
                ok = requests.get(
                    f"{banner['Base URL']}/api/v1/backends",
                    headers={"Authorization": f"apikey {token}"},
                    timeout=5,
                )
                if ok.status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, "server did not come up"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    token_file = data_dir / "api_token"
    assert token_file.read_text().strip() == token
    assert _mode(token_file) == 0o600
    assert _files_containing(data_dir, token) == [token_file]


# ---------------------------------------------------------------------------- credentials
def test_logout_invalidates_access_token_and_jwt(reference_server):
    base = reference_server.runtime_url
    for kind in ("classic", "jwt"):
        if kind == "classic":
            headers = {"X-Access-Token": reference_server.classic_login()}
        else:
            headers = {"Authorization": f"Bearer {reference_server.iam_token()}"}
        assert requests.get(f"{base}/jobs?limit=1", headers=headers, timeout=30).status_code == 200
        out = requests.post(f"{reference_server.url}/api/users/logout", headers=headers, timeout=30)
        assert out.status_code in (200, 204), out.text
        after = requests.get(f"{base}/jobs?limit=1", headers=headers, timeout=30)
        assert after.status_code == 401 and after.json()["errors"][0]["message"]
    # the API key itself still works: logout ends a login, not the account
    api = {"Authorization": f"apikey {reference_server.token}"}
    assert requests.get(f"{base}/jobs?limit=1", headers=api, timeout=30).status_code == 200


def _jwt_parts(token: str) -> tuple[dict, str]:
    claims = jwt.decode(token, options={"verify_signature": False})
    return claims, token.rsplit(".", 1)[1]


@pytest.mark.filterwarnings("ignore:The HMAC key")
@pytest.mark.parametrize(
    "forge", ["wrong-key", "expired", "alg-none", "tampered-claims", "unknown-jti", "hs512-key"]
)
def test_forged_or_expired_jwt_is_401(reference_server, forge):
    real = reference_server.iam_token()
    claims, signature = _jwt_parts(real)
    key = (reference_server.data_dir / "jwt_signing_key").read_text().strip()
    now = int(time.time())
    if forge == "wrong-key":
        token = jwt.encode(claims, "x" * 43, algorithm="HS256")
    elif forge == "expired":
        token = jwt.encode({**claims, "iat": now - 7200, "exp": now - 10}, key, algorithm="HS256")
    elif forge == "alg-none":
        token = jwt.encode(claims, None, algorithm="none")
    elif forge == "tampered-claims":
        other = jwt.encode({**claims, "exp": now + 10 * 86400}, "k" * 43, algorithm="HS256")
        token = other.rsplit(".", 1)[0] + "." + signature
    elif forge == "unknown-jti":
        token = jwt.encode({**claims, "jti": uuid.uuid4().hex}, key, algorithm="HS256")
    else:  # the right key but an algorithm the server does not accept
        token = jwt.encode(claims, key, algorithm="HS512")
    r = requests.get(
        f"{reference_server.runtime_url}/jobs",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert r.status_code == 401, r.text
    body = r.json()
    assert body["status_code"] == 401 and body["errors"][0]["message"]
    if forge == "expired":
        assert "expired" in body["errors"][0]["message"]
    # the genuine token still works
    ok = requests.get(
        f"{reference_server.runtime_url}/jobs?limit=1",
        headers={"Authorization": f"Bearer {real}"},
        timeout=30,
    )
    assert ok.status_code == 200


def test_other_instance_sees_nothing_of_mine(reference_server):
    base = reference_server.runtime_url
    mine = {"Authorization": f"apikey {reference_server.token}"}
    theirs = {"Authorization": f"apikey {reference_server.other_token}"}
    tag = f"sec-iso-{uuid.uuid4().hex[:8]}"
    job_id = requests.post(f"{base}/jobs", headers=mine, json=_job_body(tag), timeout=60).json()[
        "id"
    ]
    session = requests.post(
        f"{base}/sessions",
        headers=mine,
        json={"mode": "batch", "backend": "rest_simulator"},
        timeout=30,
    ).json()["id"]
    listing = requests.get(f"{base}/jobs", headers=theirs, params={"tags": tag}, timeout=30)
    assert listing.json()["count"] == 0
    all_theirs = requests.get(f"{base}/jobs", headers=theirs, params={"limit": 1000}, timeout=30)
    assert job_id not in {j["id"] for j in all_theirs.json()["jobs"]}
    for method, path, body in [
        ("GET", f"jobs/{job_id}", None),
        ("GET", f"jobs/{job_id}/logs", None),
        ("GET", f"sessions/{session}", None),
        ("PATCH", f"sessions/{session}", {"accepting_jobs": False}),
        ("DELETE", f"sessions/{session}/close", None),
    ]:
        r = requests.request(method, f"{base}/{path}", headers=theirs, json=body, timeout=30)
        assert r.status_code == 404, (method, path, r.status_code, r.text)
    # joining my session with their job is refused too, and creates nothing
    r = requests.post(
        f"{base}/jobs", headers=theirs, json={**_job_body(tag), "session_id": session}, timeout=60
    )
    assert r.status_code == 404
    assert requests.get(f"{base}/sessions/{session}", headers=mine, timeout=30).status_code == 200
    requests.delete(f"{base}/sessions/{session}/close", headers=mine, timeout=30)


# ---------------------------------------------------------------------------- limits
@pytest.fixture(scope="module")
def limited_server(_session_factory):
    """2 requests/s per token, CORS open to one origin only, DEBUG logging."""
    return _session_factory.start(
        workers=1,
        extra_tokens={"sec-other-" + uuid.uuid4().hex: "other/team/project"},
        args=[
            "--rate-limit",
            "2",
            "--cors-origin",
            "https://ok.example",
            "--log-level",
            "debug",
        ],
    )


def test_rate_limit_is_per_token_with_retry_after(limited_server):
    s = limited_server
    base = s.runtime_url
    mine = {"Authorization": f"apikey {s.token}"}
    limited = None
    for _ in range(40):
        r = requests.get(f"{base}/jobs?limit=1", headers=mine, timeout=30)
        if r.status_code == 429:
            limited = r
            break
        assert r.status_code == 200
    assert limited is not None, "no 429 from a 2 requests/s limit"
    body = limited.json()
    assert body["status_code"] == 429 and "rate limit" in body["errors"][0]["message"]
    wait = int(limited.headers["Retry-After"])
    assert wait >= 1
    # another token is not affected by my burst
    theirs = {"Authorization": f"apikey {s.other_token}"}
    assert requests.get(f"{base}/jobs?limit=1", headers=theirs, timeout=30).status_code == 200
    time.sleep(wait + 0.2)
    assert requests.get(f"{base}/jobs?limit=1", headers=mine, timeout=30).status_code == 200


def test_cors_closed_to_foreign_origins(limited_server, reference_server):
    for server, allowed in ((reference_server, None), (limited_server, "https://ok.example")):
        url = f"{server.runtime_url}/backends"
        for origin in ("https://evil.example", "null"):
            pre = requests.options(
                url,
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": "GET",
                    "Access-Control-Request-Headers": "authorization",
                },
                timeout=30,
            )
            assert "access-control-allow-origin" not in {k.lower() for k in pre.headers}
            simple = requests.get(
                url,
                headers={"Origin": origin, "Authorization": f"apikey {server.token}"},
                timeout=30,
            )
            assert "access-control-allow-origin" not in {k.lower() for k in simple.headers}
        if allowed:
            pre = requests.options(
                url,
                headers={"Origin": allowed, "Access-Control-Request-Method": "GET"},
                timeout=30,
            )
            assert pre.headers.get("access-control-allow-origin") == allowed


# ---------------------------------------------------------------------------- logs
def _patient(fn, *args, **kwargs):
    """Call ``fn``, waiting out 429s of the rate-limited server (raised or returned)."""
    for _ in range(20):
        try:
            out = fn(*args, **kwargs)
        except requests.HTTPError as exc:
            if exc.response is None or exc.response.status_code != 429:
                raise
            time.sleep(float(exc.response.headers.get("Retry-After", 1)))
            continue
        if isinstance(out, requests.Response) and out.status_code == 429:
            time.sleep(float(out.headers.get("Retry-After", 1)))
            continue
        return out
    raise AssertionError("still rate limited")


def test_no_credential_in_server_or_client_logs(limited_server, caplog):
    s = limited_server
    time.sleep(2.5)  # let the rate-limit bucket refill after the previous test
    wrong_key = "wrong-" + uuid.uuid4().hex
    caplog.set_level(logging.DEBUG)
    secrets_seen: list[str] = [s.token, s.other_token, wrong_key]
    for channel, instance in (
        ("ibm_quantum_platform", s.instance_crn),
        ("ibm_quantum", s.instance_hgp),
    ):
        service = ProviderService(channel=channel, url=s.url, token=s.token, instance=instance)
        service.backends()
        job = service.client.create_job(
            program_id="sampler",
            backend="rest_simulator",
            params={"pubs": [[BELL, None, 10]], "version": 2},
        )
        service.job(job["id"]).result(timeout=120)
        auth = service.client.auth
        for name in ("_token", "_access", "_apikey", "_api_token"):
            value = getattr(auth, name, None)
            if isinstance(value, str) and len(value) > 8:
                secrets_seen.append(value)
        service.logout()
        with pytest.raises(Exception):  # noqa: B017 - any auth error; the point is the logs
            service.client.jobs(limit=1)
    bad = ProviderService(url=s.url, token=wrong_key, instance=s.instance_crn)
    with pytest.raises(Exception):  # noqa: B017
        bad.backends()
    # raw HTTP with every kind of credential, including failures
    access = _patient(s.classic_login)
    bearer = _patient(s.iam_token)
    secrets_seen += [access, access.split(".", 1)[1], bearer, bearer.split(".")[2]]
    for headers in (
        {"X-Access-Token": access},
        {"Authorization": f"Bearer {bearer}"},
        {"Authorization": f"apikey {wrong_key}"},
        {"X-Access-Token": access + "x"},
    ):
        _patient(requests.get, f"{s.runtime_url}/jobs?limit=1", headers=headers, timeout=30)
    server_log = s.log_text()
    assert "DEBUG" in server_log, "the server was meant to log at DEBUG"
    client_log = (
        "\n".join(f"{r.name} {r.getMessage()} {r.args!r}" for r in caplog.records) + caplog.text
    )
    assert any(r.levelno == logging.DEBUG for r in caplog.records)
    for secret in secrets_seen:
        assert secret not in server_log, "a credential is in the server log"
        assert secret not in client_log, "a credential is in the client log"


def test_saved_credentials_file_is_private(tmp_path, monkeypatch):
    path = tmp_path / "cfg" / "accounts.json"
    monkeypatch.setenv("QISKIT_REST_CONFIG_FILE", str(path))
    os.umask(0o022)
    ProviderService.save_account(
        token="secret-" + uuid.uuid4().hex, url="http://127.0.0.1:1", name="a", overwrite=True
    )
    assert _mode(path) == 0o600
    ProviderService.save_account(
        token="secret-" + uuid.uuid4().hex, url="http://127.0.0.1:2", name="b", overwrite=True
    )
    assert _mode(path) == 0o600  # rewritten, still private
    path.chmod(0o644)  # even a file someone loosened is tightened on the next save
    ProviderService.save_account(
        token="secret-" + uuid.uuid4().hex, url="http://127.0.0.1:3", name="c", overwrite=True
    )
    assert _mode(path) == 0o600


def test_credential_guessing_is_rate_limited(limited_server):
    """Failed authentications count against the caller's address: guessing keys gets 429."""
    statuses = []
    for i in range(40):
        r = requests.get(
            f"{limited_server.runtime_url}/jobs",
            headers={"Authorization": f"apikey guess-{i}"},
            timeout=30,
        )
        statuses.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["Retry-After"]) >= 1
            break
    assert set(statuses) <= {401, 429} and statuses[-1] == 429, statuses
