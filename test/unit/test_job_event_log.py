"""The server's job event history (D14): derived states, ids, replay and restart semantics."""

from __future__ import annotations

import pytest

pytest.importorskip("sqlalchemy")

from qiskit_rest_provider.server.jobs.events import JobEventLog, format_event  # noqa: E402
from qiskit_rest_provider.server.jobs.models import Job  # noqa: E402


def _job(state, running_at=None, reason=None):
    return Job(id="j1", program_id="sampler", state=state, running_at=running_at, reason=reason)


def test_missed_states_are_filled_in_and_final_is_last():
    log = JobEventLog()
    log.observe(_job("Queued"), 3, 2)
    log.observe(_job("Queued"), 1, 2)  # queue moved: a progress event
    history = log.observe(_job("Completed", running_at=1.0), None, 2)
    assert [(e.kind, e.data["state"]) for e in history] == [
        ("state", "Queued"),
        ("progress", "Queued"),
        ("state", "Running"),
        ("final", "Completed"),
    ]
    assert [e.data["queue_position"] for e in history] == [3, 1, None, None]
    assert [e.data["pubs_done"] for e in history] == [0, 0, 0, 2]
    ids = [e.id for e in history]
    assert ids == sorted(ids) and min(ids) > log.base
    assert log.observe(_job("Completed", running_at=1.0), None, 2) == history  # nothing after final
    assert format_event(history[0]).startswith(f"id: {ids[0]}\nevent: state\ndata: {{".encode())


def test_replay_after_an_id_and_after_a_restart():
    log = JobEventLog()
    log.observe(_job("Queued"), 0, 1)
    history = log.observe(_job("Failed", reason="boom"), None, 1)
    assert history[-1].data["reason"] == "boom" and history[-1].data["pubs_done"] == 0
    assert JobEventLog.after(history, None, log.base) == history
    assert JobEventLog.after(history, history[0].id, log.base) == history[1:]
    assert JobEventLog.after(history, history[-1].id, log.base) == []
    # An id from an earlier process: the current state only.
    assert JobEventLog.after(history, log.base - 5, log.base) == history[-1:]
