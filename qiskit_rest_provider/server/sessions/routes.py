"""Runtime session endpoints (protocol §3.10), mounted under ``/api/v1`` and ``/runtime``."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...wire import protocol
from ...wire.rest import (
    ERROR_RESPONSES,
    SessionCreate,
    SessionDetails,
    SessionUpdate,
    request_body,
)
from ..auth.tokens import Caller, CallerDep
from ..http import ApiError, json_response, parse_body
from ..jobs.models import SessionRow
from ..jobs.shapes import DEFAULT_INTERACTIVE_TTL, DEFAULT_MAX_TTL, new_session_row, session_json
from ..state import server_state

router = APIRouter(responses=ERROR_RESPONSES)

MAX_TTL_LIMIT = 7 * 24 * 3600


def _ttl(value: float | None, field: str, default: int) -> int:
    if value is None:
        return default
    if not 0 < value <= MAX_TTL_LIMIT:
        raise ApiError(400, f"{field}: expected seconds in (0, {MAX_TTL_LIMIT}], got {value!r}")
    return int(value)


def _load(request: Request, session_id: str, caller: Caller) -> SessionRow:
    row = server_state(request).store.get_session(session_id, caller.instance_id)
    if row is None:
        raise ApiError(404, f"session {session_id} not found", code="session_not_found")
    return row


def _view(request: Request, row: SessionRow) -> dict[str, Any]:
    store = server_state(request).store
    return session_json(row, store.session_job_states(row.id), store.session_usage(row.id))


@router.post("/sessions", response_model=SessionDetails, openapi_extra=request_body(SessionCreate))
async def create_session(request: Request, caller: CallerDep) -> Response:
    """Open a session (``mode`` dedicated) or batch (``mode`` batch)."""
    st = server_state(request)
    body = await parse_body(request, SessionCreate)
    backend = body.backend if "backend" in body.model_fields_set else body.backend_name
    if not backend:
        raise ApiError(400, "backend: required string")
    if backend not in st.catalog:
        raise ApiError(404, f"backend: backend {backend!r} not found", code="backend_not_found")
    if body.instance is not None and not caller.owns_instance(body.instance):
        raise ApiError(403, "instance names an instance this token has no access to")
    ttl = body.max_ttl if "max_ttl" in body.model_fields_set else body.max_session_ttl
    max_ttl = _ttl(ttl, "max_ttl", DEFAULT_MAX_TTL)
    interactive = _ttl(body.interactive_ttl, "interactive_ttl", DEFAULT_INTERACTIVE_TTL)
    row = new_session_row(caller, backend, body.mode, max_ttl, interactive)
    await run_in_threadpool(st.store.add_session, row)
    return json_response(await run_in_threadpool(_view, request, row))


@router.get("/sessions/{session_id}", response_model=SessionDetails)
def get_session(request: Request, session_id: str, caller: CallerDep) -> Response:
    """A session's details and computed state."""
    return json_response(_view(request, _load(request, session_id, caller)))


@router.patch("/sessions/{session_id}", status_code=204, openapi_extra=request_body(SessionUpdate))
async def update_session(request: Request, session_id: str, caller: CallerDep) -> Response:
    """``{"accepting_jobs": false}``: stop taking jobs; queued and running ones finish."""
    st = server_state(request)
    body = await parse_body(request, SessionUpdate)
    accepting = body.accepting_jobs
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
            (protocol.QUEUED,),
            protocol.CANCELLED,
            log="session closed",
            reason=f"session {session_id} was closed",
        ):
            st.dispatcher.prepared.pop(job_id, None)
            st.watchers.notify(job_id)
    return Response(status_code=204)
