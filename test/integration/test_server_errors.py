"""Bad input and bad credentials: the right 4xx, a D10 body naming the problem, no job created."""

from __future__ import annotations

import uuid

import pytest
import requests

pytest.importorskip("fastapi")

BELL = (
    'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] meas; h q[0]; cx q[0], q[1]; '
    "meas[0] = measure q[0]; meas[1] = measure q[1];"
)


def _check_error(r: requests.Response, status: int, *words: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"errors", "trace", "status_code"} and body["status_code"] == status
    err = body["errors"][0]
    assert {"code", "message", "more_info"} <= set(err)
    for word in words:
        assert word in err["message"], (word, err["message"])


def _job(**over):
    body = {
        "program_id": "sampler",
        "backend": "rest_simulator",
        "params": {"pubs": [[BELL, None, 10]], "version": 2},
    }
    body.update(over)
    return body


BAD_JOBS = [
    (_job(program_id="nope"), 404, ["program_id"]),
    (_job(backend="nope"), 404, ["nope"]),
    (_job(backend=None), 400, ["backend"]),
    (_job(params="x"), 400, ["params"]),
    (
        _job(params={"pubs": [["OPENQASM 3.0; qubit[1] q; nonsense q[0];"]], "version": 2}),
        400,
        ["pubs[0]"],
    ),
    (_job(params={"pubs": [[BELL, None, 0]], "version": 2}), 400, ["pubs[0]"]),
    (_job(params={"pubs": [[BELL, None, -5]], "version": 2}), 400, ["pubs[0]"]),
    (_job(params={"pubs": [[BELL, None, 10**9]], "version": 2}), 400, ["pubs[0]"]),
    (_job(params={"pubs": [[BELL]], "version": 2, "options": {"bogus": 1}}), 400, ["bogus"]),
    (_job(backend="rest_line_5q"), 400, ["pubs[0]"]),  # h/cx are not ISA there
    (_job(tags="x"), 400, ["tags"]),
    (_job(tags=["t"] * 100), 400, ["tags"]),
    (_job(log_level="LOUD"), 400, ["log_level"]),
    (_job(cost=-1), 400, ["cost"]),
    (_job(start_session="maybe"), 400, ["start_session"]),
    (_job(session_id="no-such-session"), 404, ["no-such-session"]),
    (_job(hub="x", group="y", project="z"), 403, ["hub/group/project"]),
]


@pytest.mark.parametrize("body,status,words", BAD_JOBS)
def test_bad_job_is_rejected_and_nothing_stored(reference_server, body, status, words):
    base = reference_server.runtime_url
    headers = {"Authorization": f"apikey {reference_server.token}"}
    tag = f"bad-{uuid.uuid4().hex[:8]}"
    if "tags" not in body:
        body = dict(body, tags=[tag])
    r = requests.post(f"{base}/jobs", headers=headers, json=body, timeout=60)
    _check_error(r, status, *words)
    listing = requests.get(f"{base}/jobs", headers=headers, params={"tags": tag}, timeout=30)
    assert listing.json()["count"] == 0


def test_malformed_requests(reference_server):
    base = reference_server.runtime_url
    headers = {
        "Authorization": f"apikey {reference_server.token}",
        "Content-Type": "application/json",
    }
    _check_error(
        requests.post(f"{base}/jobs", headers=headers, data=b"{not json", timeout=30), 400, "JSON"
    )
    _check_error(
        requests.post(f"{base}/jobs", headers=headers, data=b"[1, 2]", timeout=30), 400, "object"
    )
    _check_error(requests.post(f"{base}/jobs", headers=headers, data=b"", timeout=30), 400)
    _check_error(
        requests.get(f"{base}/jobs", headers=headers, params={"limit": "x"}, timeout=30),
        400,
        "limit",
    )
    _check_error(requests.get(f"{base}/jobs/nope", headers=headers, timeout=30), 404, "nope")
    _check_error(requests.get(f"{base}/jobs/nope/results", headers=headers, timeout=30), 404)
    _check_error(requests.get(f"{reference_server.url}/no/such/path", timeout=30), 404)
    _check_error(
        requests.post(
            f"{reference_server.url}/identity/token",
            data={"grant_type": "password", "apikey": "x"},
            timeout=30,
        ),
        400,
        "grant_type",
    )
    _check_error(
        requests.post(
            f"{reference_server.url}/api/users/loginWithToken",
            json={"apiToken": "wrong"},
            timeout=30,
        ),
        401,
    )
    assert requests.get(f"{reference_server.url}/health", timeout=30).status_code == 200
    openapi = requests.get(f"{reference_server.url}/openapi.json", timeout=30)
    assert openapi.status_code == 200 and "/api/v1/jobs" in openapi.json()["paths"]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Access-Token": "nope"},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"},
        {"Authorization": "apikey wrong"},
        {"Authorization": "Basic abc"},
    ],
)
def test_bad_credentials_get_401(reference_server, headers):
    r = requests.get(f"{reference_server.runtime_url}/jobs", headers=headers, timeout=30)
    _check_error(r, 401)


def test_security_limits(server_factory):
    """Body cap → 413, per-token rate limit → 429 + Retry-After, CORS closed, no token in logs."""
    server = server_factory.start(
        workers=1, args=["--max-body-bytes", "4096", "--rate-limit", "2", "--log-level", "debug"]
    )
    base = server.runtime_url
    token = server.token
    jwt_token = server.iam_token()
    access = server.classic_login()
    headers = {"Authorization": f"Bearer {jwt_token}"}
    big = {
        "program_id": "sampler",
        "backend": "rest_simulator",
        "params": {"pubs": [[BELL + " " * 5000]], "version": 2},
    }
    _check_error(requests.post(f"{base}/jobs", headers=headers, json=big, timeout=30), 413, "4096")
    preflight = requests.options(
        f"{base}/jobs",
        timeout=30,
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in {k.lower() for k in preflight.headers}
    statuses = []
    for _ in range(15):
        r = requests.get(f"{base}/jobs?limit=1", headers={"X-Access-Token": access}, timeout=30)
        statuses.append(r.status_code)
        if r.status_code == 429:
            _check_error(r, 429, "rate limit")
            assert int(r.headers["Retry-After"]) >= 1
            break
    assert 429 in statuses
    log = server.log_text()
    assert "DEBUG" in log or "debug" in log
    for secret in (token, jwt_token, access, access.split(".")[1]):
        assert secret not in log
