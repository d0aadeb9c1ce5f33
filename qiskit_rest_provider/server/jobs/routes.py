"""Runtime job endpoints (protocol §3.6–3.9), mounted under ``/api/v1`` and ``/runtime``."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...wire import protocol
from ...wire.rest import (
    ERROR_RESPONSES,
    JobCreate,
    JobCreated,
    JobDetails,
    JobMetrics,
    JobsPage,
    TagsUpdate,
    request_body,
)
from ..auth.tokens import Caller, CallerDep
from ..backends.catalog import current_calibration_id
from ..http import ApiError, json_response, parse_body, parse_time
from ..state import server_state
from .events import pubs_count
from .models import Job
from .quotas import check_queue, job_shots, submission_guard
from .shapes import is_final, job_json
from .store import JobFilters, new_id

logger = logging.getLogger(__name__)
router = APIRouter(responses=ERROR_RESPONSES)

PROGRAMS = (*protocol.PRIMITIVE_PROGRAMS, protocol.EXECUTOR, protocol.NOISE_LEARNER)
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
MAX_TAGS = 50
MAX_TAG_LENGTH = 256
MAX_WAIT_SECONDS = protocol.MAX_WAIT_SECONDS
#: Largest ``offset``/``skip`` of ``GET /jobs`` (beyond it a database's 64-bit OFFSET overflows).
MAX_OFFSET = 10**12
#: Repeated ``tags=`` query parameters a listing may filter by (more answer 400).
MAX_TAG_FILTERS = MAX_TAGS
#: Page size of a listing that includes ``params`` (each may be megabytes): larger is clamped.
MAX_LIMIT_WITH_PARAMS = 50
#: The binary result container (:mod:`wire.protocol` names it; no Qiskit is imported for it).
BINARY_RESULT = protocol.BINARY_RESULT_MEDIA_TYPE
_JSON_RANGES = ("application/json", "application/*", "*/*")


def _tags(value: Any, field: str = "tags") -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ApiError(400, f"{field}: expected a list of strings", code="invalid_request")
    if len(value) > MAX_TAGS:
        raise ApiError(400, f"{field}: at most {MAX_TAGS} tags are allowed", code="1204")
    for tag in value:
        if not tag or len(tag) > MAX_TAG_LENGTH:
            raise ApiError(
                400,
                f"{field}: tags must be 1-{MAX_TAG_LENGTH} characters, got {tag!r}",
                code="1205",
            )
    return list(value)


def _check_classic_instance(body: JobCreate, caller: Caller) -> None:
    parts = [body.hub, body.group, body.project]
    if any(p is not None for p in parts):
        if not all(parts):
            raise ApiError(400, "hub, group and project must be given together as strings")
        if "/".join(parts) != caller.instance_hgp:  # type: ignore[arg-type]
            raise ApiError(403, "hub/group/project names an instance this token has no access to")
    if body.instance and not caller.owns_instance(body.instance):
        raise ApiError(403, "instance names an instance this token has no access to")


def _load_job(request: Request, job_id: str, caller: Caller, **kw: bool) -> Job:
    job = server_state(request).store.get_job(job_id, caller.instance_id, **kw)
    if job is None:
        raise ApiError(404, f"job {job_id} not found", code="job_not_found")
    return job


@router.post("/jobs", response_model=JobCreated, openapi_extra=request_body(JobCreate))
async def create_job(request: Request, caller: CallerDep) -> Response:
    """Validate, persist (Queued) and hand over a job; answers once the job is committed.

    The body is checked against :class:`~qiskit_rest_provider.wire.rest.JobCreate` (types,
    after authentication), then here (program, backend, session, limits), then ``params`` by the
    admission against the program's models; ``params`` is passed on untouched.
    """
    st = server_state(request)
    body = await parse_body(request, JobCreate, codes={"params": "invalid_params"})
    key = request.headers.get(protocol.IDEMPOTENCY_KEY_HEADER)
    if key is not None and not (0 < len(key) <= 200):
        raise ApiError(400, f"{protocol.IDEMPOTENCY_KEY_HEADER} must be 1-200 characters")
    program_id = body.program_id
    if program_id not in PROGRAMS:
        raise ApiError(
            404,
            f"program_id: program {program_id!r} not found (known: {', '.join(PROGRAMS)})",
            code="program_not_found",
        )
    backend = body.backend if "backend" in body.model_fields_set else body.backend_name
    if not backend:
        raise ApiError(400, "backend: required string", code="invalid_request")
    if backend not in st.catalog:
        raise ApiError(404, f"backend: backend {backend!r} not found", code="backend_not_found")
    params = body.params
    _check_classic_instance(body, caller)
    tags = _tags(body.tags)
    log_level = body.log_level
    if log_level is not None:
        if log_level.lower() not in LOG_LEVELS:
            raise ApiError(400, f"log_level: expected one of {', '.join(LOG_LEVELS)} (any case)")
        log_level = log_level.lower()
    cost = body.cost
    if cost is not None and cost <= 0:
        raise ApiError(400, f"cost: expected a positive number of seconds, got {cost!r}")
    private = body.private
    start_session = body.start_session
    session_id = body.session_id
    spec = st.catalog.get(backend)

    def admit() -> Job:
        """Everything that reads or writes the store, in one hop to a thread.

        The job this key made already (answered as is, before any later check), else the
        limits, the backend and session checks, ``params`` and the day's quotas; then the job
        is stored.
        """
        existing, quota_row = _existing_or_check_limits(st, caller, key, cost)
        if existing is not None:
            return existing
        _check_target(body, backend, program_id, spec, session_id)
        if session_id:
            _check_session(st, session_id, backend, caller)
        t0 = time.perf_counter()
        prepared = _prepare(program_id, params, spec)
        parse_seconds = time.perf_counter() - t0
        shots = job_shots(prepared)
        sid = session_id
        if start_session and not sid:
            from .shapes import new_session_row

            row = new_session_row(caller, backend, "dedicated", None, None)
            st.store.add_session(row)
            sid = row.id
        job = Job(
            id=new_id(),
            instance_id=caller.instance_id,
            user_id=caller.user_id,
            backend=backend,
            program_id=program_id,
            params=orjson.dumps(params),
            state=protocol.QUEUED,
            tags=orjson.dumps(tags).decode(),
            session_id=sid,
            log_level=log_level,
            cost=math.ceil(cost) if cost is not None else None,
            private=private,
            created=time.time(),
            logs=f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} queued\n",
            idempotency_key=key or None,
            usage_seconds=0.0,
            quantum_seconds=0.0,
            attempts=0,
            shots=shots,
        )
        # the quotas are checked again in the insert's transaction, under a lock (atomic)
        guard = submission_guard(st, caller, shots, quota_row)
        # Remembered before the commit: a dispatcher woken by another job may claim this one
        # the moment it is committed, and must find it prepared (else the worker parses again).
        st.dispatcher.remember_prepared(job.id, prepared, parse_seconds)
        try:
            stored, created = st.store.create_job(job, guard=guard)
        except BaseException:  # refused (a quota) or not stored: nothing will run it
            st.dispatcher.forget_prepared(job.id)
            raise
        if not created:  # a concurrent repeat of the key made the job first
            st.dispatcher.forget_prepared(job.id)
            return stored
        # From this thread, the moment the job is committed: the dispatcher claims it while the
        # answer goes back to the event loop and out (woken from the loop after the hop, it
        # waited for the loop to let go of the interpreter: ~1.5 ms of a Bell job).
        st.watchers.events.admitted(stored.id, pubs_count(program_id, params))
        st.dispatcher.wake()
        return stored

    stored = await run_in_threadpool(admit)
    return json_response(_created(stored), headers=_RESULTS_WAIT)


#: D16, announced with every accepted job: this server long-polls its results route.
_RESULTS_WAIT = {protocol.RESULTS_WAIT_HEADER: f"{MAX_WAIT_SECONDS:g}"}


def _check_target(
    body: JobCreate, backend: str, program_id: str, spec: Any, session_id: str | None
) -> None:
    """The session id's type, the dry-run twin's program, the calibration asked for."""
    if session_id is not None and not session_id:
        raise ApiError(400, "session_id: expected a string")
    if spec.dry_run_of and program_id != protocol.EXECUTOR:
        raise ApiError(
            400,
            f"backend: {backend!r} is the dry-run twin of {spec.dry_run_of!r}; it runs dry runs of "
            "the executor program only (Executor.run(..., dry_run=True))",
            code="invalid_request",
        )
    if body.calibration_id is not None and body.calibration_id != current_calibration_id(spec):
        raise ApiError(
            400,
            f"calibration_id: {body.calibration_id!r} is not a calibration of {backend} "
            f"(current: {current_calibration_id(spec)})",
            code="calibration_not_found",
        )


def _prepare(program_id: str, params: Any, spec: Any) -> Any:
    """The admission's validated job; any problem with ``params`` is a 400 naming the field."""
    from .admission import JobInputError, prepare_job

    try:
        return prepare_job(program_id, params, spec)
    except JobInputError as exc:
        field = getattr(exc, "field", None)
        msg = str(exc)
        if field and field not in msg:
            msg = f"{field}: {msg}"
        raise ApiError(400, msg, code=getattr(exc, "code", None) or "invalid_params") from exc
    except ValueError as exc:  # WireFormatError and friends name the field themselves
        raise ApiError(400, f"params: {exc}", code="invalid_params") from exc
    except Exception as exc:  # bad input must never become a 500
        logger.warning(
            "prepare_job raised %s for a %s job", type(exc).__name__, program_id, exc_info=True
        )
        raise ApiError(
            400,
            f"params: could not prepare the job: {type(exc).__name__}: {exc}",
            code="invalid_params",
        ) from exc


