"""Runtime session endpoints (protocol §3.10), mounted under ``/api/v1`` and ``/runtime``."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ..auth.tokens import Caller, CallerDep
from ..http import ApiError
from ..jobs.models import SessionRow
from ..jobs.shapes import as_bool, json_body, json_response, session_json
from ..jobs.store import new_id
from ..state import server_state

router = APIRouter()

DEFAULT_MAX_TTL = 28800
DEFAULT_INTERACTIVE_TTL = 600
MAX_TTL_LIMIT = 7 * 24 * 3600


def _ttl(value: Any, field: str, default: int) -> int:
    if value is None:
        return default
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < value <= MAX_TTL_LIMIT
    ):
        raise ApiError(400, f"{field}: expected seconds in (0, {MAX_TTL_LIMIT}], got {value!r}")
    return int(value)


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


def _load(request: Request, session_id: str, caller: Caller) -> SessionRow:
    row = server_state(request).store.get_session(session_id, caller.instance_id)
    if row is None:
        raise ApiError(404, f"session {session_id} not found", code="session_not_found")
    return row


def _view(request: Request, row: SessionRow) -> dict[str, Any]:
    store = server_state(request).store
    return session_json(row, store.session_job_states(row.id), store.session_usage(row.id))


@router.post("/sessions")
async def create_session(request: Request, caller: CallerDep) -> Response:
    """Open a session (``mode`` dedicated) or batch (``mode`` batch)."""
    st = server_state(request)
    body = await json_body(request)
    mode = body.get("mode", "dedicated")
    if mode not in ("dedicated", "batch"):
        raise ApiError(400, f"mode: expected 'dedicated' or 'batch', got {mode!r}")
    backend = body.get("backend", body.get("backend_name"))
    if not isinstance(backend, str) or not backend:
        raise ApiError(400, "backend: required string")
    if backend not in st.catalog:
        raise ApiError(404, f"backend: backend {backend!r} not found", code="backend_not_found")
    instance = body.get("instance")
    if instance is not None and (
        not isinstance(instance, str) or not caller.owns_instance(instance)
    ):
        raise ApiError(403, "instance names an instance this token has no access to")
    max_ttl = _ttl(body.get("max_ttl", body.get("max_session_ttl")), "max_ttl", DEFAULT_MAX_TTL)
    interactive = _ttl(body.get("interactive_ttl"), "interactive_ttl", DEFAULT_INTERACTIVE_TTL)
    row = new_session_row(caller, backend, mode, max_ttl, interactive)
    await run_in_threadpool(st.store.add_session, row)
    return json_response(await run_in_threadpool(_view, request, row))


@router.get("/sessions/{session_id}")
def get_session(request: Request, session_id: str, caller: CallerDep) -> Response:
    """A session's details and computed state."""
    return json_response(_view(request, _load(request, session_id, caller)))


@router.patch("/sessions/{session_id}", status_code=204)
async def update_session(request: Request, session_id: str, caller: CallerDep) -> Response:
    """``{"accepting_jobs": false}``: stop taking jobs; queued and running ones finish."""
    st = server_state(request)
    body = await json_body(request)
    if "accepting_jobs" not in body:
        raise ApiError(400, "accepting_jobs: required boolean")
    accepting = as_bool(body["accepting_jobs"], "accepting_jobs")
    row = await run_in_threadpool(_load, request, session_id, caller)
    if accepting and row.closed:
        raise ApiError(409, f"session {session_id} is closed and cannot accept jobs again")
    values: dict[str, Any] = {"accepting_jobs": accepting}
    if not accepting:
        values["state_reason"] = "closed by the user"
    await run_in_threadpool(st.store.update_session, session_id, **values)
    return Response(status_code=204)


@router.delete("/sessions/{session_id}/close", status_code=204)
def cancel_session(request: Request, session_id: str, caller: CallerDep) -> Response:
    """Close the session now and cancel its queued jobs (running ones finish)."""
    st = server_state(request)
    _load(request, session_id, caller)
    st.store.update_session(
        session_id,
        accepting_jobs=False,
        closed=True,
        closed_at=time.time(),
        state_reason="cancelled by the user",
    )
    for job_id in st.store.queued_job_ids_of_session(session_id):
        if st.store.transition(
            job_id,
            ("Queued",),
            "Cancelled",
            log="session closed",
            reason=f"session {session_id} was closed",
        ):
            st.dispatcher.prepared.pop(job_id, None)
            st.watchers.notify(job_id)
    return Response(status_code=204)
