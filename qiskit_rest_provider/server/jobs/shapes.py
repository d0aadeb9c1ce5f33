"""JSON shapes of the REST resources (protocol §3), and helpers for the routers.

Request bodies are validated with the pydantic models of :mod:`qiskit_rest_provider.wire.rest`
by :func:`parse_body`, *after* authentication (a caller without credentials gets 401 whatever it
sent) and after parsing with orjson (fast, and a depth-bombed or non-UTF-8 body is a clean 400).
Responses are built here and serialised with orjson; their models only describe them (FastAPI
does not re-validate a ``Response``), so no second pass over large documents.

JSON responses, body parsing and time formats live here too.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from ...wire import protocol
from ..http import ApiError, describe_validation_errors
from .models import FINAL_STATES, Job, SessionRow

JSON = "application/json"
BodyModel = TypeVar("BodyModel", bound=BaseModel)


def json_response(
    obj: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A JSON response serialized with orjson (numpy aware)."""
    return Response(
        orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY),
        status_code=status_code,
        media_type=JSON,
        headers=headers,
    )


def iso(t: float | None) -> str | None:
    """Epoch seconds → ISO-8601 UTC with a ``Z`` suffix (``None`` stays ``None``)."""
    if t is None:
        return None
    dt = datetime.fromtimestamp(t, tz=timezone.utc)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str, field: str) -> float:
    """ISO-8601 (``Z`` or offset; naive = UTC) → epoch seconds, or 400 naming ``field``."""
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace(" ", "+"))
    except ValueError as exc:
        raise ApiError(
            400, f"{field}: not an ISO-8601 timestamp: {value!r}", code="invalid_request"
        ) from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


async def json_body(request: Request, *, required: bool = True) -> dict[str, Any]:
    """The request body as a JSON object, or 400 (malformed JSON, not an object)."""
    raw = await request.body()
    if not raw.strip():
        if required:
            raise ApiError(
                400, "request body is empty; expected a JSON object", code="invalid_json"
            )
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", code="invalid_json")
    return body


async def parse_body(
    request: Request,
    model: type[BodyModel],
    *,
    required: bool = True,
    codes: Mapping[str, str] | None = None,
) -> BodyModel:
    """The request body validated by ``model``, or a 400 naming every offending field.

    Args:
        request: the request (its body is parsed with orjson: see :func:`json_body`).
        model: the pydantic model of the body.
        required: whether an empty body is an error (else it validates as ``{}``).
        codes: error code per top-level field (default ``invalid_request``), e.g.
            ``{"params": "invalid_params"}``.
    """
    body = await json_body(request, required=required)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        code = "invalid_request"
        for err in errors:
            top = err["loc"][0] if err.get("loc") else None
            if codes and isinstance(top, str) and top in codes:
                code = codes[top]
                break
        raise ApiError(400, describe_validation_errors(errors), code=code) from None


def as_bool(value: Any, field: str) -> bool:
    """Accept a JSON bool or ``"true"``/``"false"`` in any case (seeds send ``"False"``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ApiError(400, f"{field}: expected a boolean, got {value!r}", code="invalid_request")


def job_json(
    job: Job, *, include_params: bool = False, instance_crn: str | None = None
) -> dict[str, Any]:
    """A job as ``GET jobs/{id}`` shows it."""
    state: dict[str, Any] = {
        "status": job.state,
        "reason": job.reason,
        "reason_code": job.reason_code,
    }
    out: dict[str, Any] = {
        "id": job.id,
        "backend": job.backend,
        "state": state,
        "status": job.state,
        "program": {"id": job.program_id},
        "created": iso(job.created),
        "session_id": job.session_id,
        "tags": orjson.loads(job.tags or "[]"),
        "private": bool(job.private),
        "cost": job.cost or 0,
        "user_id": job.user_id,
        "usage": {"seconds": job.usage_seconds or 0.0},
        "runtime": "",
        "log_level": job.log_level,
        "estimated_running_time_seconds": None,
    }
    if instance_crn:
        out["instance"] = instance_crn
    if include_params and not job.private:
        out["params"] = orjson.Fragment(job.params)
    return out


def session_state(
    row: SessionRow, counts: dict[str, int], now: float | None = None
) -> tuple[str, str | None]:
    """The session's protocol state and reason, computed from its row and its jobs."""
    now = time.time() if now is None else now
    pending = counts.get(protocol.QUEUED, 0) + counts.get(protocol.RUNNING, 0)
    if row.closed:
        return "closed", row.state_reason
    if now > row.created + row.max_ttl:
        return "closed", "max_ttl expired"
    if not row.accepting_jobs and pending == 0:
        return "closed", row.state_reason or "closed by the user"
    if row.activated_at is None and pending == 0:
        return "open", None
    if pending:
        return "active", None
    last = max(
        t
        for t in (row.last_job_completed, row.last_job_started, row.activated_at, row.created)
        if t
    )
    if now - last > row.interactive_ttl:
        return "inactive", "interactive_ttl expired"
    return "active", None


def session_json(row: SessionRow, counts: dict[str, int], usage: float) -> dict[str, Any]:
    """A session as ``GET sessions/{id}`` shows it."""
    state, reason = session_state(row, counts)
    stamps = [{"status": "open", "timestamp": iso(row.created)}]
    if row.activated_at:
        stamps.append({"status": "active", "timestamp": iso(row.activated_at)})
    closed_at = row.closed_at
    if state == "closed" and closed_at is None:
        closed_at = min(time.time(), row.created + row.max_ttl)
    if state == "closed":
        stamps.append({"status": "closed", "timestamp": iso(closed_at)})
    return {
        "id": row.id,
        "backend_name": row.backend,
        "mode": row.mode,
        "state": state,
        "state_reason": reason,
        "accepting_jobs": bool(row.accepting_jobs) and state != "closed",
        "interactive_ttl": row.interactive_ttl,
        "max_ttl": row.max_ttl,
        "active_ttl": row.max_ttl,
        "started_at": iso(row.created),
        "activated_at": iso(row.activated_at),
        "closed_at": iso(closed_at) if state == "closed" else None,
        "last_job_started": iso(row.last_job_started),
        "last_job_completed": iso(row.last_job_completed),
        "timestamps": stamps,
        "user_id": row.user_id,
        "elapsed_time": usage if state == "closed" else None,
        "jobs": {k: v for k, v in counts.items()},
    }


def is_final(state: str) -> bool:
    """Whether a job state is final."""
    return state in FINAL_STATES


def current_calibration_id(spec: Any) -> str:
    """The id of a backend's current calibration (what ``calibration_id=`` must name).

    The catalog's documents carry no calibration id, so it is derived from what identifies a
    calibration: the backend name and the properties' ``last_update_date`` (the configuration's
    ``online_date`` for an ideal simulator, which has no properties). Stable across restarts and
    replicas; a new calibration (new ``last_update_date``) gets a new id.
    """
    props = spec.properties or {}
    stamp = props.get("last_update_date") or spec.configuration.get("online_date") or ""
    digest = hashlib.blake2b(f"{spec.name}\n{stamp}".encode(), digest_size=10)
    return f"cal-{digest.hexdigest()}"