def _existing_or_check_limits(
    st: Any, caller: Caller, key: str | None, cost: float | None
) -> tuple[Job | None, Any]:
    """The job an ``Idempotency-Key`` already made (answered as is), else check the limits.

    Returns ``(existing job or None, the instance's quota row)``.
    """
    if key:
        existing = st.store.job_by_key(caller.instance_id, key)
        if existing is not None:
            return existing, None
    return None, _check_limits(st, caller, cost)


def _check_limits(st: Any, caller: Caller, cost: float | None) -> Any:
    """The job's time limit within the server's maximum; room in the instance's queue.

    Returns the instance's quota row (:func:`.quotas.check_queue`).
    """
    limit = st.config.max_execution_time
    if cost is not None and cost > limit:
        raise ApiError(
            400,
            f"cost: max_execution_time {cost:g} s exceeds this server's maximum of {limit:g} s "
            "(--max-execution-time)",
            code="invalid_request",
        )
    return check_queue(st, caller)  # the instance's max_queued_jobs quota (or the default)


def _created(job: Job) -> dict[str, Any]:
    out: dict[str, Any] = {"id": job.id, "backend": job.backend}
    if job.session_id:
        out["session_id"] = job.session_id
    return out


def _check_session(st: Any, session_id: str, backend: str, caller: Caller) -> None:
    from .shapes import session_state

    row = st.store.get_session(session_id, caller.instance_id)
    if row is None:
        raise ApiError(404, f"session_id: session {session_id} not found", code="session_not_found")
    state, reason = session_state(row, st.store.session_job_states(session_id))
    if state == "closed" or not row.accepting_jobs:
        why = reason or "it no longer accepts jobs"
        raise ApiError(400, f"session_id: session {session_id} is closed ({why})", code="4001")
    if row.backend != backend:
        raise ApiError(
            400,
            f"session_id: session {session_id} runs on backend {row.backend!r}, not {backend!r}",
        )


