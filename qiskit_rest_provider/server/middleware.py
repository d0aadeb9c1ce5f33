"""Pure-ASGI middleware: request ids and the request body cap.

Written against raw ASGI (not ``BaseHTTPMiddleware``) so it adds microseconds, not milliseconds,
and so the cap applies while the body streams in: a client announcing or sending more than
``max_body_bytes`` gets a 413 without the excess ever being read.
"""

from __future__ import annotations

import uuid
from typing import Any

from .errors import error_body

Scope = dict[str, Any]


class RequestGuard:
    """Tag each request with a trace id (``X-Request-Id``) and cap its body size."""

    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        trace = uuid.uuid4().hex
        scope.setdefault("state", {})["trace"] = trace
        limit = self.max_body_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > limit
                except ValueError:
                    too_big = False
                if too_big:
                    await _send_413(send, trace, limit)
                    return
        # Read the whole body here (routes buffer it anyway), enforcing the cap as it streams.
        chunks: list[bytes] = []
        received = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                await _send_413(send, trace, limit)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay_receive() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def traced_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", trace.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, replay_receive, traced_send)


async def _send_413(send: Any, trace: str, limit: int) -> None:
    body = error_body(413, "payload_too_large", f"request body exceeds {limit} bytes", trace)
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-request-id", trace.encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
