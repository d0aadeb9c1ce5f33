"""The server's HTTP edge: error bodies (decision D10), their exception handlers, the request guard.

Every 4xx/5xx answer of the server is
``{"errors": [{"code", "message", "more_info"}], "trace": <request id>, "status_code": <int>}``.
Routes raise :class:`ApiError`; FastAPI's own validation errors become 400 (not 422) naming the
field; anything unexpected is logged with its traceback and answered with a 500 that leaks nothing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, TypeVar

import anyio
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

logger = logging.getLogger(__name__)

_DEFAULT_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    408: "request_timeout",
    415: "unsupported_media_type",
    429: "too_many_requests",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(Exception):
    """An error answer: HTTP status, short code, message naming the problem, extra headers."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.code = code or _DEFAULT_CODES.get(status_code, "error")
        self.headers = headers or {}
        self.details = details or {}  # more keys of the error item (e.g. ``quota``)


def request_trace(request: Request | None) -> str:
    """The request id (set by the ASGI middleware), or a fresh one."""
    if request is not None:
        trace = request.scope.get("state", {}).get("trace")
        if trace:
            return str(trace)
    return uuid.uuid4().hex


def error_body(
    status_code: int, code: str, message: str, trace: str, details: dict[str, Any] | None = None
) -> bytes:
    """The D10 body as bytes (``details``: more keys of the error item, e.g. ``quota``)."""
    return orjson.dumps(
        {
            "errors": [{"code": code, "message": message, "more_info": "", **(details or {})}],
            "trace": trace,
            "status_code": status_code,
        }
    )


