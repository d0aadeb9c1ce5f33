"""The results long-poll (D16) against the real reference server, and our client's use of it.

``GET /jobs/{id}/results?wait=S`` answers once the job is final (its results, or a failed job's
error text, with its status in ``X-Job-Status``) or ``409 job_not_final`` when the time is up;
a server offering it says so on every accepted ``POST /jobs`` (``X-Results-Wait``). Our client
then waits for a result in one request instead of a status long-poll and a results read, and
still reports failures, cancels and timeouts as before (compared with the sampler Qiskit ships,
on the same circuit).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import requests
from workloads import bell_circuit, slow_qasm

pytest.importorskip("fastapi")

from qiskit.primitives import StatevectorSampler  # noqa: E402

from qiskit_rest_provider import ProviderService  # noqa: E402
from qiskit_rest_provider.exceptions import JobFailedError, JobTimeoutError  # noqa: E402
from qiskit_rest_provider.primitives import SamplerV2  # noqa: E402
from qiskit_rest_provider.wire import protocol  # noqa: E402

pytestmark = pytest.mark.timeout(300)

QUICK = 'OPENQASM 3.0; include "stdgates.inc"; qubit[1] q; bit[1] c; x q[0]; c[0] = measure q[0];'


def _post(server, qasm: str, shots: int, **extra) -> requests.Response:
    body = {
        "program_id": "sampler",
        "backend": "rest_simulator",
        "params": {"pubs": [[qasm, None, shots]], "version": 2},
        **extra,
    }
    r = requests.post(f"{server.runtime_url}/jobs", headers=_headers(server), json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r


def _headers(server) -> dict[str, str]:
    return {"Authorization": f"apikey {server.token}"}


def _results(server, job_id: str, wait: float) -> requests.Response:
    return requests.get(
        f"{server.runtime_url}/jobs/{job_id}/results",
        params={"wait": wait},
        headers=_headers(server),
        timeout=60,
    )


def test_the_results_route_waits_for_the_end_and_names_the_status(server_factory):
    server = server_factory.start(workers=1, args=["--cancel-grace", "1"])
    quick = _post(server, QUICK, 10)
    assert quick.headers[protocol.RESULTS_WAIT_HEADER] == "30"
    t0 = time.monotonic()
    done = _results(server, quick.json()["id"], 30)
    assert done.status_code == 200 and time.monotonic() - t0 < 25  # at the end, not after 30 s
    assert done.headers[protocol.JOB_STATUS_HEADER] == "Completed"
    assert done.headers["content-type"].startswith("application/json")
    assert done.json()["results"]

    running = _post(server, slow_qasm(), 100_000).json()["id"]
    t0 = time.monotonic()
    late = _results(server, running, 1.5)
    assert late.status_code == 409 and late.json()["errors"][0]["code"] == "job_not_final"
    assert time.monotonic() - t0 >= 1.4  # it waited the time asked for
    cancelled = threading.Timer(
        1.0,
        lambda: requests.post(
            f"{server.runtime_url}/jobs/{running}/cancel", headers=_headers(server), timeout=30
        ),
    )
    cancelled.start()
    t0 = time.monotonic()
    text = _results(server, running, 30)  # woken by the cancel
    cancelled.join()
    assert text.status_code == 200 and time.monotonic() - t0 < 25
    assert text.headers[protocol.JOB_STATUS_HEADER] == "Cancelled"
    assert "cancel" in text.text.lower()
    # without wait, as before: the status header on every answer
    again = requests.get(
        f"{server.runtime_url}/jobs/{running}/results", headers=_headers(server), timeout=30
    )
    assert again.headers[protocol.JOB_STATUS_HEADER] == "Cancelled"


def test_a_waited_read_keeps_private_results_once_and_deleted_jobs_gone(reference_server):
    """The results this process just stored answer a waiting read without the store: a private
    job's still read once only, and a deleted job's not at all."""
    private = _post(reference_server, QUICK, 10, private=True).json()["id"]
    first = _results(reference_server, private, 30)
    assert first.status_code == 200 and first.json()["results"]
    again = _results(reference_server, private, 30)
    assert again.status_code == 204 and again.headers[protocol.JOB_STATUS_HEADER] == "Completed"
    public = _post(reference_server, QUICK, 10).json()["id"]
    assert _results(reference_server, public, 30).status_code == 200
    assert _results(reference_server, public, 30).status_code == 200  # read as often as asked
    gone = requests.delete(
        f"{reference_server.runtime_url}/jobs/{public}",
        headers=_headers(reference_server),
        timeout=30,
    )
    assert gone.status_code == 204
    assert _results(reference_server, public, 30).status_code == 404


def _sampler(server) -> tuple[ProviderService, SamplerV2]:
    service = ProviderService(url=server.url, token=server.token, instance=server.instance_crn)
    return service, SamplerV2(mode=service.backend("rest_simulator"))


def test_the_client_waits_for_a_result_in_one_request(reference_server, monkeypatch):
    service, sampler = _sampler(reference_server)
    client = service._client
    sampler.run([bell_circuit()], shots=64).result()  # the first POST announces D16
    assert client.results_wait == 30.0
    sent: list[tuple[str, str]] = []
    send = client.transport.send

    def recording(method, url, **kw):
        sent.append((method, url.split("/api/v1/", 1)[-1]))
        return send(method, url, **kw)

    monkeypatch.setattr(client.transport, "send", recording)
    job = sampler.run([bell_circuit()], shots=1024)
    ours = job.result()
    job_id = job.job_id()
    assert sent == [("POST", "jobs"), ("GET", f"jobs/{job_id}/results")]
    assert job.status().name == "DONE" and len(sent) == 2  # known final: no more requests
    assert job.creation_date is not None  # the job document, read when asked for
    assert sent[2:] == [("GET", f"jobs/{job_id}")]
    reference = StatevectorSampler(seed=1).run([bell_circuit()], shots=1024).result()
    for result in (ours, reference):
        counts = result[0].data.meas.get_counts()
        assert set(counts) <= {"00", "11"} and sum(counts.values()) == 1024
        assert abs(counts.get("00", 0) - 512) < 5 * np.sqrt(256)


def test_a_job_that_ends_badly_is_reported_as_before(server_factory):
    server = server_factory.start(workers=1, args=["--cancel-grace", "1"])
    service, sampler = _sampler(server)
    sampler.run([bell_circuit()], shots=16).result()
    assert service._client.results_wait == 30.0
    from qiskit import qasm3

    circuit = qasm3.loads(slow_qasm())
    t0 = time.monotonic()
    waited = sampler.run([circuit], shots=100_000)
    with pytest.raises(JobTimeoutError):
        waited.result(timeout=1.5)
    # the deadline holds across the results wait and the status wait that follows it
    assert time.monotonic() - t0 < 10
    waited.cancel()
    limited = SamplerV2(mode=service.backend("rest_simulator"), options={"max_execution_time": 1})
    job = limited.run([circuit], shots=100_000)
    with pytest.raises(JobFailedError, match="maximum execution time") as failed:
        job.result()
    assert failed.value.reason_code == protocol.REASON_MAX_TIME
