"""Session/Batch client logic with a recording transport (the server side is integration-tested)."""

from __future__ import annotations

import pytest

from qiskit_rest_provider.exceptions import InvalidInputError
from qiskit_rest_provider.modes import Batch, Session, _seconds, active_session


class RecordingClient:
    def __init__(self):
        self.calls = []

    def create_session(self, **kwargs):
        self.calls.append(("create", kwargs))
        return {"id": f"s{len(self.calls)}", "mode": kwargs["mode"]}

    def close_session(self, session_id):
        self.calls.append(("close", session_id))

    def cancel_session(self, session_id):
        self.calls.append(("cancel", session_id))

    def session(self, session_id):
        return {
            "id": session_id,
            "mode": "batch",
            "backend_name": "b",
            "state": "active",
            "accepting_jobs": True,
            "max_ttl": 60,
        }


class FakeService:
    def __init__(self):
        self.client = RecordingClient()

    def backend(self, name):
        backend = FakeBackend()
        backend.service = self
        return backend


class FakeBackend:
    name = "b"

    def __init__(self):
        self.service = None

    @property
    def client(self):
        """A RestBackend sends through its client (here: its fake service's)."""
        return self.service.client


@pytest.fixture
def backend():
    b = FakeBackend()
    b.service = FakeService()
    return b


@pytest.mark.parametrize(
    ("text", "seconds"),
    [(None, None), (600, 600), (1.5, 1), ("2h", 7200), ("1h 30m", 5400), ("45s", 45), ("90", 90)],
)
def test_max_time_parsing(text, seconds):
    assert _seconds(text) == seconds


@pytest.mark.parametrize("bad", ["soon", "", 0, -5, True, [1]])
def test_bad_max_time(bad):
    with pytest.raises(InvalidInputError):
        _seconds(bad)


def test_context_manager_closes_and_sets_active(backend):
    client = backend.service.client
    assert active_session() is None
    with Batch(backend, max_time="1m") as batch:
        assert active_session() is batch
        with Session(backend) as inner:
            assert active_session() is inner
        assert active_session() is batch
    assert active_session() is None
    kinds = [(c[0], c[1]["mode"] if c[0] == "create" else c[1]) for c in client.calls]
    assert kinds == [("create", "batch"), ("create", "dedicated"), ("close", "s2"), ("close", "s1")]
    assert client.calls[0][1]["max_ttl"] == 60
    batch.close()  # already closed: no second request
    assert len(client.calls) == 4


def test_cancel_and_status(backend):
    batch = Batch(backend)
    batch.cancel()
    assert backend.service.client.calls[-1] == ("cancel", batch.session_id)
    assert batch.status() == "In progress, accepting new jobs"
    assert batch.details()["backend_name"] == "b"


def test_from_id_checks_mode(backend):
    batch = Batch.from_id("abc", service=backend.service)
    assert batch.session_id == "abc" and batch.backend() == "b"
    with pytest.raises(InvalidInputError, match="Batch.from_id"):
        Session.from_id("abc", service=backend.service)


def test_needs_a_rest_backend():
    with pytest.raises(InvalidInputError):
        Session("rest_simulator")
