"""The transpiler service (protocol §8): ``POST /transpile`` and ``GET /transpile/{task_id}``.

Mounted at the server root, next to the runtime API, and authenticated like it (same tokens).
A request is validated here (shape, backend, optimization level, options: 400/404 with a D10
body before anything is queued), then transpiled in a worker process by
:func:`~qiskit_rest_provider.server.transpile.tasks.run_transpile` with Qiskit's preset pass
manager for the backend Target and the ``rest_provider`` translation stage.

Accepted inputs (query parameters or JSON body; the body wins): ``backend``,
``optimization_level`` (0-3, default **3** as on IBM's service), ``coupling_map`` /
``backend_coupling_map`` (edges; used instead of the backend's connectivity), and
``qiskit_transpile_options`` (an object, or a JSON string in the query); circuits as
``qasm_circuits`` (a string or a list, OpenQASM 2 or 3) and/or ``qpy_circuits`` (Base64 QPY file).
``ai`` / ``use_ai``, ``ai_layout_mode``, ``use_fractional_gates`` and ``optimization_preferences``
are accepted; AI passes are not available here, which the task reports in ``warnings`` (and the
server logs) rather than failing.

Task states: ``PENDING`` (queued), ``STARTED`` (a worker is on it), ``SUCCESS`` (``result`` is a
list with one object per circuit: ``qasm``, ``qpy``, ``layout``), ``FAILURE`` (``result`` is the
message). ``GET /transpile/{id}?wait=S`` (0 < S <= 30) answers as soon as the task is final or
after S seconds, like the runtime's job long-poll (D6).

Tasks live in this process's memory only: they are **not persisted across restarts**. At most
:data:`MAX_TASKS` are kept; finished tasks expire :data:`TASK_TTL_SECONDS` after they finish (and
the oldest finished ones go first when the table is full). Each task is visible only to the
instance that created it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from ...wire.rest import (
    ERROR_RESPONSES,
    TranspileCreate,
    TranspileTaskCreated,
    TranspileTaskStatus,
    request_body,
)
from ..auth.tokens import CallerDep
from ..http import ApiError, as_bool, json_body, json_response

logger = logging.getLogger(__name__)
router = APIRouter(tags=["transpiler"], responses=ERROR_RESPONSES)

MAX_TASKS = 1000
TASK_TTL_SECONDS = 3600.0
MAX_CIRCUITS = 1000
MAX_WAIT_SECONDS = 30.0
DEFAULT_OPTIMIZATION_LEVEL = 3
AI_UNSUPPORTED = (
    "AI-powered transpilation is not available on this server; "
    "Qiskit's preset pass manager was used instead"
)


@dataclass
class TranspileTask:
    """One transpile request and its worker future."""

    task_id: str
    instance_id: str
    future: cf.Future
    created: float = field(default_factory=time.time)
    finished: float | None = None
    warnings: list[str] = field(default_factory=list)
    num_circuits: int = 0

    def state(self) -> str:
        """The protocol state of the task."""
        if self.future.done():
            outcome = self._outcome()
            return "SUCCESS" if outcome.get("ok") else "FAILURE"
        return "STARTED" if self.future.running() else "PENDING"

    def _outcome(self) -> dict[str, Any]:
        if self.future.cancelled():
            return {"ok": False, "message": "the task was cancelled (server shutting down)"}
        exc = self.future.exception()
        if exc is not None:
            return {"ok": False, "message": f"the transpile worker failed: {exc!r}"}
        return self.future.result()  # type: ignore[no-any-return]

    def body(self) -> dict[str, Any]:
        """The ``GET /transpile/{id}`` body."""
        state = self.state()
        body: dict[str, Any] = {"task_id": self.task_id, "state": state, "result": None}
        if state in ("SUCCESS", "FAILURE"):
            outcome = self._outcome()
            body["result"] = outcome["result"] if outcome.get("ok") else outcome["message"]
            if "seconds" in outcome:
                body["seconds"] = outcome["seconds"]
        if self.warnings:
            body["warnings"] = list(self.warnings)
        return body


class TranspileTasks:
    """A bounded, in-memory table of transpile tasks (not persisted across restarts)."""

    def __init__(self, max_tasks: int = MAX_TASKS, ttl: float = TASK_TTL_SECONDS) -> None:
        self.max_tasks = max_tasks
        self.ttl = ttl
        self._tasks: OrderedDict[str, TranspileTask] = OrderedDict()
        self._lock = threading.Lock()

    def _prune(self, now: float) -> None:
        for task_id, task in list(self._tasks.items()):
            if task.future.done() and task.finished is None:
                task.finished = now
            if task.finished is not None and now - task.finished > self.ttl:
                del self._tasks[task_id]
        if len(self._tasks) >= self.max_tasks:
            for task_id, task in list(self._tasks.items()):
                if len(self._tasks) < self.max_tasks:
                    break
                if task.future.done():
                    del self._tasks[task_id]

    def has_room(self) -> bool:
        """Whether a new task fits (after dropping expired and, if needed, old finished ones)."""
        with self._lock:
            self._prune(time.time())
            return len(self._tasks) < self.max_tasks

    def add(self, task: TranspileTask) -> None:
        """Store a task."""
        with self._lock:
            self._tasks[task.task_id] = task

    def get(self, task_id: str, instance_id: str) -> TranspileTask:
        """The caller's task, or 404 (unknown, expired, or another instance's)."""
        with self._lock:
            task = self._tasks.get(task_id)
        if task is None or task.instance_id != instance_id:
            raise ApiError(
                404,
                f"task_id: transpile task {task_id!r} not found (tasks are kept in memory "
                "for an hour after they finish and do not survive a server restart)",
                code="task_not_found",
            )
        return task


def _tasks(request: Request) -> TranspileTasks:
    state = request.app.state
    tasks = getattr(state, "transpile_tasks", None)
    if tasks is None:
        tasks = state.transpile_tasks = TranspileTasks()
    return tasks


def _pool(request: Request) -> cf.Executor:
    state = request.app.state
    pool = getattr(state, "pool", None)
    if pool is None:
        server = getattr(state, "server", None)
        pool = getattr(server, "executor", None)
    if pool is None:
        raise ApiError(503, "the server's workers are not running yet", code="unavailable")
    return pool  # type: ignore[no-any-return]


def _catalog(request: Request) -> Any:
    state = request.app.state
    catalog = getattr(state, "catalog", None)
    if catalog is None:
        catalog = state.server.catalog
    return catalog


def _json_value(value: Any, name: str) -> Any:
    """Query values arrive as strings; decode JSON ones (``coupling_map=[]``)."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise ApiError(400, f"{name}: not valid JSON: {exc}", code="invalid_request") from exc
    return value


