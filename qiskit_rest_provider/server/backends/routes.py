"""Runtime backend endpoints (protocol §3.2–3.5) and instance usage (§3.11).

``configuration`` and ``properties`` carry the backend's current ``calibration_id`` and accept
``?calibration_id=`` naming it (404 for any other: this server keeps no older calibrations).
Usage is reported in whole seconds against a nominal allocation of one month of wall-clock time
per instance (the reference server meters but never stops work).
"""

from __future__ import annotations

import calendar
import math
import time
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from ...wire.rest import (
    ERROR_RESPONSES,
    BackendsList,
    BackendStatus,
    InstanceDetails,
    InstanceUsage,
)
from ..auth.tokens import Caller, CallerDep
from ..http import ApiError, iso, json_response
from ..state import server_state
from .catalog import current_calibration_id

router = APIRouter(responses=ERROR_RESPONSES)
CalibrationQuery = Annotated[
    str | None, Query(description="must name the backend's current calibration")
]

V2_LIST_FROM = "2025-01-01"


def _spec(request: Request, name: str) -> Any:
    catalog = server_state(request).catalog
    if name not in catalog:
        raise ApiError(404, f"backend {name!r} not found", code="backend_not_found")
    return catalog.get(name)


def _queue_lengths(request: Request) -> dict[str, int]:
    return server_state(request).store.queued_counts_by_backend()


def _cached_json(request: Request, key: str, build: Any) -> bytes:
    cache: dict[str, bytes] = request.app.state.json_cache
    body = cache.get(key)
    if body is None:
        body = orjson.dumps(build(), option=orjson.OPT_SERIALIZE_NUMPY)
        cache[key] = body
    return body


@router.get("/backends", response_model=BackendsList)
def list_backends(request: Request, caller: CallerDep) -> Response:
    """Names (``IBM-API-Version`` absent or before 2025-01-01) or objects (D9)."""
    catalog = server_state(request).catalog
    version = (request.headers.get("ibm-api-version") or "").strip()
    if not version or version < V2_LIST_FROM:
        return json_response({"devices": catalog.names()})
    queues = _queue_lengths(request)
    devices = []
    for spec in [*catalog, *catalog.mocks()]:
        conf = spec.configuration
        devices.append(
            {
                "name": spec.name,
                "class": "mock" if spec.dry_run_of else "device",
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


def _check_calibration(spec: Any, calibration_id: str | None) -> str:
    """The backend's current calibration id; 404 naming ``calibration_id`` if another is asked."""
    current = current_calibration_id(spec)
    if calibration_id is not None and calibration_id != current:
        raise ApiError(
            404,
            f"calibration_id: no calibration {calibration_id!r} for backend {spec.name!r} "
            f"(current: {current})",
            code="calibration_not_found",
        )
    return current


@router.get("/backends/{name}/configuration", response_model=dict[str, Any])
def backend_configuration(
    request: Request, name: str, caller: CallerDep, calibration_id: CalibrationQuery = None
) -> Response:
    """The IBM-format configuration JSON, with the current ``calibration_id``."""
    spec = _spec(request, name)
    current = _check_calibration(spec, calibration_id)
    return Response(
        _cached_json(
            request, f"conf:{name}", lambda: {**spec.configuration, "calibration_id": current}
        ),
        media_type="application/json",
    )


@router.get("/backends/{name}/properties", response_model=dict[str, Any])
def backend_properties(
    request: Request,
    name: str,
    caller: CallerDep,
    calibration_id: CalibrationQuery = None,
    updated_before: str | None = None,
) -> Response:
    """The IBM-format properties JSON (404 for the ideal simulator, which has none).

    ``updated_before`` is accepted and ignored: there is only the current calibration.
    """
    spec = _spec(request, name)
    current = _check_calibration(spec, calibration_id)
    if spec.properties is None:
        raise ApiError(
            404,
            f"backend {name!r} is an ideal simulator and has no properties",
            code="properties_not_found",
        )
    return Response(
        _cached_json(
            request, f"props:{name}", lambda: {**spec.properties, "calibration_id": current}
        ),
        media_type="application/json",
    )


@router.get("/backends/{name}/status", response_model=BackendStatus)
def backend_status(request: Request, name: str, caller: CallerDep) -> Response:
    """``{"state", "status", "message", "length_queue", "backend_version"}``."""
    spec = _spec(request, name)
    status = dict(spec.status())
    status["length_queue"] = _queue_lengths(request).get(name, 0)
    return json_response(status)


@router.get("/backends/{name}/defaults", response_model=dict[str, Any])
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
    """This month's usage in whole seconds (consumed rounded up, so remaining never flatters).

    The allocation is the month's length: a nominal figure (the server never stops work) that
    clients reading ``usage_remaining_seconds`` or ``usage_limit_seconds`` can compute with.
    """
    start, end = _month_start(time.time())
    consumed = math.ceil(server_state(request).store.usage_seconds(caller.instance_id, start))
    limit = int(end - start)
    return {
        "instance_id": caller.instance_crn,
        "plan_id": "local",
        "usage_period": {"start_time": iso(start), "end_time": iso(end)},
        "usage_consumed_seconds": consumed,
        "usage_limit_seconds": limit,
        "usage_allocation_seconds": limit,
        "usage_remaining_seconds": max(limit - consumed, 0),
        "usage_limit_reached": consumed >= limit,
    }


@router.get("/instances/usage", response_model=InstanceUsage)
def instance_usage(request: Request, caller: CallerDep) -> Response:
    """Usage of the caller's instance this month (protocol §3.11; integers throughout)."""
    return json_response(_usage(request, caller))


@router.get("/usage", response_model=InstanceUsage)
def classic_usage(request: Request, caller: CallerDep) -> Response:
    """Classic ``GET /runtime/usage``: same numbers as ``instances/usage``."""
    return json_response(_usage(request, caller))


@router.get("/instance", response_model=InstanceDetails)
def instance_details(request: Request, caller: CallerDep) -> Response:
    """The caller's instance (older clients read ``qctrl_enabled``)."""
    return json_response(
        {"crn": caller.instance_crn, "instance": caller.instance_hgp, "qctrl_enabled": False}
    )
