"""Live job states for the dashboard: server-sent events carrying ready-made HTML.

The REST event stream (:mod:`..jobs.event_routes`) sends JSON for programs; htmx's SSE extension
swaps the ``data`` of an event into the element that names the event (``sse-swap="job-ID"``),
so this stream sends the rendered state badge instead. It is woken by the same
:class:`~..jobs.watchers.JobWatchers` as the REST streams (the dispatcher notifies them on every
state change) and re-reads Queued jobs every second for their queue position.

Only the signed-in caller's jobs are read (``get_job`` scoped by instance): another instance's
id is silently never streamed. When every job followed is final the stream sends ``done`` (the
page's ``sse-close="done"`` then closes it, so the browser does not reconnect) and ends.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from ..auth.tokens import Caller
from ..jobs.models import FINAL_STATES, Job
from ..jobs.watchers import Watch

#: How often Queued jobs are re-read for their queue position (seconds).
POLL_SECONDS = 1.0
#: Most jobs one dashboard stream follows (a page shows at most this many).
MAX_STREAM_JOBS = 100


def sse_event(name: str, html: str) -> bytes:
    """One ``text/event-stream`` event whose data is ``html`` (every line prefixed)."""
    lines = html.splitlines() or [""]
    return (f"event: {name}\n" + "".join(f"data: {line}\n" for line in lines) + "\n").encode()


def _read(st: Any, caller: Caller, ids: list[str]) -> list[tuple[Job, int | None]]:
    out = []
    for job_id in ids:
        job = st.store.get_job(job_id, caller.instance_id, with_params=False)
        if job is not None:
            position = st.store.queue_position(job) if job.state == "Queued" else None
            out.append((job, position))
    return out


async def job_state_stream(
    st: Any,
    caller: Caller,
    ids: list[str],
    render: Callable[[Job, int | None], str],
) -> AsyncIterator[bytes]:
    """Events ``job-<id>`` (the job's state badge, rendered by ``render``) until all are final."""
    watch = Watch()
    for job_id in ids:  # before the first read, so no change in between is missed
        st.watchers.register(job_id, watch)
    sent: dict[str, tuple[str, int | None]] = {}
    now = time.monotonic()
    end = now + st.config.event_stream_seconds
    beat = st.config.event_heartbeat_seconds
    next_beat = now + beat
    try:
        yield b"retry: 2000\n\n"
        while True:
            rows = await run_in_threadpool(_read, st, caller, ids)
            chunks = []
            for job, position in rows:
                key = (job.state, position)
                if sent.get(job.id) != key:
                    sent[job.id] = key
                    chunks.append(sse_event(f"job-{job.id}", render(job, position)))
            if chunks:
                yield b"".join(chunks)
            if all(job.state in FINAL_STATES for job, _ in rows):
                yield sse_event("done", "")
                return
            now = time.monotonic()
            if now >= end:
                return
            if now >= next_beat:
                yield b": keep-alive\n\n"
                next_beat = now + beat
            await watch.wait(max(min(POLL_SECONDS, next_beat - now, end - now), 0.01))
    finally:
        for job_id in ids:
            st.watchers.unregister(job_id, watch)