def _pick(body: dict[str, Any], query: Any, *names: str) -> Any:
    for name in names:
        if name in body and body[name] is not None:
            return body[name]
    for name in names:
        value = query.get(name)
        if value is not None:
            return value
    return None


def _level(value: Any) -> int:
    if value is None:
        return DEFAULT_OPTIMIZATION_LEVEL
    try:
        level = int(value)
    except (TypeError, ValueError):
        level = -1
    if isinstance(value, (bool, float)) or str(level) != str(value).strip() or not 0 <= level <= 3:
        raise ApiError(
            400,
            f"optimization_level: expected an integer from 0 to 3, got {value!r}",
            code="invalid_request",
        )
    return level


def _circuits(body: dict[str, Any]) -> tuple[list[str] | None, str | None, int]:
    qasm = body.get("qasm_circuits")
    if isinstance(qasm, str):
        qasm = [qasm]
    if qasm is not None and (
        not isinstance(qasm, list) or not all(isinstance(text, str) for text in qasm)
    ):
        raise ApiError(
            400, "qasm_circuits: expected a string or a list of strings", code="invalid_request"
        )
    qpy = body.get("qpy_circuits")
    if qpy is not None and not isinstance(qpy, str):
        raise ApiError(400, "qpy_circuits: expected a Base64 string", code="invalid_request")
    count = len(qasm or ())
    if not count and not qpy:
        raise ApiError(
            400,
            "qasm_circuits: no circuits given (send qasm_circuits or qpy_circuits)",
            code="invalid_request",
        )
    if count > MAX_CIRCUITS:
        raise ApiError(
            400, f"qasm_circuits: at most {MAX_CIRCUITS} circuits per task", code="invalid_request"
        )
    return qasm or None, qpy or None, count


def _coupling_map(value: Any, name: str) -> list[list[int]] | None:
    value = _json_value(value, name)
    if value in (None, [], {}):
        return None
    if not isinstance(value, list) or not all(
        isinstance(edge, (list, tuple))
        and len(edge) == 2
        and all(isinstance(q, int) and not isinstance(q, bool) and q >= 0 for q in edge)
        for edge in value
    ):
        raise ApiError(
            400, f"{name}: expected a list of [a, b] qubit pairs", code="invalid_request"
        )
    return [list(edge) for edge in value]


def _options(value: Any) -> dict[str, Any]:
    from qiskit_rest_provider.server.transpile.tasks import TRANSPILE_OPTIONS, check_option_values

    value = _json_value(value, "qiskit_transpile_options")
    if value in (None, [], ""):
        return {}
    if not isinstance(value, dict):
        raise ApiError(
            400, "qiskit_transpile_options: expected a JSON object", code="invalid_request"
        )
    unknown = sorted(set(value) - TRANSPILE_OPTIONS)
    if unknown:
        raise ApiError(
            400,
            f"qiskit_transpile_options: unsupported option(s) {unknown}; "
            f"supported: {sorted(TRANSPILE_OPTIONS)}",
            code="invalid_request",
        )
    if "optimization_level" in value:
        value = {**value, "optimization_level": _level(value["optimization_level"])}
    try:
        check_option_values(value)
    except ValueError as exc:
        raise ApiError(400, str(exc), code="invalid_request") from exc
    return dict(value)


