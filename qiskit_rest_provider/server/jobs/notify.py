"""Wake this replica's waiters when a job changes state in another replica.

Several ``serve`` replicas may share one PostgreSQL database; a long-poll (``GET
jobs/{id}?wait=S``) or an event stream on replica A must answer when replica B's dispatcher
finishes the job. The store announces every job state change with ``pg_notify`` in the
transaction that makes it (:data:`~.store.NOTIFY_CHANNEL`, payload: the job id);
:class:`JobChangeListener` listens (``LISTEN``) on a connection of its own, in a daemon
thread, and wakes the job's :class:`~.watchers.JobWatchers` waiters.

Where there is no ``NOTIFY`` (SQLite, or the listening connection is down) every waiter is woken
every ``fallback_seconds`` (``serve --notify-fallback``, default 5 s) and re-reads the job, so a
change made by another process is seen within that time at the latest.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from .store import NOTIFY_CHANNEL, Store
from .watchers import JobWatchers

__all__ = ["JobChangeListener"]

logger = logging.getLogger(__name__)


class JobChangeListener:
    """A daemon thread relaying job changes announced by any replica to local waiters.

    Args:
        store: the shared store (its engine says whether ``NOTIFY`` is available).
        watchers: the waiters to wake.
        fallback_seconds: interval of the wake-everyone re-read where no notification arrives.
        on_change: also called with each announced job id (the dispatcher checks whether a job
            it runs was cancelled elsewhere).
    """

    def __init__(
        self,
        store: Store,
        watchers: JobWatchers,
        fallback_seconds: float = 5.0,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.watchers = watchers
        self.fallback_seconds = max(0.05, float(fallback_seconds))
        self.on_change = on_change
        self._stop = threading.Event()
        self._conn: Any = None
        self._thread = threading.Thread(target=self._run, name="job-change-listener", daemon=True)
        #: set once ``LISTEN`` is in place (tests wait on it)
        self.listening = threading.Event()

    def start(self) -> None:
        """Start listening (returns at once)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (within about ``fallback_seconds``)."""
        self._stop.set()
        self._thread.join(timeout=1.0)  # a daemon: a quiet LISTEN need not delay shutdown

    # ---------------------------------------------------------------- internals
    def _relay(self, job_id: str) -> None:
        self.watchers.notify(job_id)
        if self.on_change is not None:
            try:
                self.on_change(job_id)
            except Exception:  # never let a hook stop the listener
                logger.exception("job change hook failed for %s", job_id)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.store.can_notify:
                try:
                    self._listen()
                except Exception as exc:  # connection lost: fall back, then reconnect
                    self.listening.clear()
                    logger.warning("job change listener: %s; re-reading every %gs", exc,
                                   self.fallback_seconds)  # fmt: skip
            self.watchers.notify_all()
            self._stop.wait(self.fallback_seconds)

    def _listen(self) -> None:
        import psycopg

        url = self.store.engine.url.set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
            self.listening.set()
            logger.debug("listening for job changes on %s", NOTIFY_CHANNEL)
            while not self._stop.is_set():
                got = False
                for note in conn.notifies(timeout=self.fallback_seconds):
                    got = True
                    self._relay(note.payload)
                    if self._stop.is_set():
                        return
                if not got:  # quiet for a while: re-read anyway (a notification may be lost)
                    self.watchers.notify_all()
