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

``max_execution_time`` (seconds, body or query) limits the task's wall-clock time on a worker;
without it the server's ``--default-transpile-time`` applies, and more than
``--max-transpile-time`` is refused with 400. A ``qpy_circuits`` input is Base64-decoded and
inflated here, before anything is queued, within a cap (:func:`~.tasks.qpy_inflate_cap`: 100
times its compressed size, 4 MiB at least, at most ``--max-transpile-qpy-bytes``); over it is a
400 naming the limit, and its circuit headers are checked as a worker would.

Tasks are stored in the job store (table ``transpile_tasks``) and wait in the same fair queue as
jobs (:mod:`..jobs.dispatcher`): they survive a server restart (a task left ``STARTED`` by a
stopped server runs again), an instance's tasks and jobs take turns with other instances', and
``POST /transpile/{task_id}/cancel`` stops one (204; 409 once it is final).

Task states: ``PENDING`` (queued), ``STARTED`` (a worker is on it), ``SUCCESS`` (``result`` is a
list with one object per circuit: ``qasm``, ``qpy``, ``layout``), ``FAILURE`` (``result`` is the
message: bad input, a dead worker, or the time limit), ``CANCELLED`` (``result`` says by whom).
``GET /transpile/{id}?wait=S`` (0 < S <= 30) answers as soon as the task is final or after S
seconds, like the runtime's job long-poll (D6).

Finished tasks are deleted :data:`TASK_TTL_SECONDS` after they finish; an instance may have at
most ``--max-queued-per-instance`` unfinished tasks (one more answers 429). Each task is visible
only to the instance that created it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
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
from ..jobs.models import TranspileTaskRow
from ..jobs.store import new_id
from ..jobs.transpile_store import FINAL, PENDING, SUCCESS, TranspileStore
from ..state import ServerState, server_state

logger = logging.getLogger(__name__)
router = APIRouter(tags=["transpiler"], responses=ERROR_RESPONSES)

TASK_TTL_SECONDS = 3600.0
MAX_CIRCUITS = 1000
MAX_WAIT_SECONDS = 30.0
DEFAULT_OPTIMIZATION_LEVEL = 3
AI_UNSUPPORTED = (
    "AI-powered transpilation is not available on this server; "
    "Qiskit's preset pass manager was used instead"
)


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


def _time_limit(value: Any, st: ServerState) -> float:
    """The time limit: ``max_execution_time`` within the server's bounds, else its default."""
    config = st.config
    if value is None:
        return float(config.default_transpile_time)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if isinstance(value, bool) or not seconds > 0 or seconds == float("inf"):
        raise ApiError(
            400,
            f"max_execution_time: expected a positive number of seconds, got {value!r}",
            code="invalid_request",
        )
    if seconds > config.max_transpile_time:
        raise ApiError(
            400,
            f"max_execution_time: {seconds:g} s is more than this server allows for a transpile "
            f"task ({config.max_transpile_time:g} s, --max-transpile-time)",
            code="invalid_request",
        )
    return seconds


def _queue(
    st: ServerState,
    instance_id: str,
    job: Any,
    warnings: list[str],
    count: int,
    time_limit: float,
) -> str:
    """Check the QPY input (bounded inflate), store the task PENDING and wake the dispatcher."""
    from qiskit_rest_provider.server.transpile.tasks import count_qpy_circuits, read_qpy_input

    if job.qpy_circuits:
        try:
            raw = read_qpy_input(job.qpy_circuits, job.qpy_max_bytes)
            count += count_qpy_circuits(raw)
        except ValueError as exc:
            raise ApiError(400, str(exc), code="invalid_request") from exc
        del raw
        if count > MAX_CIRCUITS:
            raise ApiError(
                400,
                f"qpy_circuits: at most {MAX_CIRCUITS} circuits per task, got {count}",
                code="invalid_request",
            )
    tasks = TranspileStore(st.store)
    now = time.time()
    tasks.forget_finished(now - TASK_TTL_SECONDS)
    limit = st.config.max_queued_per_instance
    if tasks.unfinished_count(instance_id) >= limit:
        raise ApiError(
            429,
            f"this instance already has {limit} unfinished transpile tasks "
            "(--max-queued-per-instance); retry when some have finished",
            code="queue_limit_reached",
            headers={"Retry-After": "5"},
        )
    row = TranspileTaskRow(
        id=new_id(),
        instance_id=instance_id,
        state=PENDING,
        backend=job.backend,
        request=orjson.dumps(job.to_json()),
        warnings=orjson.dumps(warnings).decode(),
        num_circuits=count,
        time_limit=time_limit,
        created=now,
        attempts=0,
    )
    tasks.add(row)
    st.dispatcher.transpile_queued()
    return row.id


