"""RestPrimitiveJob status mapping and waiting, against a scripted in-memory client.

The reference server always honours long-poll and only ever reports the five documented
states, so the behaviours tested here (a service ignoring ``?wait=``, unknown state strings,
a service briefly unreachable) are produced by a small transport fake.
"""

from __future__ import annotations

import time

import pytest
from qiskit.providers import JobStatus

from qiskit_rest_provider.exceptions import (
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    RequestError,
)
from qiskit_rest_provider.primitives import job as job_module
from qiskit_rest_provider.primitives.job import RestPrimitiveJob, map_job_status


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        ("Queued", None, JobStatus.QUEUED),
        ("QUEUED", None, JobStatus.QUEUED),
        ("running", None, JobStatus.RUNNING),
        ("Completed", None, JobStatus.DONE),
        ("Failed", 1003, JobStatus.ERROR),
        ("Cancelled", None, JobStatus.CANCELLED),
        ("Cancelled", 1305, JobStatus.ERROR),
        ("Cancelled", "1305", JobStatus.ERROR),
        ("Cancelled - Ran too long", None, JobStatus.CANCELLED),
        ("Canceled", None, JobStatus.CANCELLED),
        ("ERRORED", None, JobStatus.ERROR),
        ("Failed - internal", None, JobStatus.ERROR),
        ("Succeeded", None, JobStatus.DONE),
        ("Initializing", None, JobStatus.INITIALIZING),
        ("Something new", None, JobStatus.RUNNING),
        (None, None, JobStatus.RUNNING),
    ],
)
def test_status_mapping(status, code, expected):
    assert map_job_status(status, code) is expected


class ScriptedClient:
    """Answers ``job()`` from a list of states; ``honour_wait`` simulates D6 long-poll."""

    def __init__(self, states, *, honour_wait=True, results=b"{}", errors=0):
        self.states = list(states)
        self.honour_wait = honour_wait
        self.results = results
        self.errors = errors
        self.calls = []
        self.cancelled = False

    def job(self, job_id, *, exclude_params=True, wait=None, timeout=None):
        self.calls.append(wait)
        if self.errors:
            self.errors -= 1
            raise RequestError("connection refused", status_code=None)
        if wait is not None and self.honour_wait and len(self.states) > 1:
            time.sleep(min(wait, 0.05))
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        if isinstance(state, str):
            state = {"status": state}
        return {
            "id": job_id,
            "state": state,
            "program": {"id": "sampler"},
            "backend": "b",
            "created": "2026-01-01T00:00:00Z",
            "tags": ["t"],
            "session_id": None,
        }

    def job_results(self, job_id, timeout=None):
        return self.results

    def cancel_job(self, job_id):
        self.cancelled = True

    def update_job_tags(self, job_id, tags):
        self.tags = tags


def test_failed_job_raises_with_reason_and_code():
    client = ScriptedClient(
        ["Queued", {"status": "Failed", "reason": "Aer said no", "reason_code": 1517}]
    )
    job = RestPrimitiveJob(client, "j1")
    with pytest.raises(JobFailedError, match="Aer said no") as info:
        job.result(timeout=10)
    assert info.value.reason == "Aer said no"
    assert info.value.reason_code == 1517
    assert info.value.job_id == "j1"
    assert job.status() is JobStatus.ERROR
    assert "Aer said no" in job.error_message()


def test_failed_job_without_reason_uses_results_text():
    client = ScriptedClient([{"status": "Failed"}], results=b"Traceback...\nBoom: bad circuit")
    with pytest.raises(JobFailedError, match="Boom: bad circuit"):
        RestPrimitiveJob(client, "j").result(timeout=5)


def test_cancelled_and_max_time():
    with pytest.raises(JobCancelledError):
        RestPrimitiveJob(ScriptedClient(["Cancelled"]), "j").result(timeout=5)
    client = ScriptedClient([{"status": "Cancelled", "reason": "too long", "reason_code": 1305}])
    with pytest.raises(JobFailedError, match="maximum execution time") as info:
        RestPrimitiveJob(client, "j").result(timeout=5)
    assert not isinstance(info.value, JobCancelledError)


def test_timeout_is_honoured_with_long_poll():
    client = ScriptedClient(["Running"])
    job = RestPrimitiveJob(client, "j")
    start = time.monotonic()
    with pytest.raises(JobTimeoutError, match="j"):
        job.result(timeout=0.3)
    assert time.monotonic() - start < 5
    # It asked the service to hold the request, never for longer than the time left.
    assert any(w is not None and w <= 0.3 for w in client.calls)


def test_timeout_when_service_ignores_wait_falls_back_to_polling(monkeypatch):
    client = ScriptedClient(["Running"], honour_wait=False)
    job = RestPrimitiveJob(client, "j")
    with pytest.raises(JobTimeoutError):
        job.result(timeout=1.0)
    assert job._long_poll is False
    # Adaptive polling: a bounded number of requests (50 ms backing off), not a busy loop.
    assert 4 <= len(client.calls) < 40


def test_unknown_states_do_not_hang():
    client = ScriptedClient(["Warming up"])
    with pytest.raises(JobTimeoutError):
        RestPrimitiveJob(client, "j").result(timeout=0.2)


def test_transient_errors_are_retried_while_waiting():
    client = ScriptedClient(["Queued", "Cancelled"], errors=2)
    with pytest.raises(JobCancelledError):
        RestPrimitiveJob(client, "j").result(timeout=10)


def test_non_transient_error_propagates():
    class NotFound(ScriptedClient):
        def job(self, job_id, **kw):
            raise RequestError("no such job", status_code=404)

    with pytest.raises(RequestError, match="no such job"):
        RestPrimitiveJob(NotFound(["Queued"]), "j").result(timeout=5)


def test_details_from_document():
    client = ScriptedClient(["Completed"])
    job = RestPrimitiveJob(client, "j9")
    assert job.job_id() == "j9"
    assert job.program_id == "sampler"
    assert job.tags == ["t"]
    assert job.creation_date.year == 2026
    assert job.backend_name == "b"
    assert job.done() and job.in_final_state() and not job.running() and not job.cancelled()
    job.update_tags(["x", "y"])
    assert client.tags == ["x", "y"] and job.tags == ["x", "y"]
    with pytest.raises(ValueError):
        job.update_tags("x")
    job.cancel()
    assert client.cancelled


def test_final_status_is_not_refetched():
    client = ScriptedClient(["Completed"])
    job = RestPrimitiveJob(client, "j")
    job.status()
    n = len(client.calls)
    job.status()
    job.done()
    assert len(client.calls) == n


def test_poll_constants_are_sane():
    assert job_module.POLL_FIRST <= 0.1
    assert job_module.POLL_MAX <= 5


def test_timeout_is_honoured_while_the_service_is_unreachable():
    client = ScriptedClient(["Running"], errors=10_000)
    start = time.monotonic()
    with pytest.raises(JobTimeoutError, match="unreachable"):
        RestPrimitiveJob(client, "j").result(timeout=0.5)
    assert time.monotonic() - start < 5
