"""Watchers: wake the requests that wait on a job (long-poll, event streams) on a state change.

They also hold the process's job event history (:mod:`.events`).

The dispatcher and the routes notify from any thread; a waiter sleeps on its own event loop.
"""

from __future__ import annotations

import asyncio
import collections
import threading

from .events import JobEventLog

__all__ = ["FreshResults", "JobWatchers", "Watch"]


class FreshResults:
    """The small result bodies this process' dispatcher just stored, for a waiting results read.

    A client waiting on ``GET jobs/{id}/results?wait=S`` (D16) is woken by the dispatcher that
    recorded the job; reading the body back from the store would cost a thread hop and a read
    that the dispatcher had in hand a moment ago. Only Completed jobs' bodies go in, each at
    most ``max_body`` bytes, the newest ``max_total`` bytes in all (the oldest leave first): a
    bounded copy, never the source of truth. A job the route cannot find here (another replica
    ran it, a restart, an eviction, a private job) is read from the store as before.
    """

    def __init__(self, max_body: int = 16 * 1024, max_total: int = 8 * 1024 * 1024) -> None:
        self.max_body, self.max_total = max_body, max_total
        self._bodies: collections.OrderedDict[str, bytes] = collections.OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    def put(self, job_id: str, body: bytes) -> None:
        """Keep a Completed job's body (ignored when larger than ``max_body``)."""
        if len(body) > self.max_body:
            return
        with self._lock:
            self._total += len(body) - len(self._bodies.pop(job_id, b""))
            self._bodies[job_id] = body
            while self._total > self.max_total:
                _, old = self._bodies.popitem(last=False)
                self._total -= len(old)

    def get(self, job_id: str) -> bytes | None:
        """The job's body, if this process stored it lately."""
        with self._lock:
            return self._bodies.get(job_id)

    def drop(self, job_id: str) -> None:
        """Forget a job (it was deleted)."""
        with self._lock:
            self._total -= len(self._bodies.pop(job_id, b""))


class Watch:
    """One long-poll waiter (see :class:`JobWatchers`)."""

    def __init__(self, *, final_only: bool = False) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()
        #: Woken only by changes that may be final (a long-poll answers at the final state only).
        self.final_only = final_only

    async def wait(self, timeout: float) -> None:
        """Sleep until notified or ``timeout`` seconds pass; then re-arm."""
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        self.event.clear()


class JobWatchers:
    """Wakes long-poll requests (``GET jobs/{id}?wait=S``) when a job changes state.

    Register *before* reading the job's state, so a change between the read and the wait is
    never missed.
    """

    def __init__(self) -> None:
        self._waiters: dict[str, set[Watch]] = {}
        self._lock = threading.Lock()
        #: The event history every event stream of this process shares (D14).
        self.events = JobEventLog()
        #: Result bodies this process' dispatcher just stored (a waiting results read's shortcut).
        self.fresh = FreshResults()

    def register(
        self, job_id: str, watch: Watch | None = None, *, final_only: bool = False
    ) -> Watch:
        """Start watching ``job_id`` (call from the event loop).

        Pass an existing ``watch`` to wake one waiter for any of several jobs (an event stream
        of many jobs). ``final_only``: a new watch that sleeps through changes announced as not
        final (Running, progress), as a long-poll does.
        """
        watch = watch or Watch(final_only=final_only)
        with self._lock:
            self._waiters.setdefault(job_id, set()).add(watch)
        return watch

    def unregister(self, job_id: str, watch: Watch) -> None:
        """Stop watching."""
        with self._lock:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(watch)
                if not waiters:
                    del self._waiters[job_id]

    def notify(self, job_id: str, *, final: bool = True) -> None:
        """Wake every waiter of ``job_id`` (safe from any thread).

        ``final=False``: the change is known not to be final (the job started, or made
        progress); final-only waiters sleep on. When unsure, leave it ``True``: a woken
        long-poll re-reads the job and waits again if it is not final.
        """
        with self._lock:
            waiters = list(self._waiters.get(job_id, ()))
        for watch in waiters:
            if watch.final_only and not final:
                continue
            try:
                watch.loop.call_soon_threadsafe(watch.event.set)
            except RuntimeError:  # loop closed
                pass

    def notify_all(self) -> None:
        """Wake every waiter of every job: each re-reads its job (the cross-process fallback)."""
        with self._lock:
            waiters = {w for ws in self._waiters.values() for w in ws}
        for watch in waiters:
            try:
                watch.loop.call_soon_threadsafe(watch.event.set)
            except RuntimeError:  # loop closed
                pass
