"""JSON shapes of jobs and sessions (protocol §3.7, §3.10), and new session rows.

Responses are built here and serialised with orjson (:func:`~qiskit_rest_provider.server.http.
json_response`); their models in :mod:`qiskit_rest_provider.wire.rest` only describe them (FastAPI
does not re-validate a ``Response``), so no second pass over large documents.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from ...wire import protocol
from ..auth.tokens import Caller
from ..http import iso
from .models import FINAL_STATES, Job, SessionRow
from .store import new_id

DEFAULT_MAX_TTL = 28800
"""A session's default maximum life (seconds, 8 h)."""

DEFAULT_INTERACTIVE_TTL = 600
"""A session's default idle time between jobs (seconds)."""


def job_json(
    job: Job, *, include_params: bool = False, instance_crn: str | None = None
) -> dict[str, Any]:
    """A job as ``GET jobs/{id}`` shows it."""
    state: dict[str, Any] = {
        "status": job.state,
        "reason": job.reason,
        "reason_code": job.reason_code,
    }
    out: dict[str, Any] = {
        "id": job.id,
        "backend": job.backend,
        "state": state,
        "status": job.state,
        "program": {"id": job.program_id},
        "created": iso(job.created),
        "session_id": job.session_id,
        "tags": orjson.loads(job.tags or "[]"),
        "private": bool(job.private),
        "cost": job.cost or 0,
        "user_id": job.user_id,
        "usage": {"seconds": job.usage_seconds or 0.0},
        "runtime": "",
        "log_level": job.log_level,
        "estimated_running_time_seconds": None,
    }
    if instance_crn:
        out["instance"] = instance_crn
    if include_params and not job.private:
        out["params"] = orjson.Fragment(job.params)
    return out


def session_state(
    row: SessionRow, counts: dict[str, int], now: float | None = None
) -> tuple[str, str | None]:
    """The session's protocol state and reason, computed from its row and its jobs."""
    now = time.time() if now is None else now
    pending = counts.get(protocol.QUEUED, 0) + counts.get(protocol.RUNNING, 0)
    if row.closed:
        return "closed", row.state_reason
    if now > row.created + row.max_ttl:
        return "closed", "max_ttl expired"
    if not row.accepting_jobs and pending == 0:
        return "closed", row.state_reason or "closed by the user"
    if row.activated_at is None and pending == 0:
        return "open", None
    if pending:
        return "active", None
    last = max(
        t
        for t in (row.last_job_completed, row.last_job_started, row.activated_at, row.created)
        if t
    )
    if now - last > row.interactive_ttl:
        return "inactive", "interactive_ttl expired"
    return "active", None


def session_json(row: SessionRow, counts: dict[str, int], usage: float) -> dict[str, Any]:
    """A session as ``GET sessions/{id}`` shows it."""
    state, reason = session_state(row, counts)
    stamps = [{"status": "open", "timestamp": iso(row.created)}]
    if row.activated_at:
        stamps.append({"status": "active", "timestamp": iso(row.activated_at)})
    closed_at = row.closed_at
    if state == "closed" and closed_at is None:
        closed_at = min(time.time(), row.created + row.max_ttl)
    if state == "closed":
        stamps.append({"status": "closed", "timestamp": iso(closed_at)})
    return {
        "id": row.id,
        "backend_name": row.backend,
        "mode": row.mode,
        "state": state,
        "state_reason": reason,
        "accepting_jobs": bool(row.accepting_jobs) and state != "closed",
        "interactive_ttl": row.interactive_ttl,
        "max_ttl": row.max_ttl,
        "active_ttl": row.max_ttl,
        "started_at": iso(row.created),
        "activated_at": iso(row.activated_at),
        "closed_at": iso(closed_at) if state == "closed" else None,
        "last_job_started": iso(row.last_job_started),
        "last_job_completed": iso(row.last_job_completed),
        "timestamps": stamps,
        "user_id": row.user_id,
        "elapsed_time": usage if state == "closed" else None,
        "jobs": {k: v for k, v in counts.items()},
    }


def is_final(state: str) -> bool:
    """Whether a job state is final."""
    return state in FINAL_STATES


def new_session_row(
    caller: Caller, backend: str, mode: str, max_ttl: int | None, interactive_ttl: int | None
) -> SessionRow:
    """A fresh open session owned by the caller's instance."""
    return SessionRow(
        id=new_id(),
        instance_id=caller.instance_id,
        user_id=caller.user_id,
        backend=backend,
        mode=mode,
        max_ttl=max_ttl or DEFAULT_MAX_TTL,
        interactive_ttl=interactive_ttl or DEFAULT_INTERACTIVE_TTL,
        accepting_jobs=True,
        closed=False,
        created=time.time(),
    )
