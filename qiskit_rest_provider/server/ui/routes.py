"""The dashboard's pages, under ``/ui/`` (server-rendered with Jinja2, live parts with htmx).

Every page but sign-in needs a session (:mod:`.session`): a page request without one is
redirected to ``/ui/login``, anything else (fragments, the event stream, POSTs) answers 401.
Reads go through the same instance-scoped store queries as the REST routes, so a signed-in
person sees only their instance's jobs; another instance's job id answers 404, as on the API.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import orjson
from fastapi import APIRouter, Query, Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from ..auth import tokens
from ..auth.tokens import Caller
from ..backends.catalog import current_calibration_id
from ..jobs import models
from ..jobs.models import FINAL_STATES, Job
from ..jobs.quotas import instance_usage
from ..jobs.store import JobFilters
from ..jobs.summary import pub_inputs, result_outcomes
from . import session as ui_session
from . import svg
from .stream import MAX_STREAM_JOBS, job_state_stream

logger = logging.getLogger(__name__)
router = APIRouter(prefix="/ui", include_in_schema=False)

TEMPLATES = Path(__file__).parent / "templates"
env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

PAGE_SIZE = 50
#: Newest jobs a state filter looks through (the store filters pending/final; the exact state
#: is picked from this window, which the page says).
STATE_WINDOW = 1000
STATES = ("Queued", "Running", "Completed", "Failed", "Cancelled")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
#: Calibration table columns: (key, heading, unit).
QUBIT_COLUMNS = (
    ("qubit", "Qubit", ""),
    ("T1", "T1", "µs"),
    ("T2", "T2", "µs"),
    ("frequency", "Frequency", "GHz"),
    ("readout_error", "Readout error", ""),
    ("sx_error", "√X error", ""),
    ("two_qubit_error", "Mean 2q error", ""),
)


def _state(request: Request) -> Any:
    """The server's shared objects (``app.state.server``, set by the app's lifespan)."""
    return request.app.state.server


def _iso(t: float | None) -> str:
    if t is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}Z"


env.filters["stamp"] = _iso


def is_admin(request: Request, caller: Caller) -> bool:
    """Whether the caller signed in with the server's main token (the one ``serve`` prints)."""
    provisioned = getattr(request.app.state, "provisioned", None)
    return provisioned is not None and provisioned.caller.token_id == caller.token_id


