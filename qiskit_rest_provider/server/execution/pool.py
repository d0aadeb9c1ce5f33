"""The local worker-process pool, one implementation of :class:`~.base.JobExecutor`.

The dispatcher only needs the interface (``capacity``, ``run_job``, ``kill``, ``shutdown``); a
Dask-backed executor can replace the local pool without touching the dispatcher.
:class:`LocalProcessExecutor` is also a :class:`concurrent.futures.Executor` (``app.state.pool``)
so other routers can run CPU work (any picklable module-level function) in the same workers.

Why not ``concurrent.futures.ProcessPoolExecutor``: one dead worker breaks that pool for good
(every running task fails), and a running task cannot be stopped. Here each worker is a process
with its own pipe: :meth:`LocalProcessExecutor.kill` stops exactly the worker running a cancelled
or over-time job, a crashed worker fails only its own task, and either is replaced at once.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import logging
import multiprocessing
import os
import pickle
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from .base import ExecutionTask, JobExecutor, TaskKilled, WorkerDied
from .handoff import dumps_call
from .workers import init_worker, run_task

__all__ = ["LocalProcessExecutor", "TaskKilled", "WorkerDied"]

logger = logging.getLogger(__name__)


@dataclass
class _Task:
    future: cf.Future[Any]
    call: bytes  # the pickle of (fn, args, kwargs): :func:`.handoff.dumps_call`
    killed: bool = False


@dataclass
class _Slot:
    process: Any
    conn: Connection
    task: _Task | None = None
    started: bool = field(default=False)


def _worker_main(conn: Connection, backends_dir: str | None) -> None:
    """Body of a worker process: initialise once, then run tasks until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server, which stops us
    init_worker(backends_dir)
    conn.send(("ready", None))
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):  # the server went away
            return
        try:
            message = pickle.loads(data)
        except Exception as exc:  # noqa: BLE001 - e.g. a circuit's QPY this Qiskit cannot read
            conn.send(("error", RuntimeError(f"the task could not be read by the worker: {exc!r}")))
            continue
        if message is None:
            return
        fn, args, kwargs = message
        try:
            reply: tuple[str, Any] = ("ok", fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the caller
            reply = ("error", exc)
        try:
            conn.send(reply)
        except Exception as exc:  # unpicklable result or exception
            try:
                conn.send(("error", RuntimeError(f"task outcome could not be sent back: {exc!r}")))
            except Exception:
                return


class LocalProcessExecutor(JobExecutor):
    """``workers`` long-lived processes (forkserver, else spawn), one task at a time each."""

    def __init__(self, workers: int, backends_dir: str | None = None) -> None:
        self.capacity = workers
        self._backends_dir = backends_dir
        methods = multiprocessing.get_all_start_methods()
        self._ctx = multiprocessing.get_context(
            "forkserver" if "forkserver" in methods else "spawn"
        )
        self._lock = threading.Lock()
        self._pending: collections.deque[_Task] = collections.deque()
        self._closed = False
        self._startup_failures = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._slots = [self._start_slot() for _ in range(workers)]
        self._thread = threading.Thread(target=self._manage, name="worker-pool", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ public API
    def warm_up(self, *, wait: bool = False, timeout: float = 300.0) -> None:
        """Workers start (and import everything) at construction; nothing more to do."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        """Run ``fn(*args, **kwargs)`` in a worker; FIFO when all workers are busy.

        The call is pickled here, in the caller's thread and outside the pool's lock (circuits
        as QPY: :mod:`.handoff`); what cannot be pickled fails the returned future.
        """
        future: cf.Future[Any] = cf.Future()
        try:
            call = dumps_call(fn, args, kwargs)
        except Exception as exc:  # noqa: BLE001 - e.g. unpicklable arguments: nothing is sent
            future.set_exception(exc)
            return future
        with self._lock:
            if self._closed:
                raise RuntimeError("the worker pool is shut down")
            self._pending.append(_Task(future, call))
            # an idle worker takes it now, from this thread: no hop through the manager thread
            # (which only watches the pipes; it assigns whatever waits when a worker frees up)
            self._assign()
        return future

    def run_job(self, task: ExecutionTask) -> cf.Future[dict[str, Any]]:
        """Run one job in a worker (:func:`~.workers.run_task`)."""
        return self.submit(run_task, task)

    def kill(self, future: cf.Future[Any]) -> bool:
        """Stop the task of ``future``: cancel it if pending, kill its worker if running."""
        with self._lock:
            for slot in self._slots:
                if slot.task is not None and slot.task.future is future:
                    slot.task.killed = True
                    try:
                        slot.process.kill()
                    except Exception:  # pragma: no cover - already gone
                        pass
                    return True
        return future.cancel()

    @property
    def busy(self) -> int:
        """Workers running a task now."""
        with self._lock:
            return sum(slot.task is not None for slot in self._slots)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the pool: pending tasks are cancelled, running ones killed.

        Jobs killed this way stay Running in the store and are re-queued by the next start.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            pending = list(self._pending)
            self._pending.clear()
            slots = list(self._slots)
        for task in pending:
            task.future.cancel()
        for slot in slots:
            try:
                if slot.task is None:
                    slot.conn.send(None)
                else:
                    slot.process.kill()
            except Exception:
                slot.process.kill()
        self._wake()
        for slot in slots:
            slot.process.join(timeout=5)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join(timeout=5)
        self._thread.join(timeout=10)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    # ---------------------------------------------------------------- internals
    def _start_slot(self) -> _Slot:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(  # type: ignore[attr-defined]
            target=_worker_main, args=(child, self._backends_dir), name="qrp-worker", daemon=True
        )
        process.start()
        child.close()
        return _Slot(process, parent)

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):  # pipe full (already awake) or closed
            pass

    def _assign(self) -> None:
        """Hand pending tasks to idle, ready workers (called with the lock held)."""
        for slot in self._slots:
            while slot.started and slot.task is None and self._pending:
                task = self._pending.popleft()
                if not task.future.set_running_or_notify_cancel():
                    continue  # cancelled while pending
                try:
                    slot.conn.send_bytes(task.call)  # the worker's recv() unpickles it
                except (BrokenPipeError, EOFError, OSError):
                    pass  # the worker is dead: its sentinel will fail the task
                slot.task = task

    def _manage(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                self._assign()
                slots = list(self._slots)
            watch: list[Any] = [self._wake_r]
            for slot in slots:
                watch += [slot.conn, slot.process.sentinel]
            try:
                ready = set(wait(watch, timeout=1.0))
            except OSError:  # a connection closed under us: look again
                ready = set()
            if self._wake_r in ready:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except (BlockingIOError, OSError):
                    pass
            done: list[tuple[cf.Future[Any], str, Any]] = []
            with self._lock:
                if self._closed:
                    return
                for index, slot in enumerate(self._slots):
                    dead = slot.process.sentinel in ready
                    if slot.conn in ready:
                        try:
                            kind, value = slot.conn.recv()
                        except (EOFError, OSError):
                            dead = True
                        except Exception as exc:  # an outcome that cannot be unpickled here
                            kind, value = "error", exc
                            if slot.task is not None:
                                done.append((slot.task.future, kind, value))
                                slot.task = None
                        else:
                            if kind == "ready":
                                slot.started = True
                            elif slot.task is not None:
                                done.append((slot.task.future, kind, value))
                                slot.task = None
                    if dead or not slot.process.is_alive():
                        if not slot.started:
                            # a worker that cannot even start: fail what waits instead of
                            # looping forever, and slow down the restarts
                            self._startup_failures += 1
                            logger.error(
                                "worker process failed to start (exit code %s)",
                                slot.process.exitcode,
                            )
                            if self._startup_failures >= 3:
                                while self._pending:
                                    waiting = self._pending.popleft()
                                    if waiting.future.set_running_or_notify_cancel():
                                        done.append(
                                            (
                                                waiting.future,
                                                "error",
                                                WorkerDied("worker processes cannot start"),
                                            )
                                        )
                                time.sleep(1.0)
                        else:
                            self._startup_failures = 0
                        task = slot.task
                        slot.process.join(timeout=1)  # reap it: the exit code says who killed it
                        if task is not None:
                            code = slot.process.exitcode
                            error: BaseException = (
                                TaskKilled("the task was stopped")
                                if task.killed
                                else WorkerDied(f"the worker process died (exit code {code})")
                            )
                            done.append((task.future, "error", error))
                        if task is None or not task.killed:
                            logger.warning(
                                "worker process %s exited (code %s); starting a new one",
                                slot.process.pid,
                                slot.process.exitcode,
                            )
                        slot.process.join(timeout=1)
                        slot.conn.close()
                        self._slots[index] = self._start_slot()
            for future, kind, value in done:
                if kind == "ok":
                    future.set_result(value)
                else:
                    future.set_exception(value)
