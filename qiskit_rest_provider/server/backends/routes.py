"""Runtime backend endpoints (protocol §3.2–3.5) and instance usage (§3.11)."""

from __future__ import annotations

import calendar
import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from sqlalchemy import func, select
from starlette.responses import Response

from ..auth.tokens import Caller, CallerDep
from ..http import ApiError
from ..jobs.models import Job
from ..jobs.shapes import iso, json_response
from ..state import server_state

router = APIRouter()

V2_LIST_FROM = "2025-01-01"


def _spec(request: Request, name: str) -> Any:
    catalog = server_state(request).catalog
    if name not in catalog:
        raise ApiError(404, f"backend {name!r} not found", code="backend_not_found")
    return catalog.get(name)


def _queue_lengths(request: Request) -> dict[str, int]:
    store = server_state(request).store
    with store.sessions() as s:
        rows = s.execute(
            select(Job.backend, func.count()).where(Job.state == "Queued").group_by(Job.backend)
        )
        return {name: int(n) for name, n in rows}


def _cached_json(request: Request, key: str, build: Any) -> bytes:
    cache: dict[str, bytes] = request.app.state.json_cache
    body = cache.get(key)
    if body is None:
        body = orjson.dumps(build(), option=orjson.OPT_SERIALIZE_NUMPY)
        cache[key] = body
    return body


@router.get("/backends")
def list_backends(request: Request, caller: CallerDep) -> Response:
    """Names (``IBM-API-Version`` absent or before 2025-01-01) or objects (D9)."""
    catalog = server_state(request).catalog
    version = (request.headers.get("ibm-api-version") or "").strip()
    if not version or version < V2_LIST_FROM:
        return json_response({"devices": catalog.names()})
    queues = _queue_lengths(request)
    devices = []
    for spec in catalog:
        conf = spec.configuration
        devices.append(
            {
                "name": spec.name,
                "status": {"name": "online", "reason": ""},
                "is_simulator": bool(spec.simulator),
                "qubits": spec.num_qubits,
                "queue_length": queues.get(spec.name, 0),
                "processor_type": conf.get("processor_type") or {},
                "clops": {"type": "hpcx", "value": conf.get("clops_h") or 0},
                "physical_qubits": spec.num_qubits,
                "basis_gates": conf.get("basis_gates", []),
            }
        )
    return json_response({"devices": devices})


@router.get("/backends/{name}/configuration")
def backend_configuration(request: Request, name: str, caller: CallerDep) -> Response:
    """The IBM-format configuration JSON."""
    spec = _spec(request, name)
    return Response(
        _cached_json(request, f"conf:{name}", lambda: spec.configuration),
        media_type="application/json",
    )


@router.get("/backends/{name}/properties")
def backend_properties(request: Request, name: str, caller: CallerDep) -> Response:
    """The IBM-format properties JSON (404 for the ideal simulator, which has none)."""
    spec = _spec(request, name)
    if spec.properties is None:
        raise ApiError(
            404,
            f"backend {name!r} is an ideal simulator and has no properties",
            code="properties_not_found",
        )
    return Response(
        _cached_json(request, f"props:{name}", lambda: spec.properties),
        media_type="application/json",
    )


@router.get("/backends/{name}/status")
def backend_status(request: Request, name: str, caller: CallerDep) -> Response:
    """``{"state", "status", "message", "length_queue", "backend_version"}``."""
    spec = _spec(request, name)
    status = dict(spec.status())
    status["length_queue"] = _queue_lengths(request).get(name, 0)
    return json_response(status)


@router.get("/backends/{name}/defaults")
def backend_defaults(request: Request, name: str, caller: CallerDep) -> Response:
    """Pulse defaults do not exist here: an empty object, as for simulators upstream."""
    _spec(request, name)
    return json_response({})


def _month_start(now: float) -> tuple[float, float]:
    t = time.gmtime(now)
    start = calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0))
    year, month = (t.tm_year + (t.tm_mon == 12), t.tm_mon % 12 + 1)
    end = calendar.timegm((year, month, 1, 0, 0, 0))
    return float(start), float(end)


def _usage(request: Request, caller: Caller) -> dict[str, Any]:
    start, end = _month_start(time.time())
    consumed = server_state(request).store.usage_seconds(caller.instance_id, start)
    return {
        "instance_id": caller.instance_crn,
        "plan_id": "local",
        "usage_period": {"start_time": iso(start), "end_time": iso(end)},
        "usage_consumed_seconds": consumed,
        "usage_limit_seconds": None,
        "usage_allocation_seconds": None,
        "usage_limit_reached": False,
    }


@router.get("/instances/usage")
def instance_usage(request: Request, caller: CallerDep) -> Response:
    """Usage of the caller's instance this month (no limits on the reference server)."""
    return json_response(_usage(request, caller))


@router.get("/usage")
def classic_usage(request: Request, caller: CallerDep) -> Response:
    """Classic ``GET /runtime/usage``: same numbers as ``instances/usage``."""
    return json_response(_usage(request, caller))


@router.get("/instance")
def instance_details(request: Request, caller: CallerDep) -> Response:
    """The caller's instance (older clients read ``qctrl_enabled``)."""
    return json_response(
        {"crn": caller.instance_crn, "instance": caller.instance_hgp, "qctrl_enabled": False}
    )