def render(
    request: Request,
    name: str,
    caller: Caller | None = None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page (or fragment) rendered with autoescaping, with the dashboard's headers."""
    if caller is not None:
        context.setdefault("csrf", ui_session.csrf_token(request, caller))
        context.setdefault("admin", is_admin(request, caller))
    html = env.get_template(name).render(caller=caller, request_path=request.url.path, **context)
    return HTMLResponse(html, status_code=status_code, headers=_headers())


def _headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def _state_badge(job: Job, position: int | None) -> str:
    return env.get_template("_state.html").render(state=job.state, position=position)


def _delete_options(request: Request) -> dict[str, Any]:
    opts = ui_session.cookie_options(request)
    return {k: opts[k] for k in ("path", "secure", "httponly", "samesite")}


def _safe_next(value: str | None) -> str:
    """Where to go after sign-in: a dashboard path only (no open redirect)."""
    if value and value.startswith("/ui/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/ui/jobs"


# ------------------------------------------------------------------------------- sign-in
@router.get("", include_in_schema=False)
@router.get("/", include_in_schema=False)
def home() -> Response:
    """The dashboard starts at the job list."""
    return RedirectResponse("/ui/jobs", status_code=303)


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    """The sign-in form (an API token), with its double-submit CSRF token."""
    token = ui_session.new_login_csrf()
    response = render(request, "login.html", login_csrf=token, next=_safe_next(next), error=None)
    response.set_cookie(
        ui_session.LOGIN_CSRF_COOKIE, token, max_age=3600, **ui_session.cookie_options(request)
    )
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the API token, open a session (HttpOnly cookie) and go to the page asked for."""
    ui_session.check_origin(request)
    form = dict(await request.form())
    expected = request.cookies.get(ui_session.LOGIN_CSRF_COOKIE, "")
    sent = form.get(ui_session.CSRF_FIELD)
    if not expected or not isinstance(sent, str) or sent != expected:
        raise ui_session.CsrfRejected
    next_field = form.get("next")
    target = _safe_next(next_field if isinstance(next_field, str) else None)
    api_token = form.get("token")
    if not isinstance(api_token, str) or not api_token.strip():
        return render(
            request,
            "login.html",
            status_code=400,
            login_csrf=expected,
            next=target,
            error="token: enter your API token",
        )
    try:
        _, jwt_token, lifetime = await run_in_threadpool(ui_session.sign_in, request, api_token)
    except tokens.ApiError as exc:
        return render(
            request,
            "login.html",
            status_code=exc.status_code,
            login_csrf=expected,
            next=target,
            error=exc.message,
        )
    response = RedirectResponse(target, status_code=303, headers=_headers())
    response.set_cookie(
        ui_session.SESSION_COOKIE, jwt_token, max_age=lifetime, **ui_session.cookie_options(request)
    )
    response.delete_cookie(ui_session.LOGIN_CSRF_COOKIE, **_delete_options(request))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session (its JWT is revoked) and forget the cookie."""
    caller = ui_session.session_caller(request)
    await ui_session.check_csrf(request, caller)
    await run_in_threadpool(ui_session.sign_out, request, caller)
    response = RedirectResponse("/ui/login", status_code=303, headers=_headers())
    response.delete_cookie(ui_session.SESSION_COOKIE, **_delete_options(request))
    return response


# ---------------------------------------------------------------------------------- jobs
@dataclasses.dataclass(frozen=True)
class JobQuery:
    """The job list's filters, as the query string gives them (empty: no filter)."""

    state: str = ""
    backend: str = ""
    program: str = ""
    session: str = ""

    def problems(self, catalog: Any) -> list[str]:
        """What is wrong with the filters, one message per field (empty if nothing)."""
        out = []
        if self.state and self.state not in STATES:
            out.append(f"state: expected one of {', '.join(STATES)}, got {self.state!r}")
        if self.backend and self.backend not in catalog:
            out.append(f"backend: no backend {self.backend!r} on this server")
        if self.program and self.program not in PROGRAMS:
            out.append(f"program: expected sampler or estimator, got {self.program!r}")
        if len(self.session) > 200:
            out.append("session: at most 200 characters")
        return out

    def params(self) -> dict[str, str]:
        """The filters set, for links that keep them."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v}

    def store_filters(self, caller: Caller, page: int) -> JobFilters:
        """The store query (scoped to the caller's instance, as every REST listing is).

        An exact state is picked from the newest :data:`STATE_WINDOW` pending or final jobs.
        """
        exact = bool(self.state)
        return JobFilters(
            instance_id=caller.instance_id,
            limit=STATE_WINDOW if exact else PAGE_SIZE,
            offset=0 if exact else (page - 1) * PAGE_SIZE,
            backend=self.backend or None,
            pending=None if not exact else self.state in ("Queued", "Running"),
            program=self.program or None,
            session_id=self.session or None,
        )


PROGRAMS = ("sampler", "estimator")


def _list_jobs(st: Any, caller: Caller, q: JobQuery, page: int) -> tuple[list[Job], int, bool]:
    rows, count = st.store.list_jobs(q.store_filters(caller, page))
    if not q.state:
        return rows, count, False
    matching = [j for j in rows if j.state == q.state]
    start = (page - 1) * PAGE_SIZE
    return matching[start : start + PAGE_SIZE], len(matching), count > STATE_WINDOW


def _count_newer(st: Any, caller: Caller, q: JobQuery, after: float) -> int:
    filters = dataclasses.replace(
        q.store_filters(caller, 1),
        created_after=after,
        limit=STATE_WINDOW if q.state else 0,
        offset=0,
    )
    rows, count = st.store.list_jobs(filters)
    return sum(j.state == q.state for j in rows) if q.state else int(count)


@router.get("/jobs/newer")
async def newer_jobs(
    request: Request,
    after: Annotated[float, Query(ge=0)],
    state: str = "",
    backend: str = "",
    program: str = "",
    session: str = "",
) -> Response:
    """Fragment polled by the job list: how many matching jobs were created since it loaded."""
    caller = ui_session.session_caller(request)
    st = _state(request)
    q = JobQuery(state, backend, program, session)
    if q.problems(st.catalog):
        return Response(status_code=204)
    newer = await run_in_threadpool(_count_newer, st, caller, q, after + 1e-6)
    return render(request, "_newer.html", caller, newer=newer, query=urlencode(q.params()))


@router.get("/jobs")
async def jobs_page(
    request: Request,
    state: str = "",
    backend: str = "",
    program: str = "",
    session: str = "",
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> Response:
    """The instance's jobs, newest first, filtered by state, backend, program and session."""
    caller = ui_session.session_caller(request)
    st = _state(request)
    q = JobQuery(state, backend, program, session)
    errors = q.problems(st.catalog)
    rows: list[Job] = []
    count, window_full = 0, False
    if not errors:
        rows, count, window_full = await run_in_threadpool(_list_jobs, st, caller, q, page)
    pending = [j.id for j in rows if j.state not in FINAL_STATES][:MAX_STREAM_JOBS]
    query = q.params()
    return render(
        request,
        "jobs.html",
        caller,
        status_code=400 if errors else 200,
        jobs=rows,
        count=count,
        page=page,
        pages=max(1, math.ceil(count / PAGE_SIZE)),
        errors=errors,
        filters=q,
        states=STATES,
        backends=st.catalog.names(),
        programs=PROGRAMS,
        stream_ids=",".join(pending),
        newest=max((j.created for j in rows), default=time.time()) if page == 1 else None,
        filter_query=urlencode(query),
        window_full=window_full,
        window=STATE_WINDOW,
        prev_query=urlencode({**query, "page": page - 1}),
        next_query=urlencode({**query, "page": page + 1}),
        tags={j.id: orjson.loads(j.tags or "[]") for j in rows},
    )


@router.get("/jobs/stream")
async def jobs_stream(request: Request, ids: str = "") -> Response:
    """Server-sent events: each named job's state badge whenever it changes (htmx SSE)."""
    caller = ui_session.session_caller(request)
    wanted = list(dict.fromkeys(p.strip() for p in ids.split(",") if p.strip()))
    if not wanted or len(wanted) > MAX_STREAM_JOBS:
        return Response(
            f"ids: give 1-{MAX_STREAM_JOBS} comma-separated job ids",
            status_code=400,
            media_type="text/plain",
        )
    return StreamingResponse(
        job_state_stream(_state(request), caller, wanted, _state_badge),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _load_job(st: Any, caller: Caller, job_id: str) -> Job | None:
    return st.store.get_job(job_id, caller.instance_id, with_params=False)  # type: ignore[no-any-return]


def _timeline(job: Job) -> list[tuple[str, float]]:
    steps: list[tuple[str, float]] = [("Queued", job.created)]
    if job.running_at is not None:
        steps.append(("Running", job.running_at))
    if job.state in FINAL_STATES and job.finished_at is not None:
        steps.append((job.state, job.finished_at))
    return steps


#: Figures of final jobs, which never change: a page view does not decode a large result again.
_FINAL_PANELS: OrderedDict[str, tuple[list[Any], list[dict[str, Any]], str | None]] = OrderedDict()
_FINAL_PANELS_MAX = 32
_FINAL_PANELS_LOCK = threading.Lock()
_MISSING_RESULT = "the result is missing from the store"


def _inputs_and_figures(st: Any, job: Job) -> tuple[list[Any], list[dict[str, Any]], str | None]:
    """The PUB summary, the result figures and why there are none (reads params and result)."""
    if job.private:
        why = "a private job's inputs and result are only for its owner's client"
        return [], [], why if job.state == models.protocol.COMPLETED else None
    params_raw = st.store.job_params(job.id)
    inputs = pub_inputs(job.program_id, orjson.loads(params_raw)) if params_raw else []
    if job.state != models.protocol.COMPLETED:
        return inputs, [], None
    full = st.store.get_job(job.id, job.instance_id, with_result=True, with_params=False)
    body = st.store.read_result(full) if full is not None else None
    if body is None:
        return inputs, [], _MISSING_RESULT
    try:
        outcomes = result_outcomes(job.program_id, body)
    except ValueError as exc:
        return inputs, [], f"the result could not be decoded: {exc}"
    return inputs, _figures(outcomes), None


def _panel_context(st: Any, job: Job) -> dict[str, Any]:
    """Timeline, PUBs, result figures and logs of a job (in a thread: it reads the store)."""
    final = job.state in FINAL_STATES
    with _FINAL_PANELS_LOCK:
        cached = _FINAL_PANELS.get(job.id) if final else None
    if cached is None:
        cached = _inputs_and_figures(st, job)
        if final and cached[2] != _MISSING_RESULT:  # (not yet saved: look again next time)
            with _FINAL_PANELS_LOCK:
                _FINAL_PANELS[job.id] = cached
                while len(_FINAL_PANELS) > _FINAL_PANELS_MAX:
                    _FINAL_PANELS.popitem(last=False)
    inputs, figures, result_error = cached
    return {
        "job": job,
        "timeline": _timeline(job),
        "inputs": inputs,
        "figures": figures,
        "result_error": result_error,
        "logs": job.logs or "",
        "final": job.state in FINAL_STATES,
    }


def _figures(outcomes: list[Any]) -> list[dict[str, Any]]:
    figures = []
    for outcome in outcomes:
        for register, counts in outcome.counts.items():
            figures.append(
                {
                    "kind": "histogram",
                    "pub": outcome.index,
                    "register": register,
                    "shots": outcome.shots,
                    "fig": svg.histogram(counts),
                }
            )
        if outcome.evs:
            figures.append(
                {
                    "kind": "evs",
                    "pub": outcome.index,
                    "shape": outcome.shape,
                    "fig": svg.expectation_plot(outcome.evs, outcome.stds),
                }
            )
    return figures


@router.get("/jobs/{job_id}")
async def job_page(request: Request, job_id: str) -> Response:
    """One job: state (live), timeline, PUBs, histogram or expectation values, logs, cancel."""
    caller = ui_session.session_caller(request)
    st = _state(request)
    job = await run_in_threadpool(_load_job, st, caller, job_id)
    if job is None:
        return _not_found(request, caller, f"job {job_id} not found")
    ctx = await run_in_threadpool(_panel_context, st, job)
    position = None
    if job.state == models.protocol.QUEUED:
        position = await run_in_threadpool(st.store.queue_position, job)
    return render(
        request,
        "job.html",
        caller,
        position=position,
        tags=orjson.loads(job.tags or "[]"),
        message=request.query_params.get("message"),
        **ctx,
    )


@router.get("/jobs/{job_id}/panel")
async def job_panel(request: Request, job_id: str) -> Response:
    """The job page's changing part (timeline, result, logs), fetched again on a state event."""
    caller = ui_session.session_caller(request)
    st = _state(request)
    job = await run_in_threadpool(_load_job, st, caller, job_id)
    if job is None:
        return _not_found(request, caller, f"job {job_id} not found")
    ctx = await run_in_threadpool(_panel_context, st, job)
    return render(request, "_job_panel.html", caller, **ctx)


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(request: Request, job_id: str) -> Response:
    """Cancel a Queued or Running job (CSRF-checked), then show the job again."""
    caller = ui_session.session_caller(request)
    await ui_session.check_csrf(request, caller)
    st = _state(request)
    job = await run_in_threadpool(_load_job, st, caller, job_id)
    if job is None:
        return _not_found(request, caller, f"job {job_id} not found")
    cancelled = await run_in_threadpool(st.dispatcher.cancel, job_id, "cancelled by the user")
    message = "cancelled" if cancelled else f"not cancelled: the job is already {job.state}"
    return RedirectResponse(
        f"/ui/jobs/{quote(job_id)}?{urlencode({'message': message})}",
        status_code=303,
        headers=_headers(),
    )


def _not_found(request: Request, caller: Caller, message: str) -> Response:
    return render(
        request, "error.html", caller, status_code=404, title="Not found", message=message
    )


# ------------------------------------------------------------------------------ backends
ErrorMaps = tuple[dict[tuple[int, int], float], dict[int, float]]


def _gate_errors(props: dict[str, Any] | None) -> ErrorMaps:
    """Two-qubit gate errors by pair and ``sx`` errors by qubit, from IBM-format properties."""
    pairs: dict[tuple[int, int], float] = {}
    sx: dict[int, float] = {}
    for gate in (props or {}).get("gates", []):
        qubits = gate.get("qubits", [])
        error = next(
            (p.get("value") for p in gate.get("parameters", []) if p.get("name") == "gate_error"),
            None,
        )
        if not isinstance(error, (int, float)):
            continue
        if len(qubits) == 2:
            key = (min(qubits), max(qubits))
            pairs[key] = max(pairs.get(key, 0.0), float(error))
        elif len(qubits) == 1 and gate.get("gate") == "sx":
            sx[qubits[0]] = float(error)
    return pairs, sx


def _qubit_rows(spec: Any) -> list[dict[str, Any]]:
    props = spec.properties or {}
    pairs, sx = _gate_errors(props)
    per_qubit: dict[int, list[float]] = {}
    for (a, b), err in pairs.items():
        per_qubit.setdefault(a, []).append(err)
        per_qubit.setdefault(b, []).append(err)
    rows = []
    for q, entries in enumerate(props.get("qubits", [])):
        row: dict[str, Any] = {"qubit": q}
        for item in entries:
            if item.get("name") in ("T1", "T2", "frequency", "readout_error"):
                row[item["name"]] = item.get("value")
        row["sx_error"] = sx.get(q)
        errs = per_qubit.get(q)
        row["two_qubit_error"] = sum(errs) / len(errs) if errs else None
        rows.append(row)
    return rows


@router.get("/backends")
async def backends_page(request: Request) -> Response:
    """Every backend: qubits, kind, queue length."""
    caller = ui_session.session_caller(request)
    st = _state(request)
    queues = await run_in_threadpool(st.store.queued_counts_by_backend)
    backends = [
        {
            "name": spec.name,
            "qubits": spec.num_qubits,
            "simulator": bool(spec.simulator),
            "noisy": bool(spec.is_noisy),
            "basis": ", ".join(spec.configuration.get("basis_gates", [])[:12]),
            "queue": queues.get(spec.name, 0),
        }
        for spec in st.catalog
    ]
    return render(request, "backends.html", caller, backends=backends)


@router.get("/backends/{name}")
async def backend_page(
    request: Request, name: str, sort: str = "qubit", order: str = "asc"
) -> Response:
    """A backend: coupling map coloured by two-qubit error, sortable calibration table, queue."""
    caller = ui_session.session_caller(request)
    st = _state(request)
    if name not in st.catalog:
        return _not_found(request, caller, f"backend {name!r} not found")
    columns = [key for key, _, _ in QUBIT_COLUMNS]
    if sort not in columns or order not in ("asc", "desc"):
        return render(
            request,
            "error.html",
            caller,
            status_code=400,
            title="Bad request",
            message=f"sort: expected one of {', '.join(columns)} and order asc or desc, "
            f"got sort={sort!r} order={order!r}",
        )
    spec = st.catalog.get(name)
    queues = await run_in_threadpool(st.store.queued_counts_by_backend)
    rows = _qubit_rows(spec)
    missing = [r for r in rows if r.get(sort) is None]
    present = sorted((r for r in rows if r.get(sort) is not None), key=lambda r: r[sort],
                     reverse=order == "desc")  # fmt: skip
    rows = present + missing
    coupling = spec.configuration.get("coupling_map") or []
    pairs, _ = _gate_errors(spec.properties)
    n = spec.num_qubits
    full = len({(min(a, b), max(a, b)) for a, b in coupling}) >= n * (n - 1) // 2
    figure = None
    if coupling and not full:
        titles = {
            r["qubit"]: f"qubit {r['qubit']}"
            + (f", T1 {r['T1']:.1f} µs" if r.get("T1") is not None else "")
            + (f", readout error {r['readout_error']:.2e}" if r.get("readout_error") else "")
            for r in rows
        }
        figure = await run_in_threadpool(svg.coupling_map, n, coupling, pairs, titles=titles)
    return render(
        request,
        "backend.html",
        caller,
        spec=spec,
        calibration_id=current_calibration_id(spec),
        queue=queues.get(name, 0),
        figure=figure,
        all_to_all=full,
        rows=rows,
        columns=QUBIT_COLUMNS,
        sort=sort,
        order=order,
        basis=", ".join(spec.configuration.get("basis_gates", [])),
        last_update=(spec.properties or {}).get("last_update_date"),
    )


# ---------------------------------------------------------------------- usage and admin
def _month_start(now: float) -> float:
    t = time.gmtime(now)
    import calendar

    return float(calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0)))


def _usage_rows(st: Any, caller: Caller, admin: bool) -> list[dict[str, Any]]:
    since = _month_start(time.time())
    if admin:
        instances: dict[str, str] = {}
        for row, hgp in st.store.api_tokens():
            instances.setdefault(row.instance_id, hgp)
    else:
        instances = {caller.instance_id: caller.instance_hgp}
    out = []
    for instance_id, hgp in instances.items():
        _, count = st.store.list_jobs(JobFilters(instance_id=instance_id, limit=0))
        _, pending = st.store.list_jobs(JobFilters(instance_id=instance_id, limit=0, pending=True))
        out.append(
            {
                "instance": hgp,
                "seconds": st.store.usage_seconds(instance_id, since),
                "jobs": count,
                "pending": pending,
                "queued": st.store.queued_count(instance_id),
                "own": instance_id == caller.instance_id,
                "today": instance_usage(st.store, st.config, instance_id, hgp)["quotas"],
            }
        )
    return out


@router.get("/usage")
async def usage_page(request: Request) -> Response:
    """Usage this month per instance: the caller's own; every instance for the admin token."""
    caller = ui_session.session_caller(request)
    admin = is_admin(request, caller)
    rows = await run_in_threadpool(_usage_rows, _state(request), caller, admin)
    return render(
        request,
        "usage.html",
        caller,
        rows=rows,
        since=_month_start(time.time()),
        max_queued=_state(request).config.max_queued_per_instance,
    )


@router.get("/admin/tokens")
async def tokens_page(request: Request) -> Response:
    """The API tokens of the server (ids, instances, states; never secrets). Admin only."""
    caller = ui_session.session_caller(request)
    if not is_admin(request, caller):
        return render(
            request,
            "error.html",
            caller,
            status_code=403,
            title="Forbidden",
            message="the token list is shown to the server's main token only",
        )
    rows = await run_in_threadpool(_state(request).store.api_tokens)
    return render(
        request,
        "tokens.html",
        caller,
        tokens=[
            {"id": row.id, "instance": hgp, "created": row.created, "revoked": row.revoked}
            for row, hgp in rows
        ],
    )