def error_response(
    status_code: int,
    code: str,
    message: str,
    trace: str,
    headers: dict[str, str] | None = None,
    details: dict[str, Any] | None = None,
) -> Response:
    """A D10 error response."""
    return Response(
        error_body(status_code, code, message, trace, details),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """A pydantic/FastAPI error location as the field path users wrote (``tags[0]``, ``limit``).

    The request part (``body``, ``query``, ``path``, ``header``) is dropped: the message names the
    field, not where FastAPI found it.
    """
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "request"


def describe_validation_errors(errors: Any) -> str:
    """One message naming every offending field: ``"cost: Input should be a valid number"``.

    ``value_error`` messages (our own validators) are shown without pydantic's
    ``"Value error, "`` prefix, so they read like the hand-written checks.
    """
    problems = []
    for err in errors:
        message = str(err.get("msg", "invalid"))
        if err.get("type") == "value_error" and "error" in (err.get("ctx") or {}):
            message = str(err["ctx"]["error"])
        problems.append(f"{field_path(err.get('loc', ()))}: {message}")
    return "; ".join(problems) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Route every error through D10 bodies."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return error_response(
            exc.status_code,
            exc.code,
            exc.message,
            request_trace(request),
            exc.headers,
            exc.details,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
        return error_response(
            exc.status_code,
            _DEFAULT_CODES.get(exc.status_code, "error"),
            message,
            request_trace(request),
            dict(exc.headers or {}),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        message = describe_validation_errors(exc.errors())
        return error_response(400, "invalid_request", message, request_trace(request))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        trace = request_trace(request)
        logger.error(
            "unexpected error on %s %s (trace %s)",
            request.method,
            request.url.path,
            trace,
            exc_info=exc,
        )
        return error_response(
            500, "internal_error", f"internal server error (trace {trace})", trace
        )


# ----------------------------------------------------------------------------------------------
# JSON bodies and values of requests and responses, for every router.
#
# Request bodies are validated with the pydantic models of :mod:`qiskit_rest_provider.wire.rest`
# by :func:`parse_body`, *after* authentication (a caller without credentials gets 401 whatever
# it sent) and after parsing with orjson (fast, and a depth-bombed or non-UTF-8 body is a clean
# 400).
# ----------------------------------------------------------------------------------------------
JSON = "application/json"
BodyModel = TypeVar("BodyModel", bound=BaseModel)
_T = TypeVar("_T")


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


async def _read_body(request: Request) -> bytes | bytearray:
    """The body, read into one buffer of the announced length (no list of chunks joined after).

    Starlette's ``request.body()`` holds the chunks and their join at once: twice the body (a
    50 MiB job held 100 MiB before parsing began, issue 15). The guard has already refused a
    ``Content-Length`` over the body cap, and caps what streams in.
    """
    length = request.headers.get("content-length", "")
    if not length.isdigit() or "transfer-encoding" in request.headers:
        return await request.body()
    buffer = bytearray(int(length))
    view = memoryview(buffer)
    filled = 0
    async for chunk in request.stream():
        end = filled + len(chunk)
        if end > len(buffer):
            raise ApiError(400, "request body is longer than its Content-Length")
        view[filled:end] = chunk
        filled = end
    view.release()
    if filled != len(buffer):
        raise ApiError(400, "request body is shorter than its Content-Length")
    return buffer


LARGE_BODY_BYTES = 1 << 20
"""Bodies from this size are parsed (and validated) off the event loop, one at a time."""
_large_bodies = threading.BoundedSemaphore(1)


def _parse_json(raw: bytes | bytearray) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, f"request body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object", code="invalid_json")
    return body


async def _off_the_loop(raw: bytes | bytearray, work: Callable[[], _T]) -> _T:
    """Run ``work`` (parsing or validating ``raw``) where it cannot stall other requests.

    Parsing holds the GIL for ~2 ms per MiB; on the event loop six 50 MiB bodies arriving at
    once would queue every other request behind ~0.6 s of parsing. Small bodies stay inline
    (a thread hop costs more than their parse); large ones take turns on one worker thread,
    so another client's request waits for at most one of them.
    """
    if len(raw) < LARGE_BODY_BYTES:
        return work()

    def turn() -> _T:
        with _large_bodies:
            return work()

    return await anyio.to_thread.run_sync(turn)


async def json_body(request: Request, *, required: bool = True) -> dict[str, Any]:
    """The request body as a JSON object, or 400 (malformed JSON, not an object)."""
    raw = await _read_body(request)
    if not raw or raw.isspace():  # (strip would copy the whole body)
        if required:
            raise ApiError(
                400, "request body is empty; expected a JSON object", code="invalid_json"
            )
        return {}
    return await _off_the_loop(raw, lambda: _parse_json(raw))


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
    raw = await _read_body(request)
    if not raw or raw.isspace():
        if required:
            raise ApiError(
                400, "request body is empty; expected a JSON object", code="invalid_json"
            )
        raw = b"{}"
    try:
        return await _off_the_loop(raw, lambda: model.model_validate(_parse_json(raw)))
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


# ----------------------------------------------------------------------------------------------
# Request guard (pure ASGI): request ids, the body cap, the body read timeout, the per-client cap.
#
# Written against raw ASGI (not ``BaseHTTPMiddleware``) so it adds microseconds, not
# milliseconds. The body is NOT read here: routes authenticate from the headers first (their
# ``CallerDep``) and read the body only after, through the wrapped ``receive`` that enforces the
# cap while the body streams in and a deadline for the whole body. So a caller with a wrong
# credential gets its 401 without a byte of its body being held, and a response sent while part
# of the body is still unread closes the connection (the rest is never read).
# ----------------------------------------------------------------------------------------------
Scope = dict[str, Any]
DEFAULT_BODY_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 64


class RequestGuard:
    """Tag each request with a trace id (``X-Request-Id``), cap its body size and read time.

    Args:
        app: the ASGI app guarded.
        max_body_bytes: a body announcing or streaming more answers 413.
        body_timeout: seconds the whole body may take to arrive; slower answers 408 and closes.
        max_requests_per_client: requests one client address may have in progress at once;
            one more answers 429 (0 = no cap).
    """

    def __init__(
        self,
        app: Any,
        max_body_bytes: int,
        body_timeout: float = DEFAULT_BODY_TIMEOUT,
        max_requests_per_client: int = DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.max_requests_per_client = max_requests_per_client
        self._active: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trace = uuid.uuid4().hex
        scope.setdefault("state", {})["trace"] = trace
        limit = self.max_body_bytes
        expect_body = False
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = 0
                if length > limit:
                    await _send_error(
                        send, trace, 413, "payload_too_large", f"request body exceeds {limit} bytes"
                    )
                    return
                expect_body = expect_body or length > 0
            elif name == b"transfer-encoding":
                expect_body = True
        client = scope.get("client")
        host = str(client[0]) if client else "?"
        cap = self.max_requests_per_client
        if cap and self._active.get(host, 0) >= cap:
            await _send_error(
                send,
                trace,
                429,
                "too_many_requests",
                f"more than {cap} requests in progress from {host}; retry in 1 s",
                [(b"retry-after", b"1")],
            )
            return
        self._active[host] = self._active.get(host, 0) + 1
        body_done = not expect_body
        received = 0
        deadline = time.monotonic() + self.body_timeout

        async def guarded_receive() -> Any:
            nonlocal body_done, received
            if body_done:
                return await receive()
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    raise asyncio.TimeoutError
                message = await asyncio.wait_for(receive(), remaining)
            except asyncio.TimeoutError:
                raise ApiError(
                    408,
                    f"request body not received within {self.body_timeout:g} s",
                    code="request_timeout",
                    headers={"Connection": "close"},
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise ApiError(
                        413,
                        f"request body exceeds {limit} bytes",
                        code="payload_too_large",
                        headers={"Connection": "close"},
                    )
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        async def traced_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", trace.encode()))
                if not body_done and not any(k == b"connection" for k, _ in headers):
                    headers.append((b"connection", b"close"))  # the rest is never read
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, guarded_receive, traced_send)
        finally:
            left = self._active.get(host, 1) - 1
            if left > 0:
                self._active[host] = left
            else:
                self._active.pop(host, None)


async def _send_error(
    send: Any,
    trace: str,
    status: int,
    code: str,
    message: str,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = error_body(status, code, message, trace)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", trace.encode()),
                (b"connection", b"close"),
                *(extra or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
