"""The client against a real server behind a faulty network (issue 7).

``test/faults.py`` sits between :class:`ProviderService` and the reference server and injects what
gateways and networks do: 429 with ``Retry-After``, bursts of 502/503, connection resets, answers
slower than the read timeout, cut-off bodies, HTML error pages, a dead upstream. The client must
recover within its retry bound, or raise a clear :class:`RequestError` within its time bound; and
``job.result(timeout=...)`` must return or raise by its deadline whatever the network does.
(The transport's own unit tests, against a scripted fake server, are in
``test/unit/test_client_transport.py``; these run the whole stack against the real server.)
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import requests
from faults import FaultProxy
from workloads import slow_qasm

from qiskit_rest_provider import ProviderService
from qiskit_rest_provider.client import RetryPolicy
from qiskit_rest_provider.exceptions import (
    JobTimeoutError,
    NotFoundError,
    RequestError,
)

pytest.importorskip("fastapi")

X_MEASURE = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nbit[1] c;\nx $0;\nc[0] = measure $0;\n'
FAST_RETRY = RetryPolicy(max_retries=4, backoff_base=0.05, backoff_max=0.2, max_elapsed=10.0)
# A generous upper bound for "raises within its bound" (a loaded 2-core CI machine).
SLACK = 20.0
# result(timeout) bound: the deadline plus one poll's worth of slack
RESULT_SLACK = 6.0


@pytest.fixture
def proxy(reference_server):
    with FaultProxy(reference_server.url) as p:
        yield p


def _service(proxy, server, **kw) -> ProviderService:
    kw.setdefault("retry", FAST_RETRY)
    return ProviderService(url=proxy.url, token=server.token, instance=server.instance_crn, **kw)


def _job_id(server, qasm: str = X_MEASURE, shots: int = 8) -> str:
    r = requests.post(
        f"{server.runtime_url}/jobs",
        headers={"Authorization": f"apikey {server.token}"},
        json={
            "program_id": "sampler",
            "backend": "rest_simulator",
            "params": {"pubs": [[qasm, None, shots]], "version": 2},
            "tags": [f"faults-{uuid.uuid4().hex[:6]}"],
        },
        timeout=60,
    )
    assert r.status_code == 200, r.text
    return r.json()["id"]


def _cancel(server, job_id: str) -> None:
    requests.post(
        f"{server.runtime_url}/jobs/{job_id}/cancel",
        headers={"Authorization": f"apikey {server.token}"},
        timeout=30,
    )


# ---------------------------------------------------------------- recover within the bound
@pytest.mark.timeout(60)
def test_429_with_retry_after_is_honoured(proxy, reference_server):
    service = _service(proxy, reference_server)
    rule = proxy.add(
        "status",
        method="GET",
        path=r"/backends$",
        status=429,
        times=2,
        headers={"Retry-After": "1"},
        body=b'{"errors":[{"code":"1202","message":"rate limited"}],"status_code":429}',
    )
    names = {b.name for b in service.backends()}
    assert "rest_simulator" in names and rule.hits == 2
    seen = proxy.seen("GET", r"/backends$")
    assert [s.status for s in seen] == [429, 429, 200]
    # the client waited at least the Retry-After between attempts (a lower bound: robust)
    assert seen[1].at - seen[0].at >= 0.9 and seen[2].at - seen[1].at >= 0.9


@pytest.mark.timeout(180)
@pytest.mark.parametrize("status", [502, 503, 504, 520])
def test_gateway_error_burst_then_recovery(proxy, reference_server, status):
    job_id = _job_id(reference_server)
    service = _service(proxy, reference_server)
    proxy.add("status", method="GET", path=job_id, status=status, times=3, body=b"<h1>oops</h1>")
    job = service.job(job_id)
    assert job.result(timeout=120)[0].data.c.get_counts() == {"1": 8}
    assert [s.status for s in proxy.seen("GET", job_id)][:4] == [status] * 3 + [200]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["reset_before", "reset", "drop"])
def test_connection_faults_on_reads_recover(proxy, reference_server, kind):
    service = _service(proxy, reference_server)
    proxy.add(kind, method="GET", path=r"/configuration$", times=2)
    backend = service.backend("rest_line_5q")
    assert backend.num_qubits == 5
    assert [s.fault for s in proxy.seen("GET", r"/configuration$")][:3] == [kind, kind, None]


@pytest.mark.timeout(180)
def test_reset_before_submission_reaches_server_is_retried_once(proxy, reference_server):
    service = _service(proxy, reference_server)
    tag = f"faults-reset-{uuid.uuid4().hex[:6]}"
    proxy.add("reset_before", method="POST", path=r"/jobs$")
    job = service.client.create_job(
        program_id="sampler",
        backend="rest_simulator",
        params={"pubs": [[X_MEASURE, None, 8]], "version": 2},
        tags=[tag],
    )
    assert service.client.jobs(job_tags=[tag])["count"] == 1
    assert service.job(job["id"]).result(timeout=120)[0].data.c.get_counts() == {"1": 8}


@pytest.mark.timeout(60)
def test_slow_answer_past_read_timeout_is_retried(proxy, reference_server):
    service = _service(proxy, reference_server, timeout=2.0)
    rule = proxy.add("delay", method="GET", path=r"/status$", delay=5.0)
    status = service.backend("rest_simulator").status()
    assert status.operational and rule.hits == 1
    assert len(proxy.seen("GET", r"/status$")) >= 2


@pytest.mark.timeout(180)
def test_truncated_result_body_is_fetched_again(proxy, reference_server):
    job_id = _job_id(reference_server, shots=64)
    service = _service(proxy, reference_server)
    proxy.add("truncate", method="GET", path=r"/results$", keep=0.5)
    result = service.job(job_id).result(timeout=120)
    assert result[0].data.c.get_counts() == {"1": 64}
    assert [s.fault for s in proxy.seen("GET", r"/results$")] == ["truncate", None]


@pytest.mark.timeout(60)
def test_truncated_listing_is_fetched_again(proxy, reference_server):
    service = _service(proxy, reference_server)
    proxy.add("truncate", method="GET", path=r"/backends$", keep=0.8)
    assert "rest_hex_27q" in {b.name for b in service.backends()}


@pytest.mark.timeout(60)
def test_html_error_page_then_recovery(proxy, reference_server):
    service = _service(proxy, reference_server)
    page = b"<html><body><h1>500 Internal Server Error</h1></body></html>"
    proxy.add("status", method="GET", path=r"/backends$", status=500, body=page, times=2)
    assert "rest_simulator" in {b.name for b in service.backends()}


# ---------------------------------------------------------------- clear error within the bound
@pytest.mark.timeout(90)
def test_502_forever_raises_clear_error_within_bound(proxy, reference_server):
    service = _service(proxy, reference_server)
    proxy.add("status", method="GET", path=r"/backends$", status=502, times=None)
    t0 = time.monotonic()
    with pytest.raises(RequestError) as info:
        service.backends()
    assert time.monotonic() - t0 < FAST_RETRY.max_elapsed + SLACK
    assert info.value.status_code == 502
    assert "502" in str(info.value) or "Bad Gateway" in str(info.value)
    assert len(proxy.seen("GET", r"/backends$")) == FAST_RETRY.max_retries + 1


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    "status,cls,word",
    [(404, NotFoundError, "404"), (400, RequestError, "400"), (403, RequestError, "403")],
)
def test_non_json_client_error_page_is_a_clear_exception(
    proxy, reference_server, status, cls, word
):
    service = _service(proxy, reference_server)
    service.backends()  # log in first: the fault is on the backend call
    page = b"<html><head><title>Error</title></head><body>nginx</body></html>"
    proxy.add("status", method="GET", path=r"/configuration$", status=status, body=page)
    with pytest.raises(cls) as info:
        service.client.backend_configuration("rest_hex_27q")
    assert info.value.status_code == status
    message = str(info.value)
    assert "/configuration" in message and (word in message or "nginx" in message)
    assert "Traceback" not in message and reference_server.token not in message


@pytest.mark.timeout(90)
def test_read_timeout_forever_raises_within_bound(proxy, reference_server):
    service = _service(proxy, reference_server, timeout=0.5)
    service.backends()
    proxy.add("delay", method="GET", path=r"/status$", delay=5.0, times=None)
    t0 = time.monotonic()
    with pytest.raises(RequestError, match="read timeout|timed out"):
        service.backend("rest_simulator").status()
    assert time.monotonic() - t0 < FAST_RETRY.max_elapsed + 5 * 0.5 + SLACK


@pytest.mark.timeout(60)
def test_non_json_success_body_is_a_clear_exception(proxy, reference_server):
    service = _service(proxy, reference_server)
    service.backends()
    page = b"<html><body>Welcome to the captive portal</body></html>"
    proxy.add("status", method="GET", path=r"/status$", status=200, body=page, times=None)
    with pytest.raises(RequestError, match="not JSON"):
        service.backend("rest_simulator").status()


# ---------------------------------------------------------------- result(timeout) is a promise
@pytest.mark.timeout(90)
def test_result_timeout_on_a_long_job(proxy, reference_server):
    job_id = _job_id(reference_server, slow_qasm(), 50_000)
    try:
        job = _service(proxy, reference_server).job(job_id)
        t0 = time.monotonic()
        with pytest.raises(JobTimeoutError):
            job.result(timeout=1.5)
        assert time.monotonic() - t0 < 1.5 + SLACK
        assert not job.in_final_state()
    finally:
        _cancel(reference_server, job_id)


def _bounded_result(job, timeout: float, bound: float) -> BaseException | None:
    """Run ``job.result(timeout)`` in a daemon thread; fail if it has not ended after ``bound``."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            job.result(timeout=timeout)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(bound)
    if thread.is_alive():
        pytest.fail(f"job.result(timeout={timeout}) still blocked after {bound} s")
    return outcome[0]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "fault",
    [
        "blackhole",
        "gateway",
    ],
)
def test_result_timeout_honoured_when_network_fails(proxy, reference_server, fault):
    """Whatever happens to the polls, ``result(timeout=2)`` ends by about its deadline."""
    job_id = _job_id(reference_server)  # every poll of it is faulted: it never looks final
    try:
        job = _service(proxy, reference_server).job(job_id)
        if fault == "blackhole":  # the service (or a proxy) accepts the poll and never answers
            proxy.add("delay", method="GET", path=job_id, delay=120.0, times=None)
        else:
            proxy.add("status", method="GET", path=job_id, status=502, times=None)
        error = _bounded_result(job, 2.0, 2.0 + RESULT_SLACK)
        assert isinstance(error, (JobTimeoutError, RequestError)), error
    finally:
        _cancel(reference_server, job_id)


@pytest.mark.timeout(60)
def test_result_timeout_honoured_when_service_is_down(reference_server):
    """Connection refused on every poll (the service is gone): still bounded by ``timeout``."""
    job_id = _job_id(reference_server)
    try:
        proxy = FaultProxy(reference_server.url)
        job = _service(proxy, reference_server, retry=RetryPolicy()).job(job_id)
        proxy.close()  # nothing listens on the proxy's port any more
        job._client.transport.session.close()  # drop pooled keep-alive connections
        error = _bounded_result(job, 2.0, 2.0 + RESULT_SLACK)
        assert isinstance(error, (JobTimeoutError, RequestError)), error
    finally:
        _cancel(reference_server, job_id)
