"""The server's edge under attack (issue 15): each attack bounded in time and count.

Raw sockets (every one with a timeout) play the attacker, so the test controls exactly what is
sent and when; each test uses its own 127.0.0.x source address, so the per-address counters of
one test (connection cap, failed-login throttling) never touch another's. One server for the
module, started with short timeouts so each attack is decided in seconds.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import time
from pathlib import Path

import pytest
import requests

pytest.importorskip("fastapi")

BODY_TIMEOUT = 2.0
HEADER_TIMEOUT = 3.0
MAX_CONNECTIONS = 8


@pytest.fixture(scope="module")
def edge_server(_session_factory):
    """A server with short body/header timeouts and a small per-client connection cap."""
    return _session_factory.start(
        workers=1,
        args=[
            "--body-timeout", str(BODY_TIMEOUT),
            "--header-timeout", str(HEADER_TIMEOUT),
            "--max-connections-per-client", str(MAX_CONNECTIONS),
        ],
    )  # fmt: skip


def _addr(server) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def connect(server, source: str, timeout: float = 10.0) -> socket.socket:
    """A TCP connection to the server from ``source`` (a 127.0.0.x address)."""
    return socket.create_connection(_addr(server), timeout=timeout, source_address=(source, 0))


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 response (status, lower-cased headers, body) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"connection closed before a response head: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed the connection (EOF or reset) before the socket's timeout."""
    try:
        while True:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def rss_bytes(pid: int) -> int:
    """The resident set size of process ``pid`` (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# ------------------------------------------------------------------- A: auth before the body
def test_wrong_key_with_huge_body_is_refused_without_reading_it(edge_server):
    """Eight 50 MiB uploads with a wrong key: 401 at once, connection closed, no memory held."""
    s = edge_server
    before = rss_bytes(s.process.pid)
    socks = []
    try:
        for _ in range(8):
            sock = connect(s, "127.0.0.10", timeout=5.0)
            socks.append(sock)
            sock.sendall(
                head(
                    "POST",
                    "/api/v1/jobs",
                    {
                        "Authorization": "apikey wrong-key-" + "x" * 20,
                        "Content-Type": "application/json",
                        "Content-Length": str(50 * 1024 * 1024),
                    },
                )
                + b'{"program_id": "sampler", "params": {"pubs": ['
            )
        started = time.monotonic()
        for sock in socks:
            status, headers, body = read_response(sock)
            assert status == 401, body
            assert json.loads(body)["errors"][0]["code"] == "1201"
            assert headers.get("connection") == "close"
            assert closed_by_server(sock)
        assert time.monotonic() - started < 5.0
        grown = rss_bytes(s.process.pid) - before
        assert grown < 20 * 1024 * 1024, f"API process grew by {grown / 2**20:.1f} MiB"
    finally:
        for sock in socks:
            sock.close()


def test_trickling_body_gets_408_and_is_closed(edge_server):
    """A body slower than --body-timeout for the whole body: 408, connection closed."""
    s = edge_server
    with connect(s, "127.0.0.11", timeout=BODY_TIMEOUT + 8) as sock:
        sock.sendall(
            head(
                "POST",
                "/api/v1/jobs",
                {
                    "Authorization": f"apikey {s.token}",
                    "Content-Type": "application/json",
                    "Content-Length": "1000",
                },
            )
            + b'{"program_id"'
        )
        started = time.monotonic()
        for _ in range(3):  # keep trickling: each byte well inside any per-read timeout
            time.sleep(0.5)
            sock.sendall(b" ")
        status, headers, body = read_response(sock)
        took = time.monotonic() - started
        assert status == 408, body
        assert "body" in json.loads(body)["errors"][0]["message"]
        assert BODY_TIMEOUT - 0.5 < took < BODY_TIMEOUT + 5
        assert closed_by_server(sock)
    assert requests.get(f"{s.url}/health", timeout=10).status_code == 200


@pytest.mark.parametrize("sent", [b"", b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"])
def test_slow_request_head_is_closed(edge_server, sent):
    """Nothing, or a head that never completes: closed after --header-timeout."""
    with connect(edge_server, "127.0.0.12", timeout=HEADER_TIMEOUT + 6) as sock:
        started = time.monotonic()
        sock.sendall(sent)
        assert closed_by_server(sock)
        assert HEADER_TIMEOUT - 0.5 < time.monotonic() - started < HEADER_TIMEOUT + 5


def test_connections_per_client_address_are_capped(edge_server):
    """One address holding --max-connections-per-client idle connections: the next is closed,
    while another address is served; once they close, the first address is served again."""
    s = edge_server
    held = [connect(s, "127.0.0.13", timeout=5.0) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.3)  # the server has accepted them all
        with connect(s, "127.0.0.13", timeout=5.0) as extra:
            try:
                extra.sendall(head("GET", "/health", {}))
            except (BrokenPipeError, ConnectionResetError):
                pass
            assert closed_by_server(extra)
        conn = http.client.HTTPConnection(*_addr(s), timeout=10, source_address=("127.0.0.14", 0))
        conn.request("GET", "/health")
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    conn = http.client.HTTPConnection(*_addr(s), timeout=10, source_address=("127.0.0.13", 0))
    conn.request("GET", "/health")
    assert conn.getresponse().status == 200
    conn.close()


# ------------------------------------------------------------------ B: failed-login throttling
def call(
    server,
    source: str,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request from ``source`` (a 127.0.0.x address): status, headers, body."""
    conn = http.client.HTTPConnection(*_addr(server), timeout=15, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def iam_login(server, source: str, key: str) -> tuple[int, dict[str, str], bytes]:
    form = f"grant_type=urn:ibm:params:oauth:grant-type:apikey&apikey={key}".encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return call(server, source, "POST", "/identity/token", headers, form)


def classic_login(server, source: str, key: str) -> tuple[int, dict[str, str], bytes]:
    body = json.dumps({"apiToken": key}).encode()
    headers = {"Content-Type": "application/json"}
    return call(server, source, "POST", "/api/users/loginWithToken", headers, body)


def bearer_list(server, source: str, key: str) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"Bearer {key}"}
    return call(server, source, "GET", "/api/v1/jobs?limit=1", headers)


