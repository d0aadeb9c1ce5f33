"""Idempotent job creation through a fault-injecting proxy in front of the real server (issue 7).

The proxy forwards each request to the reference server; for the first ``POST .../jobs`` it lets
the server create the job and then drops the answer (closes the connection). The client's retry
carries the same ``Idempotency-Key``, so the server answers with the same job: one job, not two.
"""

from __future__ import annotations

import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from qiskit_rest_provider import ProviderService
from qiskit_rest_provider.client import RetryPolicy
from qiskit_rest_provider.exceptions import RequestError

X_MEASURE = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nbit[1] c;\nx $0;\nc[0] = measure $0;\n'
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"}


class DroppingProxy:
    """Forwards to ``upstream``; ``drop[(method, suffix)]`` answers are swallowed (N times)."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.drop: dict[tuple[str, str], int] = {}
        self.fail: dict[tuple[str, str], list[int]] = {}
        self.seen: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()
        outer = self
        self.http = requests.Session()

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
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _take(self, table, key):
        with self.lock:
            for (method, suffix), value in table.items():
                if method == key[0] and key[1].split("?")[0].endswith(suffix) and value:
                    if isinstance(value, list):
                        return value.pop(0)
                    table[(method, suffix)] = value - 1
                    return True
        return None

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else None
        key = (h.command, h.path)
        with self.lock:
            self.seen.append((h.command, h.path, h.headers.get("Idempotency-Key")))
        status = self._take(self.fail, key)
        if status:
            data = b'{"errors": [{"code": "gateway", "message": "injected"}]}'
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
            return
        headers = {k: v for k, v in h.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
        # As a forward proxy the request line carries the absolute URL.
        target = h.path if h.path.startswith("http") else self.upstream + h.path
        upstream = self.http.request(h.command, target, headers=headers, data=body, timeout=60)
        if self._take(self.drop, key):
            h.close_connection = True  # the server acted; its answer is lost
            return
        h.send_response(upstream.status_code)
        for k, v in upstream.headers.items():
            if k.lower() not in HOP_BY_HOP:
                h.send_header(k, v)
        h.send_header("Content-Length", str(len(upstream.content)))
        h.end_headers()
        h.wfile.write(upstream.content)


@pytest.fixture
def proxy(reference_server):
    p = DroppingProxy(reference_server.url)
    yield p
    p.close()


def _service(proxy, reference_server, channel="ibm_quantum_platform") -> ProviderService:
    instance = (
        reference_server.instance_hgp if channel == "ibm_quantum" else reference_server.instance_crn
    )
    return ProviderService(
        channel=channel,
        url=proxy.url,
        token=reference_server.token,
        instance=instance,
        retry=RetryPolicy(max_retries=4, backoff_base=0.05, backoff_max=0.2),
    )


@pytest.mark.parametrize("channel", ["ibm_quantum_platform", "ibm_quantum"])
def test_lost_answer_to_job_creation_yields_one_job(proxy, reference_server, channel):
    service = _service(proxy, reference_server, channel)
    tag = f"lost-{uuid.uuid4().hex[:8]}"
    proxy.drop[("POST", "/jobs")] = 1
    proxy.fail[("POST", "/jobs")] = []
    job = service.client.create_job(
        program_id="sampler",
        backend="rest_simulator",
        params={"pubs": [[X_MEASURE, None, 8]], "version": 2},
        tags=[tag],
    )
    posts = [s for s in proxy.seen if s[0] == "POST" and s[1].endswith("/jobs")]
    assert len(posts) == 2  # the original and one retry
    assert posts[0][2] == posts[1][2] and posts[0][2]  # same Idempotency-Key
    listed = service.client.jobs(job_tags=[tag])
    assert listed["count"] == 1 and listed["jobs"][0]["id"] == job["id"]


def test_gateway_errors_then_success_yield_one_job(proxy, reference_server):
    service = _service(proxy, reference_server)
    tag = f"gw-{uuid.uuid4().hex[:8]}"
    proxy.drop[("POST", "/jobs")] = 1
    proxy.fail[("POST", "/jobs")] = [0, 502, 503]  # after the dropped one: two gateway errors
    service.client.create_job(
        program_id="sampler",
        backend="rest_simulator",
        params={"pubs": [[X_MEASURE, None, 8]], "version": 2},
        tags=[tag],
    )
    assert service.client.jobs(job_tags=[tag])["count"] == 1


def test_listing_survives_a_dropped_answer(proxy, reference_server):
    service = _service(proxy, reference_server)
    proxy.drop[("GET", "/backends")] = 2
    assert "rest_line_5q" in {b.name for b in service.backends()}


def test_session_creation_answer_lost_is_reported_not_duplicated(proxy, reference_server):
    service = _service(proxy, reference_server)
    proxy.drop[("POST", "/sessions")] = 1
    with pytest.raises(RequestError, match="not retried"):
        service.client.create_session(backend="rest_simulator", mode="batch")
    assert sum(1 for s in proxy.seen if s[0] == "POST" and s[1].endswith("/sessions")) == 1


def test_rate_limited_server_is_honoured_not_fatal(server_factory):
    """A server limiting to 5 requests/s answers 429 + Retry-After; every call still succeeds."""
    server = server_factory.start(args=["--rate-limit", "5"], workers=1)
    service = ProviderService(url=server.url, token=server.token, instance=server.instance_crn)
    statuses: list[int] = []
    service.client.transport.session.hooks["response"].append(
        lambda response, *a, **k: statuses.append(response.status_code)
    )
    for _ in range(25):
        assert service.backend("rest_line_5q").status().backend_name == "rest_line_5q"
    assert 429 in statuses  # the limit was hit ...
    assert statuses.count(200) >= 26  # ... and every call got through (+1 for the IAM token)


def test_requests_go_through_the_configured_proxy(proxy, reference_server):
    service = ProviderService(
        url=reference_server.url,
        token=reference_server.token,
        instance=reference_server.instance_crn,
        proxies={"http": proxy.url},
    )
    assert "rest_line_5q" in {b.name for b in service.backends()}
    paths = [path for _, path, _ in proxy.seen]
    assert any(p.startswith(reference_server.url) and p.endswith("/identity/token") for p in paths)
    assert any(p.startswith(reference_server.url) and p.endswith("/api/v1/backends") for p in paths)