@router.get("/jobs/{job_id}", response_model=JobDetails)
async def get_job(
    request: Request,
    job_id: str,
    caller: CallerDep,
    exclude_params: bool = False,
    wait: Annotated[float | None, Query(ge=0, description="long-poll seconds")] = None,
) -> Response:
    """A job; with ``wait=S`` (D6) answers as soon as it is final or ``S`` seconds passed."""
    job = await _await_final(request, job_id, caller, wait, with_params=not exclude_params)
    return json_response(
        job_json(job, include_params=not exclude_params, instance_crn=caller.instance_crn)
    )


async def _await_final(
    request: Request,
    job_id: str,
    caller: Caller,
    wait: float | None,
    *,
    with_params: bool,
    settled: Callable[[], bool] | None = None,
) -> Job:
    """The job (without its result) once it is final or ``wait`` seconds passed (D6, D16).

    ``settled``: asked after each wake-up; when it answers true the row read before the wait
    is returned as it was, not read again (the caller knows the job's end another way).
    """
    st = server_state(request)
    # Without its params a job is one indexed row: on SQLite (WAL: a read never waits for a
    # writer) read it on the event loop, like the authenticator's cache check, instead of two
    # thread hops per long-poll. Params (possibly megabytes) and other databases go to a thread.
    on_loop = not with_params and st.store.cheap_point_reads
    watch = st.watchers.register(job_id, final_only=True) if wait else None
    try:
        deadline = time.monotonic() + min(wait or 0.0, MAX_WAIT_SECONDS)
        while True:
            if on_loop:
                job = _load_job(request, job_id, caller, with_params=False)
            else:
                job = await run_in_threadpool(
                    _load_job, request, job_id, caller, with_params=with_params
                )
            remaining = deadline - time.monotonic()
            if watch is None or is_final(job.state) or remaining <= 0:
                return job
            await watch.wait(remaining)
            if settled is not None and settled():
                return job
    finally:
        if watch is not None:
            st.watchers.unregister(job_id, watch)


