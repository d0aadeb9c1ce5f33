"""Live job events (D14): a small per-job event history derived from the job's state in the store.

Events are not written by the dispatcher: every event stream reads the job from the store when
it is woken (the dispatcher's :meth:`JobWatchers.notify`, or its own short poll for the queue
position) and hands the row to :meth:`JobEventLog.observe`, which appends what changed since
the last event. Several streams of one job share one history, so every client sees the same ids.
A state that happened while nobody watched is filled in from the job's timestamps (a job that
has a ``running_at`` was Running), so a stream opened after the fact still tells the story
Queued → Running → final.

Ids come from one counter per server process that starts at the process's start time in
microseconds: they increase within a job (and across jobs, so one ``Last-Event-ID`` also serves
a stream of many jobs), and every id of this process is larger than any id an earlier process
gave out. The history lives in memory only: replay with ``Last-Event-ID`` works within the
process lifetime; after a restart (an id below :attr:`JobEventLog.base`) the client gets the
job's current state as its first event.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

from ...wire import protocol
from .models import Job

__all__ = ["JobEvent", "JobEventLog", "format_event", "pubs_count"]

#: Job histories kept at once; the least recently observed are forgotten first (and rebuilt
#: from the store, with new ids, if a stream asks for them again).
MAX_JOBS = 10_000


@dataclass(frozen=True)
class JobEvent:
    """One server-sent event of a job: ``id``, ``event`` name and JSON ``data``."""

    id: int
    kind: str
    data: dict[str, Any]


def format_event(event: JobEvent) -> bytes:
    """The event in the ``text/event-stream`` wire form (one ``data:`` line of JSON)."""
    return (
        f"id: {event.id}\nevent: {event.kind}\ndata: ".encode() + orjson.dumps(event.data) + b"\n\n"
    )


def pubs_count(program_id: str, params: Any) -> int | None:
    """How many PUBs a job's params hold (``None`` when the program has no ``pubs`` list).

    Cheap on a parsed dict; called once per job (at admission, or once per process when a
    stream meets a job admitted earlier), never per event.
    """
    if program_id in protocol.PRIMITIVE_PROGRAMS and isinstance(params, dict):
        pubs = params.get("pubs")
        if isinstance(pubs, list):
            return len(pubs)
    if program_id == protocol.EXECUTOR and isinstance(params, dict):
        items = (params.get("quantum_program") or {}).get("items")
        if isinstance(items, list):
            return len(items)  # a program item is the executor's unit of work
    return None


class JobEventLog:
    """The event history of recently watched jobs, shared by every stream of this process.

    Thread-safe: streams call :meth:`observe` from the event loop, the job route calls
    :meth:`admitted` from a worker thread.
    """

    def __init__(self, max_jobs: int = MAX_JOBS) -> None:
        #: Every id this process gives out is larger than this (its start, in microseconds).
        self.base = time.time_ns() // 1000
        self._next = self.base
        self._logs: OrderedDict[str, list[JobEvent]] = OrderedDict()
        self._pubs: OrderedDict[str, int | None] = OrderedDict()
        self._pubs_done: OrderedDict[str, int] = OrderedDict()  # split jobs: PUBs merged so far
        self._max = max_jobs
        self._lock = threading.Lock()

    def admitted(self, job_id: str, pubs_total: int | None) -> None:
        """Remember a new job's PUB count so no stream has to read its params."""
        with self._lock:
            self._pubs[job_id] = pubs_total
            self._trim(self._pubs)

    def pubs_done(self, job_id: str, done: int) -> None:
        """A running job split across workers has ``done`` PUBs finished (the dispatcher says).

        The next :meth:`observe` of the Running job appends a ``progress`` event with it.
        """
        with self._lock:
            self._pubs_done[job_id] = done
            self._trim(self._pubs_done)

    def known_pubs(self, job_id: str) -> tuple[bool, int | None]:
        """``(known, pubs_total)`` for ``job_id``."""
        with self._lock:
            if job_id in self._pubs:
                return True, self._pubs[job_id]
        return False, None

    def observe(
        self, job: Job, queue_position: int | None, pubs_total: int | None
    ) -> list[JobEvent]:
        """Bring the job's history up to date with its row; return the whole history.

        Args:
            job: the job as the store has it now (params not needed).
            queue_position: Queued jobs ahead of it (only used while it is Queued).
            pubs_total: the job's PUB count, or ``None`` when unknown.
        """
        with self._lock:
            if pubs_total is not None or job.id not in self._pubs:
                self._pubs[job.id] = pubs_total
                self._trim(self._pubs)
            log = self._logs.get(job.id)
            if log is None:
                log = self._logs[job.id] = []
                self._trim(self._logs)
            else:
                self._logs.move_to_end(job.id)
            self._update(log, job, queue_position, pubs_total)
            return list(log)

    def _update(
        self, log: list[JobEvent], job: Job, position: int | None, pubs_total: int | None
    ) -> None:
        state = job.state
        last = log[-1].data["state"] if log else None
        if last in protocol.FINAL_STATES:
            return
        queued_position = position if state == protocol.QUEUED else None
        if last is None:
            self._append(
                log, job, protocol.EVENT_STATE, protocol.QUEUED, queued_position, pubs_total
            )
            last = protocol.QUEUED
        if state == last:
            if state == protocol.QUEUED and log[-1].data["queue_position"] != queued_position:
                self._append(log, job, protocol.EVENT_PROGRESS, state, queued_position, pubs_total)
            elif state == protocol.RUNNING and self._pubs_done.get(job.id, 0) > int(
                log[-1].data["pubs_done"] or 0
            ):
                self._append(log, job, protocol.EVENT_PROGRESS, state, None, pubs_total)
            return
        if state in protocol.FINAL_STATES:
            if last == protocol.QUEUED and job.running_at is not None:
                self._append(log, job, protocol.EVENT_STATE, protocol.RUNNING, None, pubs_total)
            self._append(log, job, protocol.EVENT_FINAL, state, None, pubs_total)
        else:  # Queued -> Running, or Running -> Queued (requeued after a restart)
            self._append(log, job, protocol.EVENT_STATE, state, queued_position, pubs_total)

    def _append(
        self,
        log: list[JobEvent],
        job: Job,
        kind: str,
        state: str,
        position: int | None,
        pubs_total: int | None,
    ) -> None:
        self._next += 1
        final = state in protocol.FINAL_STATES
        data = {
            "job_id": job.id,
            "state": state,
            "reason": job.reason if final else None,
            "queue_position": position,
            "pubs_done": (
                (pubs_total or 0)
                if state == protocol.COMPLETED
                else self._pubs_done.get(job.id, 0)
                if state == protocol.RUNNING
                else 0
            ),
            "pubs_total": pubs_total,
        }
        log.append(JobEvent(self._next, kind, data))

    def _trim(self, table: OrderedDict[str, Any]) -> None:
        while len(table) > self._max:
            table.popitem(last=False)

    @staticmethod
    def after(history: list[JobEvent], last_id: int | None, base: int) -> list[JobEvent]:
        """The events of ``history`` a client that saw ``last_id`` has not seen.

        No ``last_id``: all of them. An id from an earlier process (below ``base``): the current
        state (the last event) only, since the events it knew are gone with that process.
        Otherwise the events with a larger id (ids are given out in one increasing sequence, so
        this also holds for a stream of several jobs).
        """
        if last_id is None:
            return list(history)
        if last_id < base:
            return history[-1:]
        return [e for e in history if e.id > last_id]
