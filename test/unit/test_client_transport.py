"""Transport and authentication of ``client/`` against a local fault-injecting HTTP server.

The server here is a transport fake for what a real server cannot be made to do on demand:
dropped connections, 5xx bursts, 429 + Retry-After, slow answers past the read timeout, truncated
bodies, HTML error pages, expiring tokens. Every test checks recovery within the retry bound, or a
clear exception within it — never a hang (each test has a short pytest timeout).
"""

from __future__ import annotations

import base64
import collections
import json
import logging
import socket
import struct
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from qiskit_rest_provider.account import Account
from qiskit_rest_provider.client import RetryPolicy, RuntimeClient, jwt_times
from qiskit_rest_provider.exceptions import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    RateLimitError,
    RequestError,
)

pytestmark = pytest.mark.timeout(30)

API_KEY = "apikey-" + uuid.uuid4().hex
CLASSIC_TOKEN = "classictoken-" + uuid.uuid4().hex
FAST = RetryPolicy(
    max_retries=4, backoff_base=0.01, backoff_max=0.05, retry_after_max=0.2, max_elapsed=5
)


def make_jwt(iat: float, exp: float) -> str:
    def b64(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    nonce = uuid.uuid4().hex
    return f"{b64({'alg': 'HS256'})}.{b64({'iat': int(iat), 'exp': int(exp), 'n': nonce})}.sig"


class Recorded:
    def __init__(self, method, path, query, headers, body):
        self.method, self.path, self.query, self.headers, self.body = (
            method,
            path,
            query,
            headers,
            body,
        )


class FaultServer:
    """A tiny Runtime-REST-shaped server whose next answers per route can be scripted."""

    def __init__(self):
        self.actions: dict[tuple[str, str], collections.deque] = collections.defaultdict(
            collections.deque
        )
        self.requests: list[Recorded] = []
        self.valid: set[str] = set()
        self.jobs_by_key: dict[str, str] = {}
        self.jobs_created = 0
        self.token_ttl = 3600.0
        self.token_age = 0.0  # how old a freshly issued token claims to be
        self.iam_enabled = True
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                outer._handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None  # clients hang up on purpose
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def script(self, method: str, path: str, *actions):
        self.actions[(method, path)].extend(actions)

    def count(self, method: str, path: str) -> int:
        return sum(1 for r in self.requests if r.method == method and r.path == path)

    def of(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == method and r.path == path]

    # -- request handling ---------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler):
        parsed = urlparse(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        rec = Recorded(h.command, parsed.path, parse_qs(parsed.query), dict(h.headers), body)
        with self.lock:
            self.requests.append(rec)
            queue = self.actions.get((h.command, parsed.path))
            action = queue.popleft() if queue else ("default",)
        kind = action[0]
        if kind == "drop":  # read the request, answer nothing, close
            h.close_connection = True
            return
        if kind == "reset":
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.close_connection = True
            return
        if kind == "status":
            _, code, headers, payload = (*action, None, None)[:4]
            self._send(h, code, payload, headers or {})
            return
        if kind == "slow":
            time.sleep(action[1])
        status, payload, headers = self._default(rec)
        if kind == "process_drop":  # the request takes effect, the answer is lost
            h.close_connection = True
            return
        if kind == "truncate":
            data = json.dumps(payload).encode()
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data) + 50))
            h.end_headers()
            h.wfile.write(data[: len(data) // 2])
            h.wfile.flush()
            h.close_connection = True
            return
        self._send(h, status, payload, headers)

    @staticmethod
    def _send(h, code, payload, headers):
        if payload is None:
            data = b""
        elif isinstance(payload, bytes):
            data = payload
        else:
            data = json.dumps(payload).encode()
            headers = {"Content-Type": "application/json", **headers}
        h.send_response(code)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        if data:
            h.wfile.write(data)

    def _authorized(self, rec: Recorded) -> bool:
        auth = rec.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[7:] in self.valid
        if auth == f"apikey {API_KEY}":
            return True
        return rec.headers.get("X-Access-Token", "") in self.valid

    def _default(self, rec: Recorded):
        path, method = rec.path, rec.method
        if path == "/identity/token" and method == "POST":
            if not self.iam_enabled:
                return 404, {"errors": [{"code": "not_found", "message": "no such route"}]}, {}
            form = parse_qs(rec.body.decode())
            if form.get("apikey") != [API_KEY]:
                return 400, {"errors": [{"code": "BXNIM0415E", "message": "bad key"}]}, {}
            now = time.time() - self.token_age
            token = make_jwt(now, now + self.token_ttl)
            self.valid.add(token)
            return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600}, {}
        if path == "/api/users/loginWithToken" and method == "POST":
            if json.loads(rec.body).get("apiToken") != CLASSIC_TOKEN:
                return 401, {"error": {"code": 401, "message": "login failed"}}, {}
            access = "access-" + uuid.uuid4().hex
            self.valid.add(access)
            return 200, {"id": access, "ttl": 1209600, "userId": "u1"}, {}
        if path == "/api/users/logout" and method == "POST":
            self.valid.discard(rec.headers.get("X-Access-Token", ""))
            auth = rec.headers.get("Authorization", "")
            self.valid.discard(auth[7:] if auth.startswith("Bearer ") else "")
            return 200, None, {}
        if not self._authorized(rec):
            return (
                401,
                {
                    "errors": [{"code": "unauthorized", "message": "invalid token"}],
                    "trace": "t-401",
                    "status_code": 401,
                },
                {},
            )
        rt = path.removeprefix("/api/v1").removeprefix("/runtime")
        if rt == "/backends":
            return 200, {"devices": [{"name": "b1", "qubits": 5, "status": {"name": "online"}}]}, {}
        if rt == "/jobs" and method == "POST":
            key = rec.headers.get("Idempotency-Key")
            with self.lock:
                if key and key in self.jobs_by_key:
                    job_id = self.jobs_by_key[key]
                else:
                    self.jobs_created += 1
                    job_id = f"job-{self.jobs_created}"
                    if key:
                        self.jobs_by_key[key] = job_id
            return 200, {"id": job_id, "backend": json.loads(rec.body)["backend"]}, {}
        if rt == "/sessions" and method == "POST":
            return 200, {"id": "s-1", **json.loads(rec.body)}, {}
        if rt.startswith("/jobs/") and rt.endswith("/cancel"):
            return 409, {"errors": [{"code": "conflict", "message": "job is final"}]}, {}
        if rt.startswith("/jobs/") and method == "GET":
            return 200, {"id": rt.split("/")[2], "state": {"status": "Cancelled"}}, {}
        return 200, {"ok": True, "path": rt}, {}


@pytest.fixture
def server():
    srv = FaultServer()
    yield srv
    srv.close()


def platform_client(server: FaultServer, **kw) -> RuntimeClient:
    account = Account("ibm_quantum_platform", server.url, API_KEY, instance="crn:v1:x:y::")
    kw.setdefault("retry", FAST)
    kw.setdefault("timeout", 2.0)
    client = RuntimeClient(account, connect_timeout=1.0, **kw)
    client.transport._sleep = _Sleeps()
    return client


def classic_client(server: FaultServer, **kw) -> RuntimeClient:
    account = Account("ibm_quantum", server.url, CLASSIC_TOKEN, instance="h/g/p")
    kw.setdefault("retry", FAST)
    kw.setdefault("timeout", 2.0)
    client = RuntimeClient(account, connect_timeout=1.0, **kw)
    client.transport._sleep = _Sleeps()
    return client


class _Sleeps(list):
    """Records the backoff sleeps and sleeps them (they are tiny with FAST)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        time.sleep(seconds)


# ---------------------------------------------------------------------- happy path and headers


def test_headers_and_bearer_token(server):
    client = platform_client(server, app_name="myapp")
    assert client.backends() == [{"name": "b1", "qubits": 5, "status": {"name": "online"}}]
    (req,) = server.of("GET", "/api/v1/backends")
    assert req.headers["IBM-API-Version"] == "2026-04-15"
    assert req.headers["X-Qx-Client-Application"].startswith(
        "qiskit-version-2/qiskit-rest-provider-"
    )
    assert req.headers["X-Qx-Client-Application"].endswith("/myapp")
    assert req.headers["Service-CRN"] == "crn:v1:x:y::"
    assert req.headers["Authorization"].startswith("Bearer ")
    (tok,) = server.of("POST", "/identity/token")
    assert parse_qs(tok.body.decode())["grant_type"] == ["urn:ibm:params:oauth:grant-type:apikey"]
    # the token is reused: one exchange for several requests
    client.backends()
    assert server.count("POST", "/identity/token") == 1


def test_no_service_crn_without_instance(server):
    client = RuntimeClient(Account("ibm_cloud", server.url, API_KEY), retry=FAST)
    client.backends()
    (req,) = server.of("GET", "/api/v1/backends")
    assert "Service-CRN" not in req.headers


def test_names_only_listing_is_tolerated(server):
    server.script("GET", "/api/v1/backends", ("status", 200, {}, {"devices": ["x", "y"]}))
    assert platform_client(server).backends() == [{"name": "x"}, {"name": "y"}]


def test_post_body_is_json_with_content_type(server):
    client = platform_client(server)
    job = client.create_job(
        program_id="sampler", backend="b1", params={"pubs": []}, tags=["t"], session_id="s1"
    )
    assert job == {"id": "job-1", "backend": "b1"}
    (req,) = server.of("POST", "/api/v1/jobs")
    assert req.headers["Content-Type"] == "application/json"
    body = json.loads(req.body)
    assert body == {
        "program_id": "sampler",
        "backend": "b1",
        "params": {"pubs": []},
        "tags": ["t"],
        "session_id": "s1",
    }
    uuid.UUID(req.headers["Idempotency-Key"])  # a uuid


def test_pre_encoded_params_are_spliced(server):
    client = platform_client(server)
    client.create_job(program_id="sampler", backend="b1", params=b'{"pubs": [1, 2]}')
    (req,) = server.of("POST", "/api/v1/jobs")
    assert json.loads(req.body)["params"] == {"pubs": [1, 2]}


# ---------------------------------------------------------------------- retries


def test_503_burst_recovers(server):
    server.script("GET", "/api/v1/backends", *[("status", 503)] * 3)
    client = platform_client(server)
    assert client.backends()[0]["name"] == "b1"
    assert server.count("GET", "/api/v1/backends") == 4
    assert len(client.transport._sleep) == 3


def test_502_forever_gives_clear_error_within_bound(server):
    server.script(
        "GET", "/api/v1/jobs/j1", *[("status", 502, {}, b"<html>bad gateway</html>")] * 20
    )
    client = platform_client(server)
    with pytest.raises(RequestError) as info:
        client.job("j1")
    assert info.value.status_code == 502
    assert "bad gateway" in str(info.value) and "<html>" not in str(info.value)
    assert server.count("GET", "/api/v1/jobs/j1") == FAST.max_retries + 1


def test_backoff_grows_with_jitter():
    policy = RetryPolicy(backoff_base=1.0, backoff_max=8.0)
    for retry, nominal in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (5, 8.0)]:
        for _ in range(20):
            assert nominal / 2 <= policy.backoff(retry) <= nominal


def test_429_honours_retry_after_capped(server):
    server.script(
        "GET",
        "/api/v1/backends",
        ("status", 429, {"Retry-After": "0.05"}, {"errors": [{"code": "1202", "message": "slow"}]}),
        ("status", 429, {"Retry-After": "120"}, None),
    )
    client = platform_client(server)
    assert client.backends()
    assert client.transport._sleep == [0.05, FAST.retry_after_max]


def test_429_of_a_spent_quota_is_raised_at_once(server):
    quota = {"errors": [{"code": "quota_exceeded", "message": "quota max_shots_per_day ..."}]}
    server.script("GET", "/api/v1/backends", ("status", 429, {"Retry-After": "3600"}, quota))
    client = platform_client(server)
    with pytest.raises(RateLimitError) as info:
        client.backends()
    assert "max_shots_per_day" in str(info.value) and info.value.code == "quota_exceeded"
    assert client.transport._sleep == [] and server.count("GET", "/api/v1/backends") == 1


def test_429_is_retried_even_for_non_idempotent_post(server):
    server.script("POST", "/api/v1/sessions", ("status", 429, {"Retry-After": "0"}, None))
    client = platform_client(server)
    assert client.create_session(backend="b1", mode="batch")["id"] == "s-1"
    assert server.count("POST", "/api/v1/sessions") == 2


def test_429_forever_raises_rate_limit_error(server):
    server.script("GET", "/api/v1/backends", *[("status", 429, {"Retry-After": "0"}, None)] * 10)
    with pytest.raises(RateLimitError) as info:
        platform_client(server).backends()
    assert info.value.status_code == 429


def test_patch_is_never_retried(server):
    server.script("PATCH", "/api/v1/sessions/s1", ("status", 503))
    with pytest.raises(RequestError) as info:
        platform_client(server).close_session("s1")
    assert info.value.status_code == 503
    assert server.count("PATCH", "/api/v1/sessions/s1") == 1


def test_dropped_connection_on_get_is_retried(server):
    server.script("GET", "/api/v1/jobs/j1", ("drop",), ("reset",))
    client = platform_client(server)
    assert client.job("j1")["id"] == "j1"
    assert server.count("GET", "/api/v1/jobs/j1") == 3


def test_job_creation_retry_keeps_idempotency_key_and_creates_one_job(server):
    # First attempt is processed but its answer lost; then a 502; then success.
    server.script("POST", "/api/v1/jobs", ("process_drop",), ("status", 502))
    client = platform_client(server)
    job = client.create_job(program_id="sampler", backend="b1", params={"pubs": []})
    reqs = server.of("POST", "/api/v1/jobs")
    assert len(reqs) == 3
    assert len({r.headers["Idempotency-Key"] for r in reqs}) == 1
    assert server.jobs_created == 1 and job["id"] == "job-1"
    # a second call is a new job with a new key
    job2 = client.create_job(program_id="sampler", backend="b1", params={"pubs": []})
    assert job2["id"] == "job-2"
    assert (
        server.of("POST", "/api/v1/jobs")[-1].headers["Idempotency-Key"]
        != reqs[0].headers["Idempotency-Key"]
    )


def test_session_creation_not_retried_after_a_drop(server):
    server.script("POST", "/api/v1/sessions", ("drop",))
    with pytest.raises(RequestError) as info:
        platform_client(server).create_session(backend="b1")
    assert "not retried" in str(info.value) and info.value.status_code is None
    assert server.count("POST", "/api/v1/sessions") == 1


def test_connection_refused_is_retried_then_raises(server):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    client = RuntimeClient(Account("ibm_cloud", f"http://127.0.0.1:{port}", API_KEY), retry=FAST)
    client.transport._sleep = _Sleeps()
    with pytest.raises(RequestError) as info:
        client.backends()
    assert "could not connect" in str(info.value)
    assert f"after {FAST.max_retries + 1} attempt(s)" in str(info.value)


def test_connection_refused_by_a_never_reached_service_fails_fast():
    """Nothing ever answered there: the default policy gives up in ~1.5 s, naming the URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    client = RuntimeClient(Account("ibm_cloud", f"http://127.0.0.1:{port}", API_KEY))
    started = time.monotonic()
    with pytest.raises(RequestError) as info:
        client.backends()
    elapsed = time.monotonic() - started
    assert elapsed < 3.0, elapsed  # it was ~12 s: every retry of the default policy
    message = str(info.value)
    assert f"connection refused by http://127.0.0.1:{port}" in message
    assert "is the server running?" in message and info.value.status_code is None


def test_connection_refused_after_the_service_answered_gets_every_retry(server):
    """A service that answered before and now refuses is restarting: ride it out."""
    client = platform_client(server)
    assert [b["name"] for b in client.backends()]
    server.close()  # the same origin now refuses connections
    client.transport.session.close()  # no pooled keep-alive connection to fall back on
    with pytest.raises(RequestError) as info:
        client.backends()
    assert f"after {FAST.max_retries + 1} attempt(s)" in str(info.value)
    assert "could not connect" in str(info.value)


def test_read_timeout_retried_then_recovers(server):
    server.script("GET", "/api/v1/jobs/j1", ("slow", 1.5))
    client = platform_client(server, timeout=0.5)
    assert client.job("j1")["id"] == "j1"
    assert server.count("GET", "/api/v1/jobs/j1") >= 2  # (more only on a very loaded machine)


def test_read_timeout_forever_raises_within_bound(server):
    server.script("GET", "/api/v1/jobs/j1", *[("slow", 0.6)] * 3)
    policy = RetryPolicy(max_retries=2, backoff_base=0.01, backoff_max=0.01)
    client = platform_client(server, timeout=0.2, retry=policy)
    with pytest.raises(RequestError) as info:
        client.job("j1")
    assert "read timeout" in str(info.value) and "after 3 attempt(s)" in str(info.value)


def test_long_poll_read_timeout_exceeds_wait(server):
    server.script("GET", "/api/v1/jobs/j1", ("slow", 0.6))
    client = platform_client(server, timeout=0.3)
    client.job("j1", wait=0.5)
    reqs = server.of("GET", "/api/v1/jobs/j1")
    assert len(reqs) == 1  # no read timeout although the answer took longer than `timeout`
    assert reqs[0].query["wait"] == ["0.5"] and reqs[0].query["exclude_params"] == ["true"]


def test_truncated_body_is_retried(server):
    server.script("GET", "/api/v1/backends", ("truncate",))
    client = platform_client(server)
    assert client.backends()[0]["name"] == "b1"
    assert server.count("GET", "/api/v1/backends") == 2


def test_non_json_success_body_gives_clear_error(server):
    server.script("GET", "/api/v1/jobs/j1", *[("status", 200, {}, b"<html>oops</html>")] * 2)
    with pytest.raises(RequestError, match="not JSON"):
        platform_client(server).job("j1")


def test_cancel_retry_after_success_is_not_an_error(server):
    # The cancel's first answer is lost; the retry answers 409 and the job is Cancelled.
    server.script("POST", "/api/v1/jobs/j1/cancel", ("process_drop",))
    platform_client(server).cancel_job("j1")
    assert server.count("POST", "/api/v1/jobs/j1/cancel") == 2


# ---------------------------------------------------------------------- error mapping


def test_d10_error_body_is_mapped(server):
    body = {
        "errors": [{"code": "job_not_found", "message": "Job j9 not found", "more_info": ""}],
        "trace": "abc123",
        "status_code": 404,
    }
    server.script("GET", "/api/v1/jobs/j9", ("status", 404, {}, body))
    with pytest.raises(NotFoundError) as info:
        platform_client(server).job("j9")
    err = info.value
    assert (err.status_code, err.code, err.trace) == (404, "job_not_found", "abc123")
    assert "Job j9 not found" in str(err) and "GET /jobs/j9" in str(err)


def test_classic_error_body_is_mapped(server):
    body = {"error": {"code": 3458, "message": "too many pending jobs", "name": "MAX"}}
    server.script("DELETE", "/api/v1/jobs/j1", ("status", 409, {}, body))
    with pytest.raises(ConflictError) as info:
        platform_client(server).delete_job("j1")
    assert info.value.code == 3458 and "too many pending jobs" in str(info.value)


def test_fastapi_detail_body_is_mapped(server):
    body = {"detail": [{"loc": ["body", "params", "pubs"], "msg": "field required"}]}
    server.script("POST", "/api/v1/sessions", ("status", 400, {}, body))
    with pytest.raises(RequestError, match="params.pubs: field required") as info:
        platform_client(server).create_session(backend="b1")
    assert info.value.status_code == 400


# ---------------------------------------------------------------------- authentication


def test_401_relogs_in_once_then_succeeds(server):
    client = platform_client(server)
    client.backends()
    server.valid.clear()  # the service forgot every token (e.g. restarted with a new key)
    assert client.backends()
    assert server.count("POST", "/identity/token") == 2


def test_401_twice_raises_authentication_error(server):
    unauthorized = {"errors": [{"code": "unauthorized", "message": "nope"}]}
    server.script("GET", "/api/v1/backends", *[("status", 401, {}, unauthorized)] * 2)
    client = platform_client(server)
    with pytest.raises(AuthenticationError) as info:
        client.backends()
    assert info.value.status_code == 401
    assert server.count("POST", "/identity/token") == 2  # initial + exactly one re-login
    assert server.count("GET", "/api/v1/backends") == 2


def test_bad_api_key_raises_authentication_error_without_the_key(server):
    client = RuntimeClient(Account("ibm_cloud", server.url, "wrong-key-123"), retry=FAST)
    with pytest.raises(AuthenticationError) as info:
        client.backends()
    assert "wrong-key-123" not in str(info.value)
    assert server.count("POST", "/identity/token") == 1


def test_token_refreshed_after_80_percent_of_lifetime(server):
    server.token_ttl, server.token_age = 1000.0, 850.0  # 85 % of its life already gone
    client = platform_client(server)
    client.backends()
    client.backends()
    assert server.count("POST", "/identity/token") == 2
    server.token_age = 0.0
    client.backends()  # fresh token now
    client.backends()
    assert server.count("POST", "/identity/token") == 3


def test_jwt_times_reads_claims():
    assert jwt_times(make_jwt(100, 3700)) == (100.0, 3700.0)
    assert jwt_times("opaque-token") is None
    assert jwt_times("a.!!!.c") is None


def test_service_without_iam_falls_back_to_apikey_header(server):
    server.iam_enabled = False
    client = platform_client(server)
    assert client.backends()
    assert server.of("GET", "/api/v1/backends")[0].headers["Authorization"] == f"apikey {API_KEY}"


def test_classic_channel_login_body_fields_and_logout(server):
    client = classic_client(server)
    client.backends()
    login = server.of("POST", "/api/users/loginWithToken")[0]
    assert json.loads(login.body) == {"apiToken": CLASSIC_TOKEN}
    listing = server.of("GET", "/runtime/backends")[0]
    assert listing.query["provider"] == ["h/g/p"]
    assert "X-Access-Token" in listing.headers and "Authorization" not in listing.headers
    client.create_job(program_id="sampler", backend="b1", params={})
    body = json.loads(server.of("POST", "/runtime/jobs")[0].body)
    assert (body["hub"], body["group"], body["project"]) == ("h", "g", "p")
    client.create_session(backend="b1", mode="batch", max_ttl=60)
    body = json.loads(server.of("POST", "/runtime/sessions")[0].body)
    assert body["instance"] == "h/g/p" and body["max_ttl"] == 60
    client.logout()
    assert server.count("POST", "/api/users/logout") == 1
    with pytest.raises(AuthenticationError) as info:
        client.backends()
    assert info.value.status_code == 401
    assert server.count("POST", "/api/users/loginWithToken") == 1  # no silent re-login
    client.login()
    assert client.backends()


def test_platform_logout_stops_refresh(server):
    client = platform_client(server)
    client.backends()
    client.logout()
    with pytest.raises(AuthenticationError):
        client.backends()
    assert server.count("POST", "/identity/token") == 1


def test_secrets_never_logged_nor_in_errors(server, caplog):
    caplog.set_level(logging.DEBUG)
    errors = []
    client = platform_client(server)
    client.backends()
    server.script("GET", "/api/v1/jobs/j1", ("status", 500), ("drop",), ("status", 404))
    try:
        client.job("j1")
    except RequestError as err:
        errors.append(err)
    server.valid.clear()
    client.backends()  # re-login path
    classic = classic_client(server)
    classic.backends()
    client.logout()
    classic.logout()
    for bad in (
        RuntimeClient(Account("ibm_cloud", server.url, "bad" + API_KEY), retry=FAST),
        RuntimeClient(Account("ibm_quantum", server.url, "bad" + CLASSIC_TOKEN), retry=FAST),
    ):
        with pytest.raises(AuthenticationError) as info:
            bad.backends()
        errors.append(info.value)
    secrets = {API_KEY, CLASSIC_TOKEN} | set(server.valid)
    secrets |= {r.headers.get("Authorization", "")[7:] for r in server.requests} - {""}
    secrets |= {r.headers.get("X-Access-Token") for r in server.requests} - {None}
    assert len(secrets) >= 4
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "GET /backends" in logged or "/api/v1/backends" in logged  # logging did happen
    for secret in secrets:
        assert secret not in logged
        for err in errors:
            assert secret not in str(err) and secret not in repr(err)
    assert API_KEY not in repr(client.account) and CLASSIC_TOKEN not in repr(classic.account)


def test_credentials_dropped_on_cross_host_redirect(server):
    other = FaultServer()
    try:
        server.script(
            "GET",
            "/api/v1/backends",
            ("status", 302, {"Location": other.url.replace("127.0.0.1", "localhost") + "/x"}),
        )
        try:
            platform_client(server).backends()
        except RequestError:
            pass
        reqs = other.of("GET", "/x")
        assert reqs
        for req in reqs:
            assert "Authorization" not in req.headers and "Service-CRN" not in req.headers
    finally:
        other.close()


def test_call_deadline_bounds_retries_and_reads(server):
    # The server would answer after 3 s each time; with timeout=0.4 the call gives up on its own
    # deadline: at most a couple of attempts, never the 2 s read timeout x 5 retries.
    server.script("GET", "/api/v1/jobs/j1", *[("slow", 3.0)] * 6)
    client = platform_client(server, timeout=2.0)
    client.backends()  # log in first
    with pytest.raises(RequestError, match="read timeout"):
        client.job("j1", wait=1.0, timeout=0.4)
    assert server.count("GET", "/api/v1/jobs/j1") <= 2


# ---------------------------------------------------------------------- service on an old listing


def test_service_tolerates_names_only_listing(server):
    from qiskit_rest_provider import ProviderService

    server.script(
        "GET", "/api/v1/backends", *[("status", 200, {}, {"devices": ["small", "big"]})] * 3
    )
    for name, n in (("small", 2), ("big", 40)):
        config = {"backend_name": name, "n_qubits": n, "simulator": name == "big"}
        server.script("GET", f"/api/v1/backends/{name}/configuration", ("status", 200, {}, config))
        status = {"state": True, "status": "active", "length_queue": 40 - n}
        server.script("GET", f"/api/v1/backends/{name}/status", ("status", 200, {}, status))
    service = ProviderService(url=server.url, token=API_KEY, retry=FAST)
    assert [b.name for b in service.backends(min_num_qubits=10)] == ["big"]
    assert [b.name for b in service.backends(simulator=False)] == ["small"]
    # configuration fetched once per backend and cached
    assert server.count("GET", "/api/v1/backends/big/configuration") == 1
    assert service.least_busy(simulator=None).name == "big"  # shorter queue, from /status
    assert server.count("GET", "/api/v1/backends") == 3


def test_environment_settings_are_resolved_once_per_origin(monkeypatch):
    import requests

    from qiskit_rest_provider.client.transport import _Session

    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    session = _Session()
    expected = requests.Session().merge_environment_settings(
        "http://svc.invalid/api/v1/jobs", {}, None, None, None
    )
    first = session.merge_environment_settings(
        "http://svc.invalid/api/v1/jobs", {}, None, None, None
    )
    assert first == expected
    assert first["proxies"]["http"] == "http://proxy.invalid:3128"
    first["proxies"]["http"] = "mutated by a caller"
    calls = []
    monkeypatch.setattr(
        requests.Session,
        "merge_environment_settings",
        lambda *a, **k: calls.append(a) or {},
    )
    second = session.merge_environment_settings("http://svc.invalid/other", {}, None, None, None)
    assert calls == []  # same origin: served from the cache, not re-read from the environment
    assert second == expected  # and a caller's mutation of an earlier answer does not leak