@router.get("/jobs", response_model=JobsPage)
def list_jobs(
    request: Request,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=0, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    skip: Annotated[int | None, Query(ge=0, le=MAX_OFFSET)] = None,
    backend: str | None = None,
    pending: bool | None = None,
    program: str | None = None,
    program_id: str | None = None,
    tags: Annotated[list[str] | None, Query()] = None,
    session_id: str | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
    sort: str | None = None,
    exclude_params: bool = True,
    provider: str | None = None,
    include_mocks: str | None = None,
) -> Response:
    """Jobs of the caller's instance, newest first unless ``sort=ASC``; ``count`` is exact."""
    if provider and not caller.owns_instance(provider):
        raise ApiError(403, "provider names an instance this token has no access to")
    if sort is not None and sort.upper() not in ("ASC", "DESC"):
        raise ApiError(400, f"sort: expected ASC or DESC, got {sort!r}")
    if tags is not None and len(tags) > MAX_TAG_FILTERS:
        raise ApiError(400, f"tags: at most {MAX_TAG_FILTERS} tags may be given, got {len(tags)}")
    if not exclude_params:
        limit = min(limit, MAX_LIMIT_WITH_PARAMS)
    filters = JobFilters(
        instance_id=caller.instance_id,
        limit=limit,
        offset=skip if skip is not None and not offset else offset,
        backend=backend,
        pending=pending,
        program=program or program_id,
        tags=tags,
        session_id=session_id,
        created_after=parse_time(created_after, "created_after") if created_after else None,
        created_before=parse_time(created_before, "created_before") if created_before else None,
        ascending=(sort or "").upper() == "ASC",
    )
    rows, count = server_state(request).store.list_jobs(filters, with_params=not exclude_params)
    jobs = [
        job_json(j, include_params=not exclude_params, instance_crn=caller.instance_crn)
        for j in rows
    ]
    return json_response({"jobs": jobs, "count": count, "offset": filters.offset, "limit": limit})


@router.post("/jobs/{job_id}/cancel", status_code=204)
def cancel_job(request: Request, job_id: str, caller: CallerDep) -> Response:
    """Cancel a Queued or Running job (409 when it is already final)."""
    st = server_state(request)
    _load_job(request, job_id, caller, with_params=False)
    if not st.dispatcher.cancel(job_id, "cancelled by the user"):
        job = _load_job(request, job_id, caller, with_params=False)
        raise ApiError(
            409,
            f"job {job_id} cannot be cancelled: it is already {job.state}",
            code="job_not_cancellable",
        )
    return Response(status_code=204)


