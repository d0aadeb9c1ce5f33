"""``GET /metrics``: the server's state in the Prometheus text exposition format (0.0.4).

Who may read it:

* a client presenting the server's **admin token** (the main API token ``serve`` prints) as
  ``Authorization: Bearer <token>`` (or ``apikey <token>``) gets everything, including queued
  jobs per instance labelled with the instance id;
* a client on **loopback** (127.0.0.1, ::1) without a token gets the same metrics *without*
  instance ids (queued jobs per instance only as a count of instances and the largest queue);
* anyone else gets 401. A reverse proxy on the same host makes every client look local: block
  ``/metrics`` there, or scrape with the token.

What is exported (all gauges are read at scrape time; counters and histograms count since this
process started; ``qrp_`` prefix):

* ``qrp_jobs{state}`` — jobs in the database by state (all replicas);
* ``qrp_queued_jobs_by_instance{instance}`` (admin only), ``qrp_instances_with_queued_jobs``,
  ``qrp_queued_jobs_max_per_instance``;
* ``qrp_executor_capacity``, ``qrp_executor_busy``, ``qrp_executor_held`` (Dask: tasks waiting
  in this replica for a free worker thread);
* ``qrp_dispatcher_inflight`` (jobs this replica's dispatcher runs now),
  ``qrp_leases_held`` (Running jobs claimed by this replica), ``qrp_leases_expired`` (Running
  jobs whose lease ran out: a replica died; they are re-queued soon);
* ``qrp_http_requests_total{method,route,status}`` and the histogram
  ``qrp_http_request_duration_seconds{method,route}`` — by route *template*
  (``/api/v1/jobs/{job_id}``), never the raw path; unmatched paths count as ``route="other"``;
* ``qrp_transpile_tasks{state}`` (``running``, ``done``) when transpile tasks exist.
"""

from __future__ import annotations

import hmac
import math
import threading
import time
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Receive, Scope, Send

__all__ = ["BUCKETS", "RequestMetrics", "install_metrics", "render_metrics", "route_template"]

