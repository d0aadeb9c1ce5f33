"""The dispatcher: hands Queued jobs to the executor and records what comes back.

One thread owns the hand-off (at most ``executor.capacity`` jobs in flight). Instances are served
round-robin, so one instance's long queue cannot hold back another's job; within an instance,
session jobs go first, then submission order; ``max_running_per_instance`` caps how many workers
one instance holds. A job becomes Running in one guarded transaction that claims it, so it is
handed out once (even with several dispatchers on one database).
On start, jobs left Running by a crash go back to Queued and run again (the store guarantees
a job reaches a final state once: every final transition is guarded on the previous state).

Replicas: several servers may share one PostgreSQL database. A claim records this replica
(``config.replica_id``) and a lease (``config.lease_seconds``) that the loop renews while the job
runs; every outcome is recorded only while the claim is still this replica's. On start a replica
re-queues only what is its own (or a dead replica's on this host, or expired), never the jobs of
replicas still alive; any replica re-queues jobs whose lease expired (their replica died). A
renewal that finds a job no longer held (cancelled on another replica, or taken over) stops its
worker at once.

Limits: a job with ``cost`` (``max_execution_time``, seconds) or the server default is Cancelled
with ``reason_code`` 1305 when its *wall-clock* time since it was handed to a worker exceeds it.
A job cancelled while running, or over its time, has its worker killed at once (the executor
starts a replacement), so no job can hold a worker after it is final. A worker that dies by
itself fails only its own job, which is re-queued (up to three attempts, then Failed) — unless
it was killed by the system (SIGKILL that was not ours: the OOM killer), which fails the job at
once with reason "out of memory" (``reason_code`` 1502), since running it again would kill again.

Using every core: a job that starts while workers would stay idle (no other startable job
queued) is split (:mod:`..execution.split`) into parts — runs of its PUBs, and for a sampler PUB of
many noisy shots, runs of its shot chunks — that run as separate executor tasks on the idle
workers and are merged, in PUB order, into one result. Parts are fed to workers only while no
queued job can use them (a new job of any instance waits for at most one part), count against
``max_running_per_instance`` as workers held, and are one job to the store: Running once, final
once. A cancel or the time limit kills every part; a part that fails fails the job (a part whose
worker died re-queues the whole job by the rule above); simulation seconds and metrics are summed
(metrics ``split``: parts, worker pids, each part's wall-clock window).

Cancelling: :meth:`Dispatcher.cancel` is the one way to cancel a job. A job being handed over
(claimed Running in the store, not yet registered as in flight) is remembered while the hand-off
lasts, so a cancel landing in that window is applied the moment the job is registered: its worker
is killed at once, and a cancel answered 204 never leaves a worker busy behind a Cancelled job.

Time limits count from the moment a task actually starts on a worker (its future running), not
from the hand-off: a task that waits in the executor is never cancelled for time it did not run.

Transpile tasks (``POST /transpile``, table ``transpile_tasks``) wait in the same queue: an
instance's PENDING tasks and Queued jobs share its round-robin turn (oldest first, session jobs
ahead), each task holds one worker, is claimed with a lease and re-queued after a crash by the
same rules, is stopped (its worker killed) past its time limit (FAILURE) or when cancelled
(CANCELLED), and is re-queued up to three times if its worker dies.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import dataclasses
import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import orjson

from ...wire import protocol
from ..config import ServerConfig
from ..execution.base import (
    ExecutionTask,
    JobExecutor,
    JobPart,
    PreparedJob,
    TaskKilled,
    WorkerDied,
)
from ..execution.cost import format_bytes
from . import transpile_store as tstore
from .admission import prepare_job
from .models import FINAL_STATES
from .store import QueuedJob, Store
from .transpile_store import TASK_PENDING, QueuedTranspileTask, TranspileStore
from .watchers import JobWatchers

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
REASON_TOO_LONG = protocol.REASON_MAX_TIME
REASON_INPUT = protocol.REASON_INPUT
REASON_EXECUTION = protocol.REASON_EXECUTION
REASON_WORKER_CRASH = protocol.REASON_WORKER_CRASH
REASON_OUT_OF_MEMORY = protocol.REASON_OUT_OF_MEMORY

DEFERRED_SPLIT_MIN_SECONDS = 0.2
"""A job that starts while some workers are busy is split for them too (its later parts wait
for a worker to free up) only if it is estimated to run at least this long: each part costs a
few milliseconds, paid for nothing if no worker frees up before the job ends."""


@dataclass
class _SplitRun:
    """The parts of a job split across workers: waiting, running, done."""

    plan: list[tuple[PreparedJob, JobPart]]
    task: ExecutionTask  # the job's task; each part's is a copy with its PUBs
    pending: collections.deque[int] = field(default_factory=collections.deque)
    running: dict[int, cf.Future[Any]] = field(default_factory=dict)
    outcomes: dict[int, dict[str, Any]] = field(default_factory=dict)
    failure: cf.Future[Any] | None = None  # the first part that did not succeed

    def part_task(self, index: int) -> ExecutionTask:
        prepared, part = self.plan[index]
        return dataclasses.replace(self.task, prepared=prepared, part=part, params=None)

    def stop(self, executor: JobExecutor) -> None:
        """No more parts start; the running ones are killed."""
        self.pending.clear()
        for future in list(self.running.copy().values()):  # copy(): atomic, any thread
            executor.kill(future)


@dataclass
class _InFlight:
    future: cf.Future[Any]
    started: float
    deadline: float
    session_id: str | None
    abandoned_since: float | None = None
    instance_id: str = ""
    attempts: int = 0
    parse_seconds: float | None = None
    split: _SplitRun | None = None
    transpile: bool = False  # a transpile task, not a job
    running_seen: bool = False  # its task was seen running (the time limit counts from then)

    @property
    def workers(self) -> int:
        """Workers this job holds now."""
        return 1 if self.split is None else len(self.split.running)


@dataclass
class Dispatcher:
    """Moves jobs Queued → Running → final."""

    store: Store
    executor: JobExecutor
    config: ServerConfig
    watchers: JobWatchers
    prepared: dict[str, Any] = field(default_factory=dict)  # job id -> PreparedJob (route)
    #: Test seam: called (in the dispatcher thread) with the job id after a job is claimed and
    #: submitted to the executor but before it is registered as in flight — the hand-off window
    #: a concurrent cancel must not fall through.
    handoff_hook: Callable[[str], None] | None = None
    #: The server's backend catalog (tells noisy backends, whose PUBs may also split by shots).
    catalog: Any = None
    #: What runs a transpile task in a worker: a picklable module-level function taking the
    #: stored request (JSON object) and the catalog's spec of its backend (the app passes
    #: :func:`~..transpile.tasks.run_stored_transpile`); without one, tasks fail at once.
    run_transpile: Callable[[dict[str, Any], Any], dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._done: collections.deque[str] = collections.deque()
        self._inflight: dict[str, _InFlight] = {}
        self._handing_off: set[str] = set()  # being claimed/submitted, not yet in _inflight
        self._cancel_at_handoff: set[str] = set()  # cancelled during their hand-off
        self._last_served = ""  # instance id that got the last worker (round-robin)
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.owner = self.config.replica_id
        self._next_heartbeat = 0.0
        self._last_heartbeat = 0.0
        self._check_leases = False
        self._handoff_seq = 0
        self.transpile = TranspileStore(self.store)
        # PENDING tasks may exist (look each fill); else look once a second (other replicas')
        self._tasks_pending = True
        self._next_task_look = 0.0
        # Whether the store may hold startable Queued jobs this loop has not seen: set by every
        # wake (a submit, a cancel, a re-queue) and by every periodic tick (other replicas'
        # jobs), cleared when a look at the queue found it drained, so a job finishing on an
        # empty queue costs no query.
        self._maybe_queued = True
        self._wakes = 0  # wake() calls so far: one landing mid-iteration is never slept through

    # ------------------------------------------------------------------ control
    def start(self) -> None:
        """Re-queue what a crash left Running, then start the dispatcher thread.

        Only jobs no live replica holds: this replica's own (an earlier process with the same
        ``replica_id``), those of dead replicas on this host, and those whose lease expired.
        """
        gone = self._gone_owners()
        n = self.store.requeue_expired(gone)
        if n:
            logger.info("re-queued %d job(s) left running by a previous process", n)
        n = self.transpile.requeue_expired(gone)
        if n:
            logger.info("re-queued %d transpile task(s) left running by a previous process", n)
        self._thread = threading.Thread(target=self._loop, name="job-dispatcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop dispatching (running jobs stay Running in the store and resume on restart)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def wake(self) -> None:
        """A job was queued (or something else changed): look at the queue now."""
        with self._cond:
            self._maybe_queued = True
            self._wakes += 1
            self._cond.notify_all()

    def transpile_queued(self) -> None:
        """A transpile task was queued: look at the tasks' queue now."""
        self._tasks_pending = True
        self.wake()

    def _requeued(self) -> None:
        """This loop put a job back in the queue: its next look at the queue must read it."""
        with self._cond:
            self._maybe_queued = True

    def remember_prepared(self, job_id: str, prepared: Any, parse_seconds: float) -> None:
        """Keep the route's validated job so the worker need not parse it again."""
        if len(self.prepared) < 1000:
            if getattr(prepared, "decoded", None) is not None:  # workers are other processes:
                prepared.decoded = None  # they decode the payload again (see PreparedJob)
            self.prepared[job_id] = (prepared, parse_seconds)

    def forget_prepared(self, job_id: str) -> None:
        """Drop a validated job that was not stored after all (refused, or a repeat)."""
        self.prepared.pop(job_id, None)

    def cancel(self, job_id: str, reason: str = "cancelled by the user") -> bool:
        """Cancel a Queued or Running job; False when it is already final (or absent).

        Safe at any moment of the job's life, the hand-off to a worker included: whatever the
        store says last (Cancelled) is what the worker sees (killed, result dropped).
        """
        if self.store.transition(
            job_id, (protocol.QUEUED,), protocol.CANCELLED, log=reason, reason=reason
        ):
            self.prepared.pop(job_id, None)
        elif self.store.transition(
            job_id,
            (protocol.RUNNING,),
            protocol.CANCELLED,
            log=f"{reason} while running",
            reason=reason,
        ):
            self.abandon(job_id)
        else:
            return False
        self.watchers.notify(job_id)
        self.wake()
        return True

    def cancel_transpile(self, task_id: str, reason: str = "cancelled by the user") -> bool:
        """Cancel a PENDING or STARTED transpile task; False when it is already final.

        A running task's worker is killed at once (also mid hand-off, as for jobs).
        """
        message = reason.encode()
        if self.transpile.transition(task_id, (tstore.PENDING,), tstore.CANCELLED, result=message):
            pass
        elif self.transpile.transition(
            task_id, (tstore.STARTED,), tstore.CANCELLED, result=message
        ):
            self.abandon(task_id)
        else:
            return False
        self.watchers.notify(task_id)
        self.wake()
        return True

    def abandon(self, job_id: str) -> None:
        """The job was cancelled while running: stop its worker, drop its result.

        A job still being handed over is marked, and :meth:`_start` kills it as soon as it is
        registered (the cancel cannot be lost in the hand-off window).
        """
        with self._cond:
            entry = self._inflight.get(job_id)
            if entry is not None and entry.abandoned_since is None:
                entry.abandoned_since = time.monotonic()
            elif entry is None and job_id in self._handing_off:
                self._cancel_at_handoff.add(job_id)
            self.prepared.pop(job_id, None)
            self._cond.notify_all()
        if entry is not None:
            self._kill(entry)

    def _kill(self, entry: _InFlight) -> None:
        """Stop every task of a job (all its parts when it was split)."""
        if entry.split is None:
            self.executor.kill(entry.future)
        else:
            entry.split.stop(self.executor)

    def _busy(self) -> int:
        """Workers held by jobs in flight (a split job holds one per running part)."""
        return sum(entry.workers for entry in list(self._inflight.values()))

    def job_changed(self, job_id: str) -> None:
        """A job changed state somewhere (another replica): recheck our claims if it is ours.

        :data:`.transpile_store.TASK_PENDING`: a transpile task was queued somewhere; look.
        """
        if job_id == TASK_PENDING:
            self.transpile_queued()
        elif job_id in self._inflight:
            with self._cond:
                self._check_leases = True
                self._wakes += 1
                self._cond.notify_all()

    def _gone_owners(self) -> set[str]:
        """Replica ids whose Running jobs no live process holds: ours, and dead ones here."""
        gone = {self.owner}
        host = socket.gethostname()
        for owner in self.store.running_owners() | self.transpile.running_owners():
            name, _, pid = owner.rpartition("-")
            if name == host and pid.isdigit() and not _pid_alive(int(pid)):
                gone.add(owner)
        return gone

    def _heartbeat(self) -> None:
        """Renew our leases; stop the jobs we no longer hold; re-queue expired ones."""
        now = time.monotonic()
        forced = self._check_leases and now - self._last_heartbeat >= 0.2  # at most 5/s
        if now < self._next_heartbeat and not forced:
            return
        self._check_leases = False
        self._last_heartbeat = now
        self._next_heartbeat = now + max(0.2, min(self.config.lease_seconds / 3.0, 5.0))
        live = [j for j, e in self._inflight.items() if e.abandoned_since is None]
        tasks = [j for j in live if self._inflight[j].transpile]
        live = [j for j in live if j not in tasks]
        held = self.store.renew_leases(self.owner, live, self.config.lease_seconds)
        if tasks:
            held |= self.transpile.renew_leases(self.owner, tasks, self.config.lease_seconds)
        for job_id in live + tasks:
            if job_id not in held and job_id in self._inflight:
                logger.info("job %s is no longer held by this replica; stopping it", job_id)
                self.abandon(job_id)
                self.watchers.notify(job_id)
        tasks_back = self.transpile.requeue_expired()
        self._tasks_pending = self._tasks_pending or tasks_back > 0
        n = self.store.requeue_expired() + tasks_back
        if n:
            logger.warning("re-queued %d job(s)/task(s) whose replica's lease expired", n)
            self.wake()

    @property
    def in_flight(self) -> int:
        """Jobs and transpile tasks currently held by workers."""
        return len(self._inflight)

    # --------------------------------------------------------------------- loop
    def _loop(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                wakes = self._wakes
            try:
                self._handle_completions()
                self._enforce_limits()
                self._heartbeat()
                self._fill()
            except Exception:  # keep dispatching whatever happens
                logger.exception("dispatcher iteration failed")
                time.sleep(0.5)
            with self._cond:
                if self._stopping:
                    return
                if self._done or self._wakes != wakes:
                    continue  # woken during this iteration: its notify found nobody waiting
                if not self._cond.wait(timeout=self._next_timeout()):
                    self._maybe_queued = True  # a periodic tick: look (other replicas' jobs)

    def _next_timeout(self) -> float:
        timeout = 1.0
        now = time.monotonic()
        for entry in self._inflight.values():
            if entry.abandoned_since is None and not entry.running_seen:
                timeout = min(timeout, 0.1)  # look again soon: its clock starts when it runs
            elif entry.abandoned_since is None:
                timeout = min(timeout, max(0.01, entry.deadline - now))
        return timeout

    def _on_done_future(self, job_id: str, _future: cf.Future[Any]) -> None:
        self._on_done(job_id)

    def _on_done(self, job_id: str) -> None:
        with self._cond:
            self._done.append(job_id)
            self._cond.notify_all()

    def _session_expired(self, session_id: str) -> str | None:
        """Why a session no longer runs jobs (max_ttl passed), else ``None``."""
        row = self.store.get_session(session_id)
        if row is not None and time.time() > row.created + row.max_ttl:
            return f"session {session_id} reached its max_ttl ({row.max_ttl} s)"
        return None

    def _fill(self) -> None:
        """Start queued jobs on free workers; workers nobody queued for run split jobs' parts."""
        if not self._fill_queued():
            self._feed_parts()

    def _fill_queued(self) -> bool:
        """Start queued jobs on free workers, serving instances round-robin.

        Each round gives every instance with queued work (and room under
        ``max_running_per_instance``) one job, starting after the instance served last; so an
        instance with one job waits for at most one job of each other instance, however many
        those have queued. A job started while more workers are free than queued jobs can use
        gets the spare ones (it is split).

        Returns:
            Whether a queued job that could start still waits (then no split part may start).
        """
        again = True
        waiting = False
        while again:
            again = False
            free = self.executor.capacity - self._busy()
            if free <= 0:
                return True
            with self._cond:
                if not self._maybe_queued:
                    return False  # drained at the last look, and nothing queued since
                self._maybe_queued = False  # before the read: a wake during it sets it again
            heads, complete = self._queued_heads(free)
            if not heads:
                return False
            running: collections.Counter[str] = collections.Counter()
            for entry in list(self._inflight.values()):
                running[entry.instance_id] += entry.workers
            cap = self.config.max_running_per_instance or self.executor.capacity
            order = sorted(heads)
            after = [i for i in order if i > self._last_served]
            order = after + [i for i in order if i <= self._last_served]
            progress = True
            while free > 0 and progress:
                progress = False
                for instance_id in order:
                    queue = heads[instance_id]
                    if free <= 0 or not queue or running[instance_id] >= cap:
                        continue
                    job = queue.popleft()
                    progress = True
                    if job.session_id and self._cancel_expired(job):
                        again = True  # a slot we thought taken is still free: look again
                        continue
                    queued = sum(len(q) for i, q in heads.items() if running[i] < cap)
                    width = min(free - queued, cap - running[instance_id])
                    # the only job waiting: it may also take the workers that free up while it
                    # runs (its later parts wait for them, within the instance's cap), so the
                    # last job of a burst does not run whole on one worker while others idle
                    reach = width
                    if queued == 0 and complete:
                        reach = max(width, min(self.executor.capacity, cap))
                    self._start(job, width, reach)
                    self._last_served = instance_id
                    started = self._inflight.get(job.id)
                    if started is not None:
                        running[instance_id] += started.workers
                        free -= started.workers
            waiting = any(q and running[i] < cap for i, q in heads.items())
            if again or not complete or any(heads.values()):
                with self._cond:
                    self._maybe_queued = True  # more may wait than this look saw or started
        return waiting

    def _queued_heads(self, free: int) -> tuple[dict[str, collections.deque[QueuedJob]], bool]:
        """The first ``free`` queued jobs and transpile tasks of every instance, in turn order.

        Also whether that is all that is queued (one more per instance is read to know it).
        Within an instance: session jobs first, then jobs and tasks by submission time (their
        ids start with it), so a task neither jumps ahead of the jobs queued before it nor waits
        behind those queued after it.
        """
        merged: dict[str, list[QueuedJob]] = {}
        for job in self.store.queued_heads(free + 1, exclude=self._inflight):
            merged.setdefault(job.instance_id, []).append(job)
        tasks: list[QueuedJob] = []
        now = time.monotonic()
        if self._tasks_pending or now >= self._next_task_look:
            tasks = self.transpile.queued_heads(free + 1, exclude=self._inflight)
            self._tasks_pending, self._next_task_look = bool(tasks), now + 1.0
        for task in tasks:
            merged.setdefault(task.instance_id, []).append(task)
        heads: dict[str, collections.deque[QueuedJob]] = {}
        for instance_id, queue in merged.items():
            if tasks:  # stable: within one millisecond, the store's own order stays
                queue.sort(key=lambda job: (job.session_id is None, job.id[:9]))
            heads[instance_id] = collections.deque(queue[:free])
        return heads, all(len(queue) <= free for queue in merged.values())

    def _feed_parts(self) -> None:
        """Run waiting parts of split jobs on free workers, one job's part after another's."""
        cap = self.config.max_running_per_instance or self.executor.capacity
        free = self.executor.capacity - self._busy()
        while free > 0:
            progress = False
            held: collections.Counter[str] = collections.Counter()
            for entry in list(self._inflight.values()):
                held[entry.instance_id] += entry.workers
            for job_id, entry in list(self._inflight.items()):
                split = entry.split
                if free <= 0:
                    break
                if (
                    split is None
                    or not split.pending
                    or entry.abandoned_since is not None
                    or held[entry.instance_id] >= cap
                ):
                    continue
                if not self._submit_part(job_id, entry, split):
                    return
                held[entry.instance_id] += 1
                free -= 1
                progress = True
            if not progress:
                return

    def _submit_part(self, job_id: str, entry: _InFlight, split: _SplitRun) -> bool:
        """Hand the next waiting part of a split job to the executor; False if it refused."""
        try:
            index = split.pending.popleft()
        except IndexError:  # a cancel cleared the parts meanwhile
            return True
        try:
            future = self.executor.run_job(split.part_task(index))
        except Exception as exc:  # the pool could not take it: try again later
            logger.warning("could not submit part %d of job %s: %s", index, job_id, exc)
            split.pending.appendleft(index)
            return False
        split.running[index] = future
        future.add_done_callback(functools.partial(self._on_done_future, job_id))
        if entry.abandoned_since is not None:  # cancelled while this part was handed over
            self.executor.kill(future)
        return True

    def _split_plan(
        self, prepared: PreparedJob, width: int, *, min_seconds: float | None = None
    ) -> list | None:
        """The parts of a job for ``width`` workers, or ``None`` when it runs whole.

        ``min_seconds``: the least estimated time worth splitting (default: the split
        module's :data:`~..execution.split.SPLIT_MIN_SECONDS`).
        """
        from ..execution.split import SPLIT_MIN_SECONDS, may_split, plan_parts

        try:
            if not may_split(prepared):
                return None
            plan = plan_parts(
                prepared,
                width,
                noisy=self._noisy(prepared),
                min_seconds=SPLIT_MIN_SECONDS if min_seconds is None else min_seconds,
            )
        except Exception:  # never let planning stop a job: it runs whole
            logger.exception("could not split a %s job; running it whole", prepared.program_id)
            return None
        return plan if len(plan) > 1 else None

    def _noisy(self, prepared: PreparedJob) -> bool:
        if prepared.options.get("simulator", {}).get("noise_model") is not None:
            return True
        try:
            spec = self.catalog.get(prepared.backend_name) if self.catalog is not None else None
            return spec is not None and spec.noise_model is not None
        except Exception:
            return False

    def _cancel_expired(self, job: QueuedJob) -> bool:
        """Cancel a queued job whose session passed its max_ttl; True if it was."""
        why = self._session_expired(job.session_id or "")
        if why is None:
            return False
        if self.store.transition(
            job.id, (protocol.QUEUED,), protocol.CANCELLED, log=f"cancelled: {why}", reason=why
        ):
            self.prepared.pop(job.id, None)
            self.watchers.notify(job.id)
        return True

    def _start(self, job: QueuedJob, width: int = 1, reach: int | None = None) -> None:
        """Claim a queued job (Queued → Running) and hand it to the executor.

        ``width``: how many workers it may use now (more than one: it is split). ``reach``:
        how many it may use in all, as workers free up (more than ``width``: it is split if it
        is long enough, :data:`DEFERRED_SPLIT_MIN_SECONDS`, and its later parts wait).
        """
        job_id = job.id
        with self._cond:  # before the claim: a cancel right after it must find the mark
            self._handing_off.add(job_id)
        try:
            self._hand_off(job, width, reach)
        finally:
            with self._cond:
                self._handing_off.discard(job_id)
                self._cancel_at_handoff.discard(job_id)

    def _hand_off(self, job: QueuedJob, width: int = 1, reach: int | None = None) -> None:
        job_id = job.id
        if isinstance(job, QueuedTranspileTask):
            self._hand_off_transpile(job)
            return
        if not self.store.claim(job_id, self.owner, self.config.lease_seconds):
            return
        prepared, parse_seconds = self.prepared.pop(job_id, (None, None))
        self._handoff_seq += 1
        task = ExecutionTask(
            job_id=job_id,
            program_id=job.program_id,
            backend=job.backend,
            params=None if prepared is not None else self.store.job_params(job_id),
            prepared=prepared,
            prepare=None if prepared is not None else prepare_job,
            attempt=job.attempts,
            priority=-self._handoff_seq,  # the fair queue's order, should tasks wait there
        )
        limit = float(job.cost) if job.cost else self.config.default_max_execution_time
        now = time.monotonic()
        reach = max(width, reach or width)
        plan = None
        if prepared is not None and reach > width:  # for workers that are busy now, too
            plan = self._split_plan(prepared, reach, min_seconds=DEFERRED_SPLIT_MIN_SECONDS)
        if prepared is not None and plan is None and width > 1:  # for the free ones only
            plan = self._split_plan(prepared, width)
        split = None
        try:
            if plan is None:
                future = self.executor.run_job(task)
            else:
                split = _SplitRun(plan, task, collections.deque(range(len(plan))))
                for _ in range(min(width, len(plan))):
                    index = split.pending.popleft()
                    split.running[index] = self.executor.run_job(split.part_task(index))
                future = split.running[0]
        except Exception as exc:  # the pool could not take it: try again later
            logger.warning("could not submit job %s: %s", job_id, exc)
            if split is not None:
                split.stop(self.executor)
            self.store.transition(
                job_id,
                (protocol.RUNNING,),
                protocol.QUEUED,
                log="re-queued",
                owner=self.owner,
                running_at=None,
            )
            self._requeued()
            return
        if self.handoff_hook is not None:
            self.handoff_hook(job_id)
        entry = _InFlight(
            future,
            now,
            now + limit,
            job.session_id,
            attempts=job.attempts,
            parse_seconds=parse_seconds,
            instance_id=job.instance_id,
            split=split,
        )
        self._register(job_id, entry)
        for submitted in [future] if split is None else list(split.running.values()):
            submitted.add_done_callback(functools.partial(self._on_done_future, job_id))
        if job.session_id:
            self._touch_session(job.session_id, started=True)
        self.watchers.notify(job_id, final=False)

    def _register(self, job_id: str, entry: _InFlight) -> None:
        """Record a handed-over job or task as in flight; apply a cancel that came meanwhile."""
        with self._cond:
            self._inflight[job_id] = entry
            self._handing_off.discard(job_id)
            cancelled = job_id in self._cancel_at_handoff
            self._cancel_at_handoff.discard(job_id)
            if cancelled:
                entry.abandoned_since = time.monotonic()
        if cancelled:
            logger.info("job %s was cancelled while being handed over; stopping it", job_id)
            self._kill(entry)

    def _hand_off_transpile(self, task: QueuedTranspileTask) -> None:
        """Claim a PENDING transpile task (→ STARTED) and run it on one worker."""
        task_id = task.id
        if not self.transpile.claim(task_id, self.owner, self.config.lease_seconds):
            return
        if self.run_transpile is None:
            self.transpile.transition(
                task_id,
                (tstore.STARTED,),
                tstore.FAILURE,
                owner=self.owner,
                result=b"this server runs no transpile tasks",
            )
            self.watchers.notify(task_id)
            return
        data = self.transpile.request(task_id) or {}
        spec = None
        backend = data.get("backend")
        if backend and self.catalog is not None and backend in self.catalog:
            spec = self.catalog.get(backend)
        now = time.monotonic()
        try:
            future = self.executor.submit(self.run_transpile, data, spec)
        except Exception as exc:  # the pool could not take it: try again later
            logger.warning("could not submit transpile task %s: %s", task_id, exc)
            self.transpile.transition(task_id, (tstore.STARTED,), tstore.PENDING, owner=self.owner)
            self._tasks_pending = True
            self._requeued()  # and the next look at the queue reads it
            return
        if self.handoff_hook is not None:
            self.handoff_hook(task_id)
        entry = _InFlight(
            future,
            now,
            now + task.time_limit,
            None,
            attempts=task.attempts,
            instance_id=task.instance_id,
            transpile=True,
        )
        self._register(task_id, entry)
        future.add_done_callback(functools.partial(self._on_done_future, task_id))
        self.watchers.notify(task_id)

    def _enforce_limits(self) -> None:
        now = time.monotonic()
        for job_id, entry in list(self._inflight.items()):
            if entry.abandoned_since is None and not entry.running_seen:
                if not (entry.future.running() or entry.future.done()):
                    continue  # still waiting for a worker: its time has not started
                entry.running_seen = True  # the limit counts from now
                entry.deadline, entry.started = now + (entry.deadline - entry.started), now
            if entry.abandoned_since is None and now > entry.deadline and entry.transpile:
                limit = entry.deadline - entry.started
                message = self._transpile_over_time(limit)
                if self.transpile.transition(
                    job_id,
                    (tstore.STARTED,),
                    tstore.FAILURE,
                    owner=self.owner,
                    result=message.encode(),
                    seconds=limit,
                ):
                    self.watchers.notify(job_id)
                entry.abandoned_since = now
                self._kill(entry)
            elif entry.abandoned_since is None and now > entry.deadline:
                limit = entry.deadline - entry.started
                if self.store.transition(
                    job_id,
                    (protocol.RUNNING,),
                    protocol.CANCELLED,
                    log=f"cancelled: ran longer than the maximum execution time ({limit:g} s)",
                    reason=f"Job ran longer than the maximum execution time of {limit:g} s",
                    reason_code=REASON_TOO_LONG,
                    usage_seconds=limit,
                    owner=self.owner,
                ):
                    self.watchers.notify(job_id)
                entry.abandoned_since = now
                self._kill(entry)
            elif (
                entry.abandoned_since is not None
                and now - entry.abandoned_since > self.config.abandon_grace
            ):
                # the executor never reported the killed task: stop counting its slot
                logger.warning("job %s: no word from its killed worker; forgetting it", job_id)
                del self._inflight[job_id]

    def _handle_completions(self) -> None:
        while True:
            with self._cond:
                if not self._done:
                    return
                job_id = self._done.popleft()
            entry = self._inflight.get(job_id)
            if entry is None:
                continue
            if entry.split is not None and not self._collect_parts(entry):
                continue  # parts still running or waiting
            self._inflight.pop(job_id, None)
            try:
                self._record(job_id, entry)
            except Exception:
                logger.exception("could not record the outcome of job %s", job_id)
            self.watchers.notify(job_id)
            if entry.session_id:
                self._touch_session(entry.session_id, started=False)

    def _collect_parts(self, entry: _InFlight) -> bool:
        """Take in a split job's finished parts; True when the job as a whole is done."""
        split = entry.split
        assert split is not None
        for index, future in list(split.running.items()):
            if not future.done():
                continue
            del split.running[index]
            if entry.abandoned_since is not None or split.failure is not None:
                continue
            exc = None if future.cancelled() else future.exception()
            out = None if future.cancelled() or exc is not None else future.result()
            if out is None or not out.get("ok"):
                split.failure = future  # the job fails (or is re-queued) as this part did
                split.stop(self.executor)
            else:
                split.outcomes[index] = out
                self._report_progress(split)
        if split.running:
            return False
        return entry.abandoned_since is not None or split.failure is not None or not split.pending

    def _report_progress(self, split: _SplitRun) -> None:
        """PUBs of a split job whose every part has finished, for its ``progress`` events."""
        job_id = split.task.job_id
        unfinished = {
            j for index, (_, part) in enumerate(split.plan) if index not in split.outcomes
            for j in part.pub_indices
        }  # fmt: skip
        total = len({j for _, part in split.plan for j in part.pub_indices})
        done = total - len(unfinished)
        if done < total:  # all done: the final event says so
            try:
                self.watchers.events.pubs_done(job_id, done)
            except Exception:  # events must never stop dispatching
                logger.exception("could not record the progress of job %s", job_id)
            self.watchers.notify(job_id, final=False)

    def _record(self, job_id: str, entry: _InFlight) -> None:
        if entry.abandoned_since is not None:
            logger.info("job %s finished after being cancelled; result discarded", job_id)
            return
        if entry.transpile:
            self._record_transpile(job_id, entry)
            return
        if entry.split is not None:
            if entry.split.failure is not None:  # recorded as that part's outcome
                self._record(
                    job_id, dataclasses.replace(entry, future=entry.split.failure, split=None)
                )
            else:
                self._complete(job_id, entry, self._merge(entry.split))
            return
        fut = entry.future
        exc = None if fut.cancelled() else fut.exception()
        if fut.cancelled() or exc is not None:
            attempts = entry.attempts + 1
            died = isinstance(exc, BrokenProcessPool) or fut.cancelled()
            if died and _killed_by_the_system(exc):
                # SIGKILL we did not send: the kernel's OOM killer. Retrying would kill again.
                limit = format_bytes(self.config.job_memory_limit)
                reason = (
                    "out of memory: the worker running the job was killed by the system "
                    f"(SIGKILL), most likely for exhausting the host's memory; this server "
                    f"allows {limit} per job (--max-job-memory)"
                )
                self._fail(job_id, reason, REASON_OUT_OF_MEMORY, reason)
                return
            if died and attempts < MAX_ATTEMPTS:
                self.store.transition(
                    job_id,
                    (protocol.RUNNING,),
                    protocol.QUEUED,
                    log=f"worker process died (attempt {attempts}); re-queued",
                    owner=self.owner,
                    running_at=None,
                    attempts=attempts,
                )
                self._requeued()
                return
            reason = (
                f"worker process died while running the job ({attempts} attempts)"
                if died
                else f"{type(exc).__name__}: {exc}"
            )
            self._fail(job_id, reason, REASON_WORKER_CRASH, reason)
            return
        self._complete(job_id, entry, fut.result())

    def _transpile_over_time(self, limit: float) -> str:
        """Why a transpile task that ran past its time limit failed."""
        return (
            f"the transpile task ran longer than its time limit of {limit:g} s and was "
            "stopped (max_execution_time; this server allows at most "
            f"{self.config.max_transpile_time:g} s, --max-transpile-time)"
        )

    def _record_transpile(self, task_id: str, entry: _InFlight) -> None:
        """A transpile task's outcome: SUCCESS, FAILURE, or PENDING again if its worker died."""
        fut = entry.future
        exc = None if fut.cancelled() else fut.exception()
        if fut.cancelled() or exc is not None:
            attempts = entry.attempts + 1
            died = isinstance(exc, BrokenProcessPool) or fut.cancelled()
            if died and _killed_by_the_system(exc):
                message = (
                    "out of memory: the worker running the transpile task was killed by the "
                    "system (SIGKILL), most likely for exhausting the host's memory"
                )
            elif died and attempts < MAX_ATTEMPTS:
                self.transpile.transition(
                    task_id, (tstore.STARTED,), tstore.PENDING, owner=self.owner, attempts=attempts
                )
                self._tasks_pending = True
                self._requeued()  # and the next look at the queue reads it
                return
            elif died:
                message = f"the worker process died while transpiling ({attempts} attempts)"
            else:
                message = f"the transpile worker failed: {type(exc).__name__}: {exc}"
            self.transpile.transition(
                task_id,
                (tstore.STARTED,),
                tstore.FAILURE,
                owner=self.owner,
                result=message.encode(),
            )
            return
        out = fut.result()
        limit = entry.deadline - entry.started
        if out.get("ok") and float(out.get("seconds") or 0.0) > limit:
            # it finished past its limit, between two of the loop's looks: the limit still holds
            # (the same task must not succeed or fail by how the ticks fall)
            self.transpile.transition(
                task_id,
                (tstore.STARTED,),
                tstore.FAILURE,
                owner=self.owner,
                result=self._transpile_over_time(limit).encode(),
                seconds=limit,
            )
        elif out.get("ok"):
            self.transpile.transition(
                task_id,
                (tstore.STARTED,),
                tstore.SUCCESS,
                owner=self.owner,
                result=orjson.dumps(out.get("result") or []),
                seconds=out.get("seconds"),
            )
        else:
            message = str(out.get("message") or "the transpile task failed")
            self.transpile.transition(
                task_id,
                (tstore.STARTED,),
                tstore.FAILURE,
                owner=self.owner,
                result=message.encode(),
            )

    def _merge(self, split: _SplitRun) -> dict[str, Any]:
        """A split job's parts merged into one worker-style outcome."""
        from ..execution.split import merge_outcomes

        outcomes = [split.outcomes[index] for index in range(len(split.plan))]
        qiskit = bool(split.plan[0][0].support_qiskit)
        try:
            merged = merge_outcomes(outcomes, split.plan, qiskit=qiskit)
        except Exception as exc:  # pragma: no cover - a bug, reported as the job's failure
            logger.exception("could not merge the parts of a split job")
            return {"ok": False, "reason": f"merging the job's parts failed: {exc!r}"}
        metrics = dict(merged.metrics)
        metrics["split"] = {
            "parts": len(outcomes),
            "pub_indices": [part.pub_indices for _, part in split.plan],
            "worker_pids": [o.get("pid") for o in outcomes],
            "part_windows": [[o.get("started_at"), o.get("finished_at")] for o in outcomes],
        }
        return {
            "ok": True,
            "result_body": merged.body,
            "metrics": metrics,
            "quantum_seconds": merged.quantum_seconds,
            "wall_seconds": sum(float(o.get("wall_seconds") or 0.0) for o in outcomes),
        }

    def _complete(self, job_id: str, entry: _InFlight, out: dict[str, Any]) -> None:
        """Record a worker's (or merged) outcome: Completed with its result, or Failed."""
        if not out.get("ok"):
            code = REASON_INPUT if out.get("input_error") else REASON_EXECUTION
            self._fail(job_id, out["reason"], code, out.get("traceback") or out["reason"])
            return
        metrics = dict(out.get("metrics") or {})
        metrics["worker_wall_seconds"] = out.get("wall_seconds")
        if entry.parse_seconds is not None:
            stages = dict(metrics.get("stage_seconds") or {})
            stages["parse"] = stages.get("parse") or entry.parse_seconds
            metrics["stage_seconds"] = stages
        values = self.store.save_result(job_id, out["result_body"])
        usage = float(out.get("quantum_seconds") or 0.0)
        recorded = self.store.transition(
            job_id,
            (protocol.RUNNING,),
            protocol.COMPLETED,
            log=f"completed (simulation {usage:.3f} s, worker {out.get('wall_seconds', 0):.3f} s)",
            metrics=orjson.dumps(metrics, option=orjson.OPT_SERIALIZE_NUMPY).decode(),
            quantum_seconds=usage,
            usage_seconds=usage,
            owner=self.owner,
            **values,
        )
        if recorded and values.get("result") is not None:
            self.watchers.fresh.put(job_id, out["result_body"])
        if not recorded and values.get("result_file"):  # our claim was lost: drop our copy
            try:
                os.unlink(values["result_file"])
            except OSError:
                pass

    def _fail(self, job_id: str, reason: str, code: int, detail: str) -> None:
        body = f"Job {job_id} failed: {reason}\n{detail if detail != reason else ''}".rstrip()
        self.store.transition(
            job_id,
            (protocol.RUNNING,),
            protocol.FAILED,
            log=f"failed: {reason}",
            reason=reason[:4000],
            reason_code=code,
            result=body.encode(),
            result_file=None,
            owner=self.owner,
        )

    def _touch_session(self, session_id: str, *, started: bool) -> None:
        now = time.time()
        try:
            row = self.store.get_session(session_id)
            if row is None:
                return
            if started:
                values: dict[str, Any] = {"last_job_started": now}
                if row.activated_at is None:
                    values["activated_at"] = now
            else:
                values = {"last_job_completed": now}
            self.store.update_session(session_id, **values)
        except Exception:  # session bookkeeping must never stop dispatching
            logger.exception("could not update session %s", session_id)


def _killed_by_the_system(exc: BaseException | None) -> bool:
    """Whether a worker died of a SIGKILL that was not ours (the OOM killer sends SIGKILL)."""
    if not isinstance(exc, WorkerDied) or isinstance(exc, TaskKilled):
        return False
    return "exit code -9)" in str(exc)


def _pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def is_final(state: str) -> bool:
    """Whether a job state is final."""
    return state in FINAL_STATES