@router.delete("/jobs/{job_id}", status_code=204)
def delete_job(request: Request, job_id: str, caller: CallerDep) -> Response:
    """Delete a job in a final state (409 while it is Queued or Running)."""
    st = server_state(request)
    job = _load_job(request, job_id, caller, with_params=False)
    if not is_final(job.state) or not st.store.delete_job(job_id):
        raise ApiError(
            409,
            f"job {job_id} is {job.state}; only final jobs can be deleted",
            code="job_not_final",
        )
    st.watchers.fresh.drop(job_id)
    return Response(status_code=204)


def prefers_binary(accept: str | None) -> bool:
    """Whether an ``Accept`` header asks for the binary result container over JSON.

    It must name :data:`BINARY_RESULT` with ``q > 0`` and at least the ``q`` of JSON (taken from
    the most specific of ``application/json``, ``application/*``, ``*/*`` present; 0 if none).
    Wildcards alone never select it, so clients that do not know it always get JSON.
    """
    if not accept or BINARY_RESULT not in accept.lower():
        return False
    binary_q = 0.0
    json_q: dict[str, float] = {}
    for item in accept.lower().split(","):
        media, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        if media == BINARY_RESULT:
            binary_q = max(binary_q, q)
        elif media in _JSON_RANGES:
            json_q[media] = max(json_q.get(media, 0.0), q)
    best_json = next((json_q[m] for m in _JSON_RANGES if m in json_q), 0.0)
    return binary_q > 0 and binary_q >= best_json


#: Stored bodies shorter than this answer as they are, even to a client that prefers the binary
#: container: what it saves the client there (a base64 decode of a few KiB, microseconds) is far
#: less than the conversion costs the server (a JSON parse and re-pack: ~0.3 ms of the event
#: loop's process per small job, a tenth of a Bell job's server time).
_BINARY_MIN_BODY = 4096


def _binary_body(job_id: str, body: bytes) -> bytes | None:
    """The stored Qiskit-encoded body as the binary container, or ``None`` (answer JSON)."""
    from ...wire.results import to_binary  # lazily: the wire code pulls in qiskit

    try:
        return to_binary(body)
    except (ValueError, TypeError) as exc:  # WireFormatError is a ValueError
        logger.warning("job %s: result not convertible to %s (%s)", job_id, BINARY_RESULT, exc)
        return None


_RESULT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the result (JSON, or the binary container), or a failed job's error text",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            BINARY_RESULT: {"schema": {"type": "string", "format": "binary"}},
            "text/plain": {"schema": {"type": "string"}},
        },
    },
    204: {"description": "a private job's result, already read once"},
}


@router.get("/jobs/{job_id}/results", responses=_RESULT_RESPONSES)
async def job_results(
    request: Request,
    job_id: str,
    caller: CallerDep,
    wait: Annotated[float | None, Query(ge=0, description="long-poll seconds (D16)")] = None,
) -> Response:
    """The result body. Failed/cancelled jobs answer 200 with the error text (§5.4).

    Completed jobs answer JSON, or the binary container (``application/x-qiskit-rest-result``,
    an optional extension) when ``Accept`` prefers it and the job was submitted with
    ``support_qiskit`` (a plain §5.1 body has no container form).

    With ``wait=S`` (D16) the answer waits until the job is final, at most ``S`` seconds (capped
    at 30): a client then needs no status long-poll before it; a job still not final answers
    ``409 job_not_final`` as without ``wait``. Every answer names the job's status in
    ``X-Job-Status``.

    A private job's result is readable once: the first read gets it; every later read gets
    ``204 No Content``. An empty 2xx body is what the official client turns into
    ``job.result() is None`` (its own integration suite asserts exactly that), where a 4xx would
    raise from ``result()``.
    """
    if wait:
        fresh = server_state(request).watchers.fresh
        job = await _await_final(
            request,
            job_id,
            caller,
            wait,
            with_params=False,
            settled=lambda: fresh.get(job_id) is not None,
        )
        body = None if job.private else fresh.get(job_id)
        if body is not None:  # this process' dispatcher just stored it: no read, no thread
            return _completed_answer(request, job_id, body, protocol.COMPLETED)
    return await run_in_threadpool(_results_answer, request, job_id, caller)


