"""Live job events (D14), mounted under ``/api/v1`` and ``/runtime`` before the job routes.

``GET jobs/{id}/events`` streams one job, ``GET jobs/events?ids=a,b&session_id=s`` several, as
``text/event-stream``. Each event has an ``id`` (``Last-Event-ID`` replays what came after it),
an ``event`` (``state``, ``progress``, ``final``) and JSON ``data`` (``job_id``, ``state``,
``reason``, ``queue_position``, ``pubs_done``, ``pubs_total``); see :mod:`.events` for how they
are derived. A stream sends ``: keep-alive`` comments every ``event_heartbeat_seconds`` so
proxies keep it open, ends after the ``final`` event of every job it follows, and lives at most
``event_stream_seconds`` (the client reconnects with ``Last-Event-ID``).

Only the caller's instance's jobs are ever streamed: a single-job stream answers 404 exactly
where ``GET jobs/{id}`` does, and in a many-jobs stream another instance's ids are simply never
streamed (as if they did not exist).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from ...wire import protocol
from ...wire.rest import ERROR_RESPONSES
from ..auth.tokens import Caller, CallerDep
from ..http import ApiError
from ..state import ServerState, server_state
from .events import JobEvent, format_event, pubs_count
from .models import Job
from .store import JobFilters
from .watchers import Watch

router = APIRouter(responses=ERROR_RESPONSES)

#: How often a stream re-reads jobs that no notification covers (queue position, new jobs of a
#: session), in seconds.
POLL_SECONDS = 1.0
#: Most job ids one ``GET jobs/events`` may name.
MAX_IDS = 100
#: Most jobs of a session one stream follows.
MAX_SESSION_JOBS = 1000
_STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "server-sent events (D14)",
        # One event of the stream, as an SSE parser reads it (fields ``id``, ``event``, ``data``:
        # the JSON text of the event's data); schemathesis checks every event against it.
        "content": {
            protocol.EVENTS_MEDIA_TYPE: {
                "schema": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "event": {"type": "string", "enum": ["state", "progress", "final"]},
                        "data": {"type": "string"},
                    },
                    "required": ["id", "event", "data"],
                }
            }
        },
    }
}


@dataclass
class _Snapshot:
    """What one read of the store gives a stream: each job's history, and whether to go on."""

    histories: list[tuple[str, list[JobEvent]]]
    session_open: bool


def _last_event_id(request: Request, query_value: str | None) -> int | None:
    raw = request.headers.get(protocol.LAST_EVENT_ID_HEADER) or query_value
    if raw is None or not raw.strip():
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        value = -1
    if value < 0:
        raise ApiError(
            400,
            f"{protocol.LAST_EVENT_ID_HEADER}: expected the id of an event (an integer), "
            f"got {raw[:40]!r}",
            code="invalid_request",
        )
    return value


def _read(st: ServerState, caller: Caller, ids: list[str], session_id: str | None) -> _Snapshot:
    """Read the followed jobs and bring their histories up to date (runs in a thread)."""
    store = st.store
    jobs: dict[str, Job] = {}
    for job_id in ids:
        job = store.get_job(job_id, caller.instance_id, with_params=False)
        if job is not None:
            jobs[job.id] = job
    session_open = False
    if session_id:
        row = store.get_session(session_id, caller.instance_id)
        session_open = row is not None and bool(row.accepting_jobs) and not row.closed
        rows, _ = store.list_jobs(
            JobFilters(
                instance_id=caller.instance_id,
                session_id=session_id,
                limit=MAX_SESSION_JOBS,
                ascending=True,
            )
        )
        for job in rows:
            jobs.setdefault(job.id, job)
    log = st.watchers.events
    histories = []
    for job in jobs.values():
        known, pubs = log.known_pubs(job.id)
        if not known:  # admitted by an earlier process: read its params once
            params = store.job_params(job.id)
            pubs = pubs_count(job.program_id, orjson.loads(params)) if params else None
        position = store.queue_position(job) if job.state == protocol.QUEUED else None
        histories.append((job.id, log.observe(job, position, pubs)))
    return _Snapshot(histories, session_open)