#: Latency histogram buckets (seconds): from a cached GET to a long-poll.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LOOPBACK = ("127.0.0.1", "::1", "localhost")
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Writer:
    """Accumulates families (``# HELP``/``# TYPE`` once each) and their samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, labels: dict[str, str] | None = None) -> None:
        self.lines.append(f"{name}{_labels(labels or {})} {_number(value)}")

    def gauge(self, name: str, help_text: str, value: float) -> None:
        self.family(name, "gauge", help_text)
        self.sample(name, value)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def route_template(scope: Scope) -> str:
    """The matched route's template with the prefix it was mounted under, else ``"other"``.

    An included router's route knows only its own template (``/jobs/{job_id}``); the prefix
    (``/api/v1``) is the literal start of the path before the part the route matched.
    """
    route = scope.get("route")
    fmt = getattr(route, "path_format", None) or getattr(route, "path", None)
    regex = getattr(route, "path_regex", None)
    if not fmt:
        return "other"
    path = str(scope.get("path", ""))
    if regex is None or regex.match(path):
        return str(fmt)
    for i, char in enumerate(path):
        if char == "/" and i and regex.match(path[i:]):
            return path[:i] + str(fmt)
    return str(fmt)


class RequestMetrics:
    """ASGI middleware: counts requests and their latency by method, route template, status."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._lock = threading.Lock()
        self.counts: dict[tuple[str, str, str], int] = {}
        self.buckets: dict[tuple[str, str], list[int]] = {}  # cumulative counts per bucket
        self.sums: dict[tuple[str, str], float] = {}
        self.totals: dict[tuple[str, str], int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            method = str(scope.get("method", ""))
            method = method if method in METHODS else "other"  # bounded label values
            self.observe(method, route_template(scope), status["code"], started)

    def observe(self, method: str, route: str, status: int, started: float) -> None:
        """Record one finished request."""
        seconds = time.perf_counter() - started
        key = (method, route)
        with self._lock:
            ckey = (method, route, str(status))
            self.counts[ckey] = self.counts.get(ckey, 0) + 1
            counts = self.buckets.setdefault(key, [0] * len(BUCKETS))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    counts[i] += 1
            self.sums[key] = self.sums.get(key, 0.0) + seconds
            self.totals[key] = self.totals.get(key, 0) + 1

    def write(self, out: _Writer) -> None:
        """Append the request counter and the latency histogram."""
        with self._lock:
            counts = dict(self.counts)
            buckets = {k: list(v) for k, v in self.buckets.items()}
            sums, totals = dict(self.sums), dict(self.totals)
        out.family("qrp_http_requests_total", "counter", "HTTP requests by route template")
        for (method, route, status), n in sorted(counts.items()):
            out.sample(
                "qrp_http_requests_total", n, {"method": method, "route": route, "status": status}
            )
        name = "qrp_http_request_duration_seconds"
        out.family(name, "histogram", "HTTP request latency by route template")
        for key in sorted(buckets):
            method, route = key
            labels = {"method": method, "route": route}
            for bound, n in zip(BUCKETS, buckets[key], strict=True):
                out.sample(f"{name}_bucket", n, labels | {"le": _number(bound)})
            out.sample(f"{name}_bucket", totals[key], labels | {"le": "+Inf"})
            out.sample(f"{name}_sum", sums[key], labels)
            out.sample(f"{name}_count", totals[key], labels)


def _store_counts(store: Any, owner: str) -> tuple[dict[str, int], dict[str, int], int, int]:
    """Jobs by state, queued per instance, leases held by ``owner``, leases expired."""
    from sqlalchemy import func, select

    from .jobs.models import Job

    now = time.time()
    with store.sessions() as s:
        by_state = {
            str(state): int(n)
            for state, n in s.execute(select(Job.state, func.count()).group_by(Job.state))
        }
        queued = {
            str(inst): int(n)
            for inst, n in s.execute(
                select(Job.instance_id, func.count())
                .where(Job.state == "Queued")
                .group_by(Job.instance_id)
            )
        }
        held = int(
            s.scalar(
                select(func.count())
                .select_from(Job)
                .where(Job.state == "Running", Job.claimed_by == owner)
            )
            or 0
        )
        expired = int(
            s.scalar(
                select(func.count())
                .select_from(Job)
                .where(
                    Job.state == "Running",
                    Job.lease_expires_at.is_not(None),
                    Job.lease_expires_at < now,
                )
            )
            or 0
        )
    return by_state, queued, held, expired


JOB_STATES = ("Queued", "Running", "Completed", "Failed", "Cancelled")


def render_metrics(app: FastAPI, *, admin: bool) -> str:
    """The exposition text (``admin``: with instance ids)."""
    out = _Writer()
    server = getattr(app.state, "server", None)
    if server is not None:
        dispatcher = server.dispatcher
        owner = str(getattr(dispatcher, "owner", ""))
        by_state, queued, held, expired = _store_counts(server.store, owner)
        out.family("qrp_jobs", "gauge", "Jobs in the database by state (all replicas)")
        for state in sorted(set(JOB_STATES) | set(by_state)):
            out.sample("qrp_jobs", by_state.get(state, 0), {"state": state})
        if admin:
            out.family("qrp_queued_jobs_by_instance", "gauge", "Queued jobs per instance id")
            for inst, n in sorted(queued.items()):
                out.sample("qrp_queued_jobs_by_instance", n, {"instance": inst})
        out.gauge(
            "qrp_instances_with_queued_jobs", "Instances with at least one queued job", len(queued)
        )
        out.gauge(
            "qrp_queued_jobs_max_per_instance",
            "The longest queue of one instance",
            max(queued.values(), default=0),
        )
        executor = server.executor
        out.gauge("qrp_executor_capacity", "Tasks the executor may run at once", executor.capacity)
        out.gauge("qrp_executor_busy", "Executor tasks not finished", executor.busy)  # type: ignore[attr-defined]
        out.gauge(
            "qrp_executor_held",
            "Tasks held in this replica until a worker thread is free (Dask executor)",
            getattr(executor, "held", 0),
        )
        inflight = getattr(dispatcher, "_inflight", {})
        out.gauge("qrp_dispatcher_inflight", "Jobs this replica's dispatcher runs", len(inflight))
        out.gauge("qrp_leases_held", "Running jobs claimed by this replica", held)
        out.gauge(
            "qrp_leases_expired", "Running jobs whose lease expired (their replica died)", expired
        )
    tasks = getattr(app.state, "transpile_tasks", None)
    table = getattr(tasks, "_tasks", None)
    if table is not None:
        values: Iterable[Any] = list(table.values())
        running = sum(not t.future.done() for t in values)
        out.family("qrp_transpile_tasks", "gauge", "Transpile tasks kept in memory by state")
        out.sample("qrp_transpile_tasks", running, {"state": "running"})
        out.sample("qrp_transpile_tasks", len(table) - running, {"state": "done"})
    guard = getattr(app.state, "request_metrics", None)
    if guard is not None:
        guard.write(out)
    return out.text()


def _is_admin(request: Request) -> bool:
    provisioned = getattr(request.app.state, "provisioned", None)
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if provisioned is None or scheme.lower() not in ("bearer", "apikey") or not value:
        return False
    return hmac.compare_digest(value.strip().encode(), str(provisioned.token).encode())


def install_metrics(app: FastAPI) -> None:
    """Add ``GET /metrics`` and the request-metrics middleware.

    Call it after the other middleware: it then wraps them all and times whole requests.
    """

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        admin = _is_admin(request)
        host = request.client.host if request.client else ""
        if not admin and host not in LOOPBACK:
            return PlainTextResponse(
                "metrics: send the admin token (Authorization: Bearer <token>) or scrape "
                "from loopback\n",
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        text = await run_in_threadpool(render_metrics, app, admin=admin)
        return Response(text, media_type=CONTENT_TYPE)

    class _Bound(RequestMetrics):
        def __init__(self, inner: Any) -> None:
            super().__init__(inner)
            app.state.request_metrics = self

    app.add_middleware(_Bound)