def _completed_answer(request: Request, job_id: str, body: bytes, state: str) -> Response:
    """A Completed job's body as the client's ``Accept`` asks (the binary container, or JSON)."""
    headers = {"Vary": "Accept", protocol.JOB_STATUS_HEADER: state}
    if len(body) >= _BINARY_MIN_BODY and prefers_binary(request.headers.get("accept")):
        packed = _binary_body(job_id, body)
        if packed is not None:
            return Response(packed, media_type=BINARY_RESULT, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


def _results_answer(request: Request, job_id: str, caller: Caller) -> Response:
    """:func:`job_results`' answer, read in a thread (the result may be megabytes, or a file)."""
    st = server_state(request)
    job = _load_job(request, job_id, caller, with_result=True, with_params=False)
    if not is_final(job.state):
        raise ApiError(
            409,
            f"job {job_id} is {job.state}; results exist once it is final",
            code="job_not_final",
        )
    status = {protocol.JOB_STATUS_HEADER: job.state}
    if job.state == protocol.COMPLETED and job.private and job.results_consumed_at is not None:
        return _consumed(job_id, status)
    body = st.store.read_result(job)
    if job.state == protocol.COMPLETED:
        if body is None:
            raise ApiError(500, f"the result of job {job_id} is missing from the store")
        if job.private and not st.store.consume_results(job_id):
            return _consumed(job_id, status)  # a concurrent read got it first
        return _completed_answer(request, job_id, body, job.state)
    text = (
        body.decode(errors="replace") if body else f"Job {job_id} {job.state}: {job.reason or ''}"
    )
    return Response(text, media_type="text/plain", headers=status)


def _consumed(job_id: str, headers: dict[str, str]) -> Response:
    logger.info("job %s: private result already read; answering 204", job_id)
    return Response(status_code=204, headers=headers)


@router.get("/jobs/{job_id}/logs")
def job_logs(request: Request, job_id: str, caller: CallerDep) -> Response:
    """The job's log lines (text)."""
    job = _load_job(request, job_id, caller, with_params=False)
    return Response(job.logs or "", media_type="text/plain")


@router.get("/jobs/{job_id}/metrics", response_model=JobMetrics)
def job_metrics(request: Request, job_id: str, caller: CallerDep) -> Response:
    """Timestamps, usage and execution metrics (§3.9)."""
    st = server_state(request)
    job = _load_job(request, job_id, caller, with_params=False)
    from ..http import iso

    extra: dict[str, Any] = orjson.loads(job.metrics) if job.metrics else {}
    final = is_final(job.state)
    out: dict[str, Any] = {
        "timestamps": {
            "created": iso(job.created),
            "running": iso(job.running_at),
            "finished": iso(job.finished_at),
        },
        "bss": {"seconds": job.usage_seconds or 0.0},
        "usage": {
            "quantum_seconds": job.quantum_seconds or 0.0,
            "seconds": job.usage_seconds or 0.0,
            "qpu_charge_time_seconds": job.usage_seconds or 0.0,
            "status": "completed" if final else "pending",
        },
        "executions": extra.get("num_circuits", 0),
        "num_circuits": extra.get("num_circuits", 0),
        "num_qubits": extra.get("num_qubits", []),
        "circuit_depths": extra.get("circuit_depths", []),
        "qiskit_version": _qiskit_version(),
        "estimated_start_time": None,
        "estimated_completion_time": None,
        "position_in_queue": st.store.queue_position(job) if job.state == protocol.QUEUED else None,
        "position_in_provider": None,
    }
    for key, value in extra.items():
        out.setdefault(key, value)
    return json_response(out)


@router.put("/jobs/{job_id}/tags", status_code=204, openapi_extra=request_body(TagsUpdate))
async def replace_tags(request: Request, job_id: str, caller: CallerDep) -> Response:
    """Replace a job's tags; answers 204 exactly (the official client requires it)."""
    st = server_state(request)
    body = await parse_body(request, TagsUpdate)
    tags = _tags(body.tags, "tags")
    await run_in_threadpool(_load_job, request, job_id, caller)
    await run_in_threadpool(st.store.set_tags, job_id, tags)
    return Response(status_code=204)


def _qiskit_version() -> str:
    import qiskit

    return str(qiskit.__version__)