@pytest.mark.parametrize(
    "attempt,source,friend",
    [
        (iam_login, "127.0.0.20", "127.0.0.30"),
        (classic_login, "127.0.0.21", "127.0.0.31"),
        (bearer_list, "127.0.0.22", "127.0.0.32"),
    ],
    ids=["identity-token", "loginWithToken", "bearer"],
)
def test_failed_logins_from_one_address_get_429(edge_server, attempt, source, friend):
    """30 wrong keys from one address: 401s, then 429 with Retry-After (even for the right key
    from that address, which is not checked); the right key from another address still works."""
    s = edge_server
    statuses = []
    started = time.monotonic()
    for i in range(30):
        status, headers, body = attempt(s, source, f"wrong-key-{i:04d}-{source}")
        statuses.append(status)
        if status == 429:
            assert int(headers["retry-after"]) >= 1
            assert "failed logins" in json.loads(body)["errors"][0]["message"]
    assert time.monotonic() - started < 30
    assert set(statuses) == {401, 429}, statuses
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429] * 20, statuses
    assert attempt(s, source, s.token)[0] == 429
    status, _, body = attempt(s, friend, s.token)
    assert status == 200, body


def test_one_wrong_key_from_many_addresses_gets_429(edge_server):
    """The same presented key failing from 12 addresses: throttled per key too."""
    s = edge_server
    statuses = [
        classic_login(s, f"127.0.1.{i}", "the-same-wrong-key-0123456789")[0] for i in range(12)
    ]
    assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429], statuses
    assert classic_login(s, "127.0.1.200", s.token)[0] == 200


