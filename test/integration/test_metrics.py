"""``GET /metrics`` on a real server: who may read it, that it parses, that values move."""

from __future__ import annotations

import asyncio
import re
import time

import requests
from qiskit import QuantumCircuit
from qiskit.primitives.containers.sampler_pub import SamplerPub

from qiskit_rest_provider.wire.pubs import encode_sampler_params

OTHER = "other/team/project"
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.e+-]+|\+Inf|-Inf|NaN)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _parse(text: str) -> dict[tuple[str, frozenset], float]:
    """Parse the text format strictly: every line a comment or a sample, every sample typed."""
    samples: dict[tuple[str, frozenset], float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("# HELP ") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, labels = m.group(1), frozenset(LABEL.findall(m.group(3) or ""))
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or base in typed, f"sample of an undeclared family: {line!r}"
        assert (name, labels) not in samples, f"duplicate sample {line!r}"
        samples[(name, labels)] = float(m.group(4))
    return samples


def _value(samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _bell_params() -> dict:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return encode_sampler_params([SamplerPub.coerce(qc, shots=64)])


def test_metrics_parse_and_move_after_a_job(server_factory):
    server = server_factory.start(workers=1, extra_tokens={"other-tok-123456": OTHER})
    admin = {"Authorization": f"Bearer {server.token}"}
    url = f"{server.url}/metrics"

    r = requests.get(url, headers=admin, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    before = _parse(r.text)
    assert _value(before, "qrp_executor_capacity") == 1
    assert _value(before, "qrp_jobs", state="Completed") == 0

    headers = {"Authorization": f"apikey {server.token}", "Content-Type": "application/json"}
    body = {"program_id": "sampler", "backend": "rest_simulator", "params": _bell_params()}
    r = requests.post(f"{server.url}/api/v1/jobs", headers=headers, json=body, timeout=60)
    assert r.status_code in (200, 201), r.text
    job_id = r.json()["id"]
    deadline = time.monotonic() + 120
    while True:
        state = requests.get(
            f"{server.url}/api/v1/jobs/{job_id}", params={"wait": 10}, headers=headers, timeout=60
        ).json()["state"]["status"]
        if state == "Completed" or time.monotonic() > deadline:
            break
    assert state == "Completed"

    after = _parse(requests.get(url, headers=admin, timeout=30).text)
    assert _value(after, "qrp_jobs", state="Completed") == 1
    assert _value(after, "qrp_executor_busy") == 0
    assert _value(after, "qrp_dispatcher_inflight") == 0
    assert _value(after, "qrp_leases_expired") == 0
    post = {"method": "POST", "route": "/api/v1/jobs"}
    assert (
        _value(after, "qrp_http_requests_total", **post, status="201")
        + _value(after, "qrp_http_requests_total", **post, status="200")
        == 1
    )
    # the job's own GET counts under its route template, never its id
    get_job = {"method": "GET", "route": "/api/v1/jobs/{job_id}"}
    assert _value(after, "qrp_http_request_duration_seconds_count", **get_job) >= 1
    assert not any(job_id in str(labels) for _, labels in after)
    # a histogram is cumulative and ends with +Inf == count
    inf = _value(after, "qrp_http_request_duration_seconds_bucket", **post, le="+Inf")
    assert inf == _value(after, "qrp_http_request_duration_seconds_count", **post) == 1
    assert _value(after, "qrp_http_request_duration_seconds_bucket", **post, le="60") == 1
    # label values stay bounded: an invented method is "other", an unknown path "other"
    requests.request("BREW", f"{server.url}/no/such/{job_id}", timeout=30)
    again = _parse(requests.get(url, headers=admin, timeout=30).text)
    assert (
        _value(again, "qrp_http_requests_total", method="other", route="other", status="404")
        + (_value(again, "qrp_http_requests_total", method="other", route="other", status="405"))
        == 1
    )
    # the earlier scrape itself was counted
    assert (
        _value(after, "qrp_http_requests_total", method="GET", route="/metrics", status="200") >= 1
    )

    # loopback without the admin token (or with another instance's token): no instance ids
    for hdrs in ({}, {"Authorization": "Bearer other-tok-123456"}):
        r = requests.get(url, headers=hdrs, timeout=30)
        assert r.status_code == 200
        anon = _parse(r.text)
        assert "qrp_queued_jobs_by_instance" not in r.text
        assert "instance=" not in r.text
        assert _value(anon, "qrp_jobs", state="Completed") == 1


def _asgi_get(app, path: str, client_host: str, headers: dict[str, str]) -> tuple[int, str]:
    """One GET through the app's ASGI interface from ``client_host`` (no socket needed)."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "server": ("10.0.0.1", 8000), "client": (client_host, 40000),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }  # fmt: skip
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body.decode()


def test_metrics_refuse_a_remote_client_without_the_admin_token(tmp_path):
    from qiskit_rest_provider.server.app import create_app
    from qiskit_rest_provider.server.config import ServerConfig

    app = create_app(ServerConfig(data_dir=tmp_path, token="admin-token-abcdef"))
    status, text = _asgi_get(app, "/metrics", "10.0.0.9", {})
    assert status == 401 and "admin token" in text
    wrong = {"Authorization": "Bearer wrong"}
    assert _asgi_get(app, "/metrics", "10.0.0.9", wrong)[0] == 401
    ok = {"Authorization": "Bearer admin-token-abcdef"}
    status, text = _asgi_get(app, "/metrics", "10.0.0.9", ok)
    assert status == 200
    _parse(text)
    assert _asgi_get(app, "/metrics", "127.0.0.1", {})[0] == 200