async def _stream(
    st: ServerState,
    caller: Caller,
    ids: list[str],
    session_id: str | None,
    last_id: int | None,
) -> AsyncIterator[bytes]:
    config = st.config
    log = st.watchers.events
    watch = Watch()
    registered: set[str] = set()
    sent: dict[str, int] = {}
    now = time.monotonic()
    end = now + config.event_stream_seconds
    next_beat = now + config.event_heartbeat_seconds
    try:
        for job_id in ids:  # before the first read, so no change between the two is missed
            st.watchers.register(job_id, watch)
            registered.add(job_id)
        yield b"retry: 1000\n\n"
        while True:
            snap = await run_in_threadpool(_read, st, caller, ids, session_id)
            out: list[JobEvent] = []
            pending = False
            for job_id, history in snap.histories:
                if job_id not in registered:
                    st.watchers.register(job_id, watch)
                    registered.add(job_id)
                if job_id in sent:
                    new = [e for e in history if e.id > sent[job_id]]
                else:
                    new = log.after(history, last_id, log.base)
                if new:
                    sent[job_id] = new[-1].id
                    out.extend(new)
                if not history or history[-1].kind != protocol.EVENT_FINAL:
                    pending = True
            out.sort(key=lambda e: e.id)
            if out:
                yield b"".join(format_event(e) for e in out)
                next_beat = time.monotonic() + config.event_heartbeat_seconds
            if not pending and not snap.session_open:
                return
            now = time.monotonic()
            if now >= end:  # a client that went away is cancelled by Starlette
                return
            if now >= next_beat:
                yield b": keep-alive\n\n"
                next_beat = now + config.event_heartbeat_seconds
            polling = session_id is not None or any(
                h and h[-1].data["state"] == protocol.QUEUED for _, h in snap.histories
            )
            timeout = min(end, next_beat) - now
            if polling:
                timeout = min(timeout, POLL_SECONDS)
            await watch.wait(max(timeout, 0.01))
    finally:
        for job_id in registered:
            st.watchers.unregister(job_id, watch)


def _event_stream(body: AsyncIterator[bytes]) -> Response:
    return StreamingResponse(
        body,
        media_type=protocol.EVENTS_MEDIA_TYPE,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/jobs/events", responses=_STREAM_RESPONSES)
async def jobs_events(
    request: Request,
    caller: CallerDep,
    ids: str | None = None,
    session_id: str | None = None,
    last_event_id: str | None = None,
) -> Response:
    """Events of several jobs at once: the ``ids`` named (comma-separated) and/or a session's.

    Another instance's ids are never streamed. The stream ends when every job followed is final
    (and, with ``session_id``, the session accepts no more jobs), or after the stream lifetime.
    ``last_event_id`` stands in for the ``Last-Event-ID`` header (browsers cannot set it on a
    first connection).
    """
    st = server_state(request)
    wanted = [part.strip() for part in (ids or "").split(",") if part.strip()]
    if not wanted and not session_id:
        raise ApiError(
            400, "ids: give ids=ID,ID,... and/or session_id=ID to say which jobs to follow"
        )
    if len(wanted) > MAX_IDS:
        raise ApiError(400, f"ids: at most {MAX_IDS} job ids per stream, got {len(wanted)}")
    wanted = list(dict.fromkeys(wanted))
    last_id = _last_event_id(request, last_event_id)
    if session_id:
        row = await run_in_threadpool(st.store.get_session, session_id, caller.instance_id)
        if row is None:
            raise ApiError(
                404, f"session_id: session {session_id} not found", code="session_not_found"
            )
    return _event_stream(_stream(st, caller, wanted, session_id, last_id))


@router.get("/jobs/{job_id}/events", responses=_STREAM_RESPONSES)
async def job_events(
    request: Request, job_id: str, caller: CallerDep, last_event_id: str | None = None
) -> Response:
    """Events of one job (404 where ``GET jobs/{id}`` answers 404); ends after ``final``."""
    st = server_state(request)
    last_id = _last_event_id(request, last_event_id)
    job = await run_in_threadpool(st.store.get_job, job_id, caller.instance_id, with_params=False)
    if job is None:
        raise ApiError(404, f"job {job_id} not found", code="job_not_found")
    return _event_stream(_stream(st, caller, [job_id], None, last_id))