@pytest.mark.parametrize(
    "flag,value", [("--token", "short-token"), ("--extra-token", "short:x/y/z")]
)
def test_serve_refuses_a_short_token(tmp_path, flag, value):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "qiskit_rest_provider", "serve", "--port", "0",
         "--data-dir", str(tmp_path / "data"), flag, value],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert flag in proc.stderr and "16 characters" in proc.stderr


# ------------------------------------------------------------------ C: odd input → 4xx naming it
BELL = (
    'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] meas; h q[0]; cx q[0], q[1]; '
    "meas[0] = measure q[0]; meas[1] = measure q[1];"
)


def _job(**params) -> dict:
    return {
        "program_id": "sampler",
        "backend": "rest_simulator",
        "params": {"pubs": [[BELL, None, 10]], "version": 2, **params},
    }


def _check_400(r: requests.Response, field: str) -> None:
    assert r.status_code == 400, r.text
    assert field in r.json()["errors"][0]["message"], r.text


def test_1500_repeated_tags_parameters_are_400(edge_server):
    s = edge_server
    query = "&".join(["tags=t"] * 1500)
    r = requests.get(
        f"{s.runtime_url}/jobs?{query}", headers={"Authorization": f"apikey {s.token}"}, timeout=30
    )
    _check_400(r, "tags")


def test_options_nested_300_levels_is_400(edge_server):
    s = edge_server
    deep: dict = {}
    for _ in range(300):
        deep = {"x": deep}
    r = requests.post(
        f"{s.runtime_url}/jobs",
        headers={"Authorization": f"apikey {s.token}"},
        json=_job(options={"experimental": deep}),
        timeout=30,
    )
    _check_400(r, "params.options.experimental")


def _tag_filter_is_exact(s) -> None:
    headers = {"Authorization": f"apikey {s.token}"}
    tricky = 'x","y'
    r = requests.post(f"{s.runtime_url}/jobs", headers=headers, json={**_job(), "tags": [tricky]},
                      timeout=60)  # fmt: skip
    assert r.status_code == 200, r.text
    job_id = r.json()["id"]

    def ids(tag: str) -> list[str]:
        page = requests.get(f"{s.runtime_url}/jobs", headers=headers, params={"tags": tag},
                            timeout=30).json()  # fmt: skip
        return [j["id"] for j in page["jobs"]]

    assert job_id in ids(tricky)
    assert job_id not in ids("y") and job_id not in ids("x") and job_id not in ids('X","Y')


def test_tag_filter_is_exact(edge_server):
    _tag_filter_is_exact(edge_server)


def test_listing_with_params_is_page_capped(edge_server):
    s = edge_server
    page = requests.get(
        f"{s.runtime_url}/jobs",
        headers={"Authorization": f"apikey {s.token}"},
        params={"exclude_params": "false", "limit": 1000},
        timeout=30,
    ).json()
    assert page["limit"] == 50
    assert all("params" not in j for j in requests.get(
        f"{s.runtime_url}/jobs", headers={"Authorization": f"apikey {s.token}"}, timeout=30
    ).json()["jobs"])  # fmt: skip


def test_postgres_cost_2_31_and_exact_tags(server_factory, db_option):
    """On PostgreSQL (INTEGER columns) a cost of 2**31 is a 400, and tag matching is exact."""
    from conftest import PostgresSchemas, postgres_available

    url = db_option or os.environ.get(
        "QRP_TEST_POSTGRES_URL", "postgresql+psycopg://root@127.0.0.1:5432/test"
    )
    reason = postgres_available(url)
    if reason:
        pytest.skip(reason)
    schemas = None if db_option else PostgresSchemas(url)
    try:
        s = server_factory.start(workers=1, db=schemas.new_url() if schemas else None)
        _cost_and_tags(s)
    finally:
        if schemas:
            server_factory.cleanup()
            schemas.drop_all()


def _cost_and_tags(s) -> None:
    r = requests.post(
        f"{s.runtime_url}/jobs",
        headers={"Authorization": f"apikey {s.token}"},
        json={**_job(), "cost": 2**31},
        timeout=30,
    )
    _check_400(r, "cost")
    _tag_filter_is_exact(s)
