"""Turn an HTTP error response into the matching :mod:`qiskit_rest_provider.exceptions` class.

Three body shapes are understood (protocol §6.1): the D10 / IBM Cloud form
``{"errors": [{"code", "message", "more_info"}], "trace", "status_code"}``, the classic form
``{"error": {"code", "message", "name"}}`` and FastAPI's ``{"detail": ...}``. Anything else (an
HTML error page from a proxy, a truncated body) becomes a short, tag-free excerpt of the text.
"""

from __future__ import annotations

import json
import re
from typing import Any

import requests

from ..exceptions import (
    AuthenticationError,
    ConflictError,
    NotFoundError,
    RateLimitError,
    RequestError,
)

_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_EXCERPT = 300


def _excerpt(text: str) -> str:
    """A one-line, tag-free excerpt of a non-JSON body (HTML error pages)."""
    text = _SPACE.sub(" ", _TAG.sub(" ", text)).strip()
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 3] + "..."


def parse_error_body(response: requests.Response) -> tuple[str | None, Any, str | None]:
    """Extract ``(message, code, trace)`` from an error response of any known shape."""
    trace = response.headers.get("x-request-id") or response.headers.get("uber-trace-id")
    text = response.text if response.content else ""
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        trace = body.get("trace") or trace
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            messages = [str(e.get("message", "")) for e in errors if isinstance(e, dict)]
            message = "; ".join(m for m in messages if m) or None
            return message, errors[0].get("code"), trace
        error = body.get("error")
        if isinstance(error, dict):
            return error.get("message") or error.get("name"), error.get("code"), trace
        if isinstance(error, str):
            return error, body.get("code"), trace
        detail = body.get("detail")
        if isinstance(detail, str):
            return detail, None, trace
        if isinstance(detail, list):
            parts = []
            for item in detail:
                if isinstance(item, dict):
                    loc = ".".join(str(x) for x in item.get("loc", ()) if x != "body")
                    parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg")))
                else:
                    parts.append(str(item))
            return "; ".join(parts) or None, None, trace
        if isinstance(body.get("message"), str):
            return body["message"], body.get("code"), trace
    if text:
        return _excerpt(text) or None, None, trace
    return None, None, trace


def error_from_response(
    response: requests.Response, *, what: str, auth_hint: str | None = None
) -> RequestError:
    """Build the exception for a non-2xx response.

    Args:
        response: the failed response.
        what: the request in words, e.g. ``"GET /jobs/abc"`` (never includes credentials).
        auth_hint: extra advice appended to 401/403 messages.
    """
    status = response.status_code
    message, code, trace = parse_error_body(response)
    reason = response.reason or "error"
    text = f"{what} failed: {message}" if message else f"{what} failed: HTTP {status} {reason}"
    cls: type[RequestError]
    if status in (401, 403):
        cls = AuthenticationError
        if auth_hint:
            text = f"{text}. {auth_hint}"
    elif status == 404:
        cls = NotFoundError
    elif status == 409:
        cls = ConflictError
    elif status == 429:
        cls = RateLimitError
    else:
        cls = RequestError
    return cls(text, status_code=status, code=code, trace=trace)
