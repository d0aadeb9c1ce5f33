"""Live job events (D14): ``GET jobs/{id}/events`` and ``GET jobs/events`` as plain dicts.

The service sends server-sent events; :func:`parse_event_stream` turns the byte stream into
``{"id": ..., "event": ..., "data": {...}}`` dicts, and :class:`JobEventsEndpoints` follows a
stream across the service's reconnect points (a stream lives a bounded time, then the client
reconnects with ``Last-Event-ID``) until the ``final`` event. A service without the extension
answers 404, which is raised as :class:`~qiskit_rest_provider.exceptions.NotFoundError` so the
caller can fall back to the long-poll (D6).

Example (needs a live server, so it is skipped when the docs run):
    >>> from qiskit_rest_provider.account import Account
    >>> from qiskit_rest_provider.client import RuntimeClient
    >>> client = RuntimeClient(Account("ibm_quantum_platform", "http://127.0.0.1:8000", "KEY"))
    >>> [e["data"]["state"] for e in client.job_events("JOB_ID")]  # doctest: +SKIP
    ['Queued', 'Running', 'Completed']
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote

from ..exceptions import RequestError
from ..wire import protocol
from .base import BaseClient

__all__ = ["EVENTS_READ_TIMEOUT", "JobEventsEndpoints", "parse_event_stream"]

logger = logging.getLogger(__name__)

EVENTS_READ_TIMEOUT = 45.0
"""Seconds one read of an event stream may wait: above the service's 15 s heartbeat, so a quiet
but healthy stream never times out, while a dead connection is noticed."""
EVENTS_SUFFIX = "events"
"""The last path segment of ``jobs/{id}/events`` (a test points it elsewhere to see the 404)."""
RECONNECTS = 5
"""Consecutive broken connections after which following a stream gives up (raises)."""


def parse_event_stream(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    r"""Server-sent events from a byte stream, as ``{"id", "event", "data"}`` dicts.

    ``data`` is parsed as JSON when it is JSON (else kept as text); ``id`` is an ``int`` when it
    is one. Comments (``: keep-alive``) and ``retry:`` fields are skipped. Lines may end in
    ``\n``, ``\r\n`` or ``\r``, and chunks may split lines anywhere.

    Example:
        >>> chunks = [b"id: 7\nevent: state\nda", b'ta: {"state": "Queued"}\n\n']
        >>> list(parse_event_stream(chunks))
        [{'id': 7, 'event': 'state', 'data': {'state': 'Queued'}}]
    """
    buffer = b""
    fields: dict[str, Any] = {}
    data: list[str] = []
    for chunk in chunks:
        buffer += chunk
        lines = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        buffer = lines.pop()
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            if not line:
                if data or fields:
                    yield _event(fields, data)
                fields, data = {}, []
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name in ("id", "event"):
                fields[name] = value


def _event(fields: dict[str, Any], data: list[str]) -> dict[str, Any]:
    text = "\n".join(data)
    try:
        payload: Any = json.loads(text) if text else {}
    except ValueError:
        payload = text
    raw_id = fields.get("id")
    event_id: Any = raw_id
    if raw_id is not None:
        try:
            event_id = int(raw_id)
        except ValueError:
            pass
    return {"id": event_id, "event": fields.get("event", "message"), "data": payload}


class JobEventsEndpoints(BaseClient):
    """The event-stream endpoints; :class:`~.runtime.RuntimeClient` inherits them."""

    def job_events(
        self,
        job_id: str,
        last_event_id: int | str | None = None,
        *,
        timeout: float | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Follow the events of one job until its ``final`` event (``GET jobs/{id}/events``).

        Args:
            job_id: the job id.
            last_event_id: replay only what came after this event id.
            timeout: stop (return) after about this many seconds even if the job is not final.

        Yields:
            ``{"id": int, "event": "state"|"progress"|"final", "data": {"state", "reason",
            "queue_position", "pubs_done", "pubs_total", ...}}``.

        Raises:
            NotFoundError: the service has no such job, or no event streams (fall back to D6).
            RequestError: the stream broke :data:`RECONNECTS` times in a row.
        """
        path = f"jobs/{quote(str(job_id), safe='')}/{EVENTS_SUFFIX}"
        return self._follow(path, {}, last_event_id, timeout, until_final=True)

    def jobs_events(
        self,
        ids: Iterable[str] | None = None,
        *,
        session_id: str | None = None,
        last_event_id: int | str | None = None,
        timeout: float | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Follow the events of several jobs (``GET jobs/events?ids=...&session_id=...``).

        Each event's ``data["job_id"]`` names its job. Ends when the service ends the stream
        after every job is final (the service decides, e.g. while a session still accepts jobs
        it keeps the stream open), or after ``timeout`` seconds.

        Raises:
            ValueError: neither ``ids`` nor ``session_id`` given (no request is sent).
        """
        wanted = [ids] if isinstance(ids, str) else list(ids or ())
        if not all(isinstance(i, str) and i for i in wanted):
            raise ValueError(f"ids: expected job id strings, got {wanted!r}")
        if not wanted and not session_id:
            raise ValueError("ids: give job ids and/or session_id to say which jobs to follow")
        params: dict[str, str] = {}
        if wanted:
            params["ids"] = ",".join(wanted)
        if session_id:
            params["session_id"] = session_id
        return self._follow("jobs/events", params, last_event_id, timeout, until_final=False)

    def _follow(
        self,
        path: str,
        params: dict[str, str],
        last_event_id: int | str | None,
        timeout: float | None,
        *,
        until_final: bool,
    ) -> Iterator[dict[str, Any]]:
        deadline = None if timeout is None else time.monotonic() + max(float(timeout), 0.05)
        last = last_event_id
        broken = 0
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                return
            headers = {"Accept": protocol.EVENTS_MEDIA_TYPE}
            if last is not None:
                headers[protocol.LAST_EVENT_ID_HEADER] = str(last)
            read = EVENTS_READ_TIMEOUT
            if deadline is not None:
                read = max(min(read, deadline - time.monotonic()), 0.05)
            try:
                response = self.request(
                    "GET",
                    path,
                    params=params or None,
                    headers=headers,
                    timeout=read,
                    deadline=deadline,
                    stream=True,
                )
            except RequestError as exc:
                if exc.status_code is not None or deadline_passed(deadline):
                    raise
                broken += 1
                if broken > RECONNECTS:
                    raise
                time.sleep(min(0.5 * broken, 2.0))
                continue
            ended = False
            try:
                for event in parse_event_stream(response.iter_content(chunk_size=None)):
                    broken = 0
                    if event["id"] is not None:
                        last = event["id"]
                    yield event
                    if until_final and event["event"] == protocol.EVENT_FINAL:
                        ended = True
                        return
                ended = not until_final  # a many-jobs stream ends when the service ends it
            except OSError as exc:  # requests' ConnectionError / read timeouts are OSErrors
                if deadline_passed(deadline):
                    return
                broken += 1
                if broken > RECONNECTS:
                    raise RequestError(f"GET /{path}: event stream broke: {exc}") from exc
                logger.info("GET /%s: event stream broke (%s); reconnecting", path, exc)
            finally:
                response.close()
            if ended:
                return


def deadline_passed(deadline: float | None) -> bool:
    """Whether a ``time.monotonic()`` deadline (``None``: none) has passed."""
    return deadline is not None and time.monotonic() >= deadline - 0.01