def _ai_warnings(body: dict[str, Any], query: Any) -> list[str]:
    warnings = []
    ai = _pick(body, query, "ai")
    use_ai = _pick(body, query, "use_ai")
    wants_ai = False
    if ai is not None:
        text = str(ai).strip().lower()
        if text not in ("true", "false", "auto"):
            raise ApiError(
                400, f"ai: expected true, false or auto, got {ai!r}", code="invalid_request"
            )
        wants_ai = text == "true"
    if use_ai is not None:
        wants_ai = wants_ai or as_bool(use_ai, "use_ai")
    if wants_ai:
        warnings.append(AI_UNSUPPORTED)
    fractional = _pick(body, query, "use_fractional_gates")
    if fractional is not None and as_bool(fractional, "use_fractional_gates"):
        warnings.append("use_fractional_gates: the backends here have no fractional gates; ignored")
    if _pick(body, query, "optimization_preferences") is not None:
        warnings.append("optimization_preferences: not supported; ignored")
    return warnings


@router.post(
    "/transpile", response_model=TranspileTaskCreated, openapi_extra=request_body(TranspileCreate)
)
async def create_transpile_task(request: Request, caller: CallerDep) -> Response:
    """Queue a transpile task; answers ``{"task_id": ...}``."""
    from qiskit_rest_provider.server.transpile.tasks import TranspileRequest, run_transpile

    body = await json_body(request)
    query = request.query_params
    qasm, qpy, count = _circuits(body)
    level = _level(_pick(body, query, "optimization_level"))
    coupling = _coupling_map(
        _pick(body, query, "backend_coupling_map", "coupling_map"), "coupling_map"
    )
    options = _options(_pick(body, query, "qiskit_transpile_options"))
    warnings = _ai_warnings(body, query)
    backend = _pick(body, query, "backend")
    spec = None
    if backend is not None:
        if not isinstance(backend, str) or not backend:
            raise ApiError(400, "backend: expected a backend name", code="invalid_request")
        catalog = _catalog(request)
        if backend not in catalog:
            raise ApiError(404, f"backend: unknown backend {backend!r}", code="backend_not_found")
        spec = catalog.get(backend)
    elif coupling is None:
        raise ApiError(
            400,
            "backend: give a backend name or a backend_coupling_map",
            code="invalid_request",
        )
    if coupling is not None:
        limit = spec.num_qubits if spec is not None else None
        top = max(max(edge) for edge in coupling)
        if limit is not None and top >= limit:
            raise ApiError(
                400,
                f"coupling_map: qubit {top} does not exist on {backend} ({limit} qubits)",
                code="invalid_request",
            )
    tasks = _tasks(request)
    if not tasks.has_room():
        raise ApiError(
            503,
            f"too many transpile tasks in flight (at most {MAX_TASKS}); retry later",
            code="unavailable",
            headers={"Retry-After": "5"},
        )
    job = TranspileRequest(
        backend=backend,
        optimization_level=level,
        qasm_circuits=qasm,
        qpy_circuits=qpy,
        coupling_map=coupling,
        options=options,
        spec=spec,
    )
    future = _pool(request).submit(run_transpile, job)
    task = TranspileTask(
        task_id=str(uuid.uuid4()),
        instance_id=caller.instance_id,
        future=future,
        warnings=warnings,
        num_circuits=count,
    )
    tasks.add(task)
    for warning in warnings:
        logger.info("transpile task %s: %s", task.task_id, warning)
    logger.info(
        "transpile task %s queued: backend=%s level=%d circuits=%s",
        task.task_id,
        backend,
        level,
        count if not qpy else f"{count}+qpy",
    )
    return json_response({"task_id": task.task_id})


@router.get("/transpile/{task_id}", response_model=TranspileTaskStatus)
async def get_transpile_task(request: Request, task_id: str, caller: CallerDep) -> Response:
    """The task's state and, when final, its result (or failure message)."""
    task = _tasks(request).get(task_id, caller.instance_id)
    wait = request.query_params.get("wait")
    if wait is not None and not task.future.done():
        try:
            seconds = float(wait)
        except ValueError as exc:
            raise ApiError(
                400, f"wait: expected seconds, got {wait!r}", code="invalid_request"
            ) from exc
        seconds = min(max(seconds, 0.0), MAX_WAIT_SECONDS)
        if seconds > 0:
            try:
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(task.future)), seconds)
            except Exception:  # noqa: BLE001 - timeouts and failures: state() reports them
                pass
    return json_response(task.body())