@router.post(
    "/transpile", response_model=TranspileTaskCreated, openapi_extra=request_body(TranspileCreate)
)
async def create_transpile_task(request: Request, caller: CallerDep) -> Response:
    """Queue a transpile task; answers ``{"task_id": ...}``."""
    from qiskit_rest_provider.server.transpile.tasks import TranspileRequest

    st = server_state(request)
    body = await json_body(request)
    query = request.query_params
    qasm, qpy, count = _circuits(body)
    level = _level(_pick(body, query, "optimization_level"))
    coupling = _coupling_map(
        _pick(body, query, "backend_coupling_map", "coupling_map"), "coupling_map"
    )
    options = _options(_pick(body, query, "qiskit_transpile_options"))
    warnings = _ai_warnings(body, query)
    time_limit = _time_limit(_pick(body, query, "max_execution_time"), st)
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
    job = TranspileRequest(
        backend=backend,
        optimization_level=level,
        qasm_circuits=qasm,
        qpy_circuits=qpy,
        coupling_map=coupling,
        options=options,
        qpy_max_bytes=st.config.max_transpile_qpy_bytes,
    )
    task_id = await run_in_threadpool(
        _queue, st, caller.instance_id, job, warnings, count, time_limit
    )
    for warning in warnings:
        logger.info("transpile task %s: %s", task_id, warning)
    logger.info(
        "transpile task %s queued: backend=%s level=%d circuits=%s limit=%gs",
        task_id,
        backend,
        level,
        count if not qpy else f"{count}+qpy",
        time_limit,
    )
    return json_response({"task_id": task_id})


def _load_task(st: ServerState, task_id: str, instance_id: str) -> TranspileTaskRow:
    row = TranspileStore(st.store).get(task_id, instance_id)
    if row is None:
        raise ApiError(
            404,
            f"task_id: transpile task {task_id!r} not found (finished tasks are kept for "
            f"{TASK_TTL_SECONDS / 3600:g} h)",
            code="task_not_found",
        )
    return row


@router.get("/transpile/{task_id}", response_model=TranspileTaskStatus)
async def get_transpile_task(request: Request, task_id: str, caller: CallerDep) -> Response:
    """The task's state and, when final, its result (or failure message)."""
    st = server_state(request)
    wait = request.query_params.get("wait")
    seconds = 0.0
    if wait is not None:
        try:
            seconds = float(wait)
        except ValueError as exc:
            raise ApiError(
                400, f"wait: expected seconds, got {wait!r}", code="invalid_request"
            ) from exc
        seconds = min(max(seconds, 0.0), MAX_WAIT_SECONDS) if seconds == seconds else 0.0
    watch = st.watchers.register(task_id) if seconds > 0 else None
    try:
        deadline = time.monotonic() + seconds
        while True:
            row = await run_in_threadpool(_load_task, st, task_id, caller.instance_id)
            remaining = deadline - time.monotonic()
            if watch is None or row.state in FINAL or remaining <= 0:
                break
            # woken by this process' dispatcher; re-read now and then for other replicas'
            await watch.wait(min(remaining, st.config.notify_fallback))
    finally:
        if watch is not None:
            st.watchers.unregister(task_id, watch)
    return json_response(task_body(row))


@router.post("/transpile/{task_id}/cancel", status_code=204)
def cancel_transpile_task(request: Request, task_id: str, caller: CallerDep) -> Response:
    """Cancel a PENDING or STARTED task (its worker is stopped); 409 once it is final."""
    st = server_state(request)
    _load_task(st, task_id, caller.instance_id)
    if not st.dispatcher.cancel_transpile(task_id, "cancelled by the user"):
        row = _load_task(st, task_id, caller.instance_id)
        raise ApiError(
            409,
            f"transpile task {task_id} cannot be cancelled: it is already {row.state}",
            code="task_not_cancellable",
        )
    return Response(status_code=204)


def task_body(row: TranspileTaskRow) -> dict[str, Any]:
    """The ``GET /transpile/{id}`` body of a stored task."""
    body: dict[str, Any] = {"task_id": row.id, "state": row.state, "result": None}
    if row.state in FINAL and row.result is not None:
        body["result"] = (
            orjson.loads(row.result) if row.state == SUCCESS else bytes(row.result).decode()
        )
    if row.seconds is not None:
        body["seconds"] = row.seconds
    warnings = orjson.loads(row.warnings or "[]")
    if warnings:
        body["warnings"] = warnings
    return body
