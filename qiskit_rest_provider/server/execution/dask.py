"""The Dask executor: jobs run on a Dask distributed cluster (``serve --executor dask://H:P``).

The database and the dispatcher stay the single source of truth; Dask only runs work. Each job
becomes one task, :func:`~.workers.run_task` on its :class:`~.base.ExecutionTask`, exactly as in
the local pool, submitted with

* the key ``job-<id>-<attempt>-<6 hex>``, ``job-<id>-<attempt>-p<part>-<6 hex>`` for a part of
  a split job (the suffix keeps two submissions of one attempt — another replica taking over
  after a lease expired — from merging into one Dask task);
* the fair queue's priority (:attr:`~.base.ExecutionTask.priority`), should tasks wait on the
  scheduler;
* ``resources={"GPU": 1}`` for statevector-class jobs when some worker advertises a ``GPU``
  resource *and* has Aer's GPU build (asked once per worker); such a task runs with Aer's
  ``device="GPU"`` (:func:`.dask_preload.run_task_on_gpu`). Otherwise no resources at all.

Workers are plain ``dask worker`` processes with ``--nthreads 1`` and the preload
:mod:`.dask_preload` (``qiskit-rest-provider worker SCHEDULER`` runs exactly that).
:attr:`DaskExecutor.capacity` is the cluster's total worker threads, refreshed every second as
workers come and go.

Failure rules, the same as the local pool's:

* A worker lost mid-job fails that job's future with :class:`~.base.WorkerDied`, and the
  dispatcher re-queues it by the local-crash rule (up to three attempts). For that the scheduler
  must not re-run the task itself: on connecting, the executor sets the scheduler's
  ``allowed_failures`` to 0 (the ``distributed.scheduler.allowed-failures`` setting), so a dead
  worker turns the task into a ``KilledWorker`` error at once.
* Dask cannot stop a running task, so :meth:`DaskExecutor.kill` restarts the one worker running
  it (through its nanny; the worker comes back warmed by the preload) and fails the future with
  :class:`~.base.TaskKilled`. A task still waiting is simply cancelled.
* Long tasks: Qiskit Aer holds the GIL while it simulates, so a worker inside a long job sends
  the scheduler no heartbeats (and answers no ``Client.run``). The scheduler drops a silent
  worker after ``distributed.scheduler.worker-ttl`` (default 5 minutes), which would fail every
  job longer than that; so on connecting the executor raises the scheduler's ``worker_ttl`` above
  the server's ``--max-execution-time`` (plus a minute). A worker process that dies is still
  noticed at once (its connection closes); only a hung host waits out the TTL. Do not start
  workers with ``--lifetime`` (it would retire a worker in the middle of a job).

``distributed`` is an optional dependency: ``pip install "qiskit-rest-provider[dask]"``.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .base import ExecutionTask, JobExecutor, TaskKilled, WorkerDied
from .dask_preload import aer_has_gpu, run_task_on_gpu, shorten_batching
from .workers import run_task

__all__ = ["DaskExecutor", "import_distributed", "parse_dask_address"]

logger = logging.getLogger(__name__)

#: Programs that may run on a GPU worker (Aer's ``device="GPU"``).
GPU_PROGRAMS = ("sampler", "estimator")
#: Simulation methods with a dense state in memory: what a GPU speeds up.
DENSE_METHODS = ("statevector", "density_matrix")
SPARSE_METHODS = ("stabilizer", "matrix_product_state")


def import_distributed() -> Any:
    """``distributed``, or an ``ImportError`` that says how to install it."""
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the Dask executor needs the 'distributed' package: "
            'pip install "qiskit-rest-provider[dask]"'
        ) from exc
    return distributed


def parse_dask_address(executor: str) -> str:
    """``dask://HOST:PORT`` → ``tcp://HOST:PORT`` (what ``distributed.Client`` takes).

    Example:
        >>> parse_dask_address("dask://10.0.0.5:8786")
        'tcp://10.0.0.5:8786'
    """
    if not executor.startswith("dask://"):
        raise ValueError(f"executor must look like dask://HOST:PORT, got {executor!r}")
    rest = executor[len("dask://") :].rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"executor must look like dask://HOST:PORT, got {executor!r}")
    return f"tcp://{rest}"


def _set_allowed_failures(dask_scheduler: Any = None, value: int = 0) -> int:
    """Run on the scheduler: a task fails at its first lost worker (returns the old value)."""
    old = int(dask_scheduler.allowed_failures)
    dask_scheduler.allowed_failures = value
    return old


@dataclass
class _Entry:
    future: cf.Future[Any]
    dask_future: Any
    key: str
    killed: bool = False


class DaskExecutor(JobExecutor):
    """A :class:`~.base.JobExecutor` on a Dask distributed scheduler.

    Args:
        address: the scheduler, ``tcp://HOST:PORT`` or ``dask://HOST:PORT``.
        connect_timeout: seconds to wait for the scheduler at start.
        refresh_seconds: how often the worker list (capacity, GPU workers) is re-read.
        longest_task: the longest a task may run (seconds, the server's max execution time):
            the scheduler's ``worker_ttl`` is raised above it, since a worker inside an Aer run
            sends no heartbeats (Aer holds the GIL) and would otherwise be dropped mid-job.

    Example (needs a running scheduler, so not run here)::

        executor = DaskExecutor("dask://127.0.0.1:8786")
        future = executor.run_job(task)      # an ExecutionTask from the dispatcher
        outcome = future.result()            # run_task's plain dict
    """

    def __init__(
        self,
        address: str,
        *,
        connect_timeout: float = 30.0,
        refresh_seconds: float = 1.0,
        longest_task: float | None = None,
    ) -> None:
        distributed = import_distributed()
        if address.startswith("dask://"):
            address = parse_dask_address(address)
        self.address = address
        self._distributed = distributed
        self._client = distributed.Client(
            address,
            timeout=connect_timeout,
            set_as_default=False,
            name="qiskit-rest-provider",
            direct_to_workers=True,  # results come straight from the worker: one hop less
        )
        shorten_batching(self._client)
        self._lock = threading.Lock()
        self._entries: dict[int, _Entry] = {}  # id(our future) -> entry
        self._closed = False
        self.capacity = 0
        self._gpu_workers: set[str] = set()
        self._aer_gpu: dict[str, bool] = {}  # worker address -> its Aer has a GPU device
        self._refresh_seconds = refresh_seconds
        self._stop = threading.Event()
        try:
            old = self._client.run_on_scheduler(_set_allowed_failures, value=0)
            if old:
                logger.info(
                    "Dask scheduler allowed_failures %s -> 0: a lost worker fails its job at "
                    "once and the dispatcher re-queues it",
                    old,
                )
        except Exception as exc:  # e.g. a scheduler that refuses to run code
            logger.warning(
                "could not set the Dask scheduler's allowed_failures to 0 (%s): start it with "
                "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=0, else a lost worker's job is "
                "re-run by Dask itself",
                exc,
            )
        if longest_task:
            try:
                old_ttl = self._client.run_on_scheduler(
                    _set_worker_ttl, seconds=float(longest_task) + 60.0
                )
                if old_ttl is not None and old_ttl < float(longest_task) + 60.0:
                    logger.info(
                        "Dask scheduler worker_ttl %gs -> %gs (above the longest job)",
                        old_ttl,
                        float(longest_task) + 60.0,
                    )
            except Exception as exc:
                logger.warning("could not raise the Dask scheduler's worker_ttl: %s", exc)
        self._refresh()
        self._thread = threading.Thread(target=self._watch, name="dask-workers", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ public API
    def warm_up(self, *, wait: bool = False, timeout: float = 300.0) -> None:
        """Workers warm themselves (the preload); with ``wait``, wait for at least one."""
        if wait:
            self._client.wait_for_workers(1, timeout=timeout)
            self._refresh()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        """Run any picklable ``fn(*args, **kwargs)`` on the cluster (e.g. remote transpiling)."""
        return self._submit(fn, args, kwargs, key=None, priority=0, resources=None)

    def run_job(self, task: ExecutionTask) -> cf.Future[dict[str, Any]]:
        """Submit one job as one Dask task (see the module docstring for key and resources)."""
        part = "" if task.part is None else f"-p{task.part.index}"  # a split job's part
        key = f"job-{task.job_id}-{task.attempt}{part}-{secrets.token_hex(3)}"
        gpu = self._wants_gpu(task)
        return self._submit(
            run_task_on_gpu if gpu else run_task,
            (task,),
            {},
            key=key,
            priority=task.priority,
            resources={"GPU": 1} if gpu else None,
        )

    def kill(self, future: cf.Future[Any]) -> bool:
        """Stop the task of ``future``: cancel it if waiting, restart its worker if running."""
        with self._lock:
            entry = self._entries.get(id(future))
            if entry is None or entry.killed:
                return future.cancel()
            entry.killed = True
        worker = self._worker_running(entry.key)
        entry.dask_future.cancel()
        if worker is not None:
            logger.info("restarting Dask worker %s to stop task %s", worker, entry.key)
            threading.Thread(
                target=self._restart_worker, args=(worker,), name="dask-restart", daemon=True
            ).start()
        self._finish(entry, error=TaskKilled("the task was stopped"))
        return True

    @property
    def busy(self) -> int:
        """Tasks of ours submitted and not finished."""
        with self._lock:
            return len(self._entries)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Cancel our tasks and disconnect (the cluster keeps running)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            entries = list(self._entries.values())
        self._stop.set()
        for entry in entries:
            try:
                entry.dask_future.cancel()
            except Exception:
                pass
            self._finish(entry, cancel=True)
        try:
            self._client.close(timeout=10)
        except Exception:  # pragma: no cover - the scheduler is already gone
            logger.debug("closing the Dask client failed", exc_info=True)
        self._thread.join(timeout=5)

    # ---------------------------------------------------------------- internals
    def _submit(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        key: str | None,
        priority: int,
        resources: dict[str, int] | None,
    ) -> cf.Future[Any]:
        future: cf.Future[Any] = cf.Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the Dask executor is shut down")
        options: dict[str, Any] = {"pure": False, "priority": priority, "retries": 0}
        if key is not None:
            options["key"] = key
        if resources:
            options["resources"] = resources
        dask_future = self._client.submit(fn, *args, **options, **kwargs)
        future.set_running_or_notify_cancel()
        entry = _Entry(future, dask_future, dask_future.key)
        with self._lock:
            self._entries[id(future)] = entry
        dask_future.add_done_callback(lambda _f, e=entry: self._on_dask_done(e))
        return future

    def _on_dask_done(self, entry: _Entry) -> None:
        """The Dask task ended (runs in the client's thread)."""
        if entry.killed or entry.future.done():
            self._forget(entry)
            return
        dask_future = entry.dask_future
        status = dask_future.status
        if status == "finished":
            try:
                self._finish(entry, result=dask_future.result(timeout=30))
            except Exception as exc:  # the result could not be fetched (worker gone)
                self._finish(entry, error=WorkerDied(f"the Dask task's result was lost: {exc}"))
            return
        if status == "cancelled":
            self._finish(
                entry,
                error=WorkerDied("the Dask task was cancelled by the cluster (scheduler lost?)"),
            )
            return
        try:
            failure = dask_future.exception(timeout=30)
        except Exception as err:  # pragma: no cover - could not even read the error
            failure = err
        if isinstance(failure, self._distributed.KilledWorker):
            error: BaseException = WorkerDied(f"the Dask worker running the task died ({failure})")
        elif isinstance(failure, BaseException):
            error = failure
        else:  # pragma: no cover - Dask always hands back an exception here
            error = RuntimeError(str(failure))
        self._finish(entry, error=error)

    def _finish(
        self,
        entry: _Entry,
        *,
        result: Any = None,
        error: BaseException | None = None,
        cancel: bool = False,
    ) -> None:
        self._forget(entry)
        future = entry.future
        if future.done():
            return
        try:
            if cancel:
                future.set_exception(TaskKilled("the executor shut down"))
            elif error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
        except cf.InvalidStateError:  # pragma: no cover - raced with another outcome
            pass

    def _forget(self, entry: _Entry) -> None:
        with self._lock:
            self._entries.pop(id(entry.future), None)

    def _worker_running(self, key: str) -> str | None:
        try:
            for worker, keys in self._client.processing().items():
                if key in keys:
                    return str(worker)
        except Exception:
            logger.debug("could not ask the scheduler where %s runs", key, exc_info=True)
        return None

    def _restart_worker(self, worker: str) -> None:
        """Kill the worker process now; its nanny starts a fresh one (warmed by the preload).

        Not ``Client.restart_workers`` first: it asks the worker to close gracefully and waits,
        and a worker inside an Aer run cannot answer (Aer holds the GIL while it simulates).
        """
        try:
            self._client.run(_kill_worker_process, workers=[worker], nanny=True)
            return
        except Exception as exc:
            logger.warning("could not kill Dask worker %s through its nanny: %s", worker, exc)
        try:
            self._client.restart_workers([worker], timeout=10, raise_for_error=True)
        except Exception as exc:
            logger.error(
                "could not restart Dask worker %s (%s); retiring it instead (is it running "
                "without a nanny?)",
                worker,
                exc,
            )
            try:
                self._client.retire_workers([worker], close_workers=True)
            except Exception:
                logger.exception("could not retire Dask worker %s", worker)

    def _wants_gpu(self, task: ExecutionTask) -> bool:
        """Statevector-class work goes to GPU workers, where there are any with Aer on GPU.

        Statevector-class: every PUB simulated with a dense state (``statevector`` or
        ``density_matrix``), as the method estimate of :mod:`.cost` says. A job known only by
        its stored params (after a restart) is not parsed here and runs on any worker.
        """
        if not self._gpu_workers or task.program_id not in GPU_PROGRAMS:
            return False
        prepared = task.prepared
        if prepared is None:
            return False
        try:
            from .cost import estimate_job

            forced = (prepared.options.get("simulator") or {}).get("method")
            estimate = estimate_job(
                task.program_id,
                prepared.pubs,
                noisy=False,
                method=forced if forced in DENSE_METHODS + SPARSE_METHODS else None,
            )
            return all(pub.method in DENSE_METHODS for pub in estimate.pubs)
        except Exception:  # an estimate we cannot make: no GPU routing, never a failure
            logger.debug("no method estimate for job %s", task.job_id, exc_info=True)
            return False

    def _refresh(self) -> None:
        info = self._client.scheduler_info(n_workers=-1)
        workers = info.get("workers", {})
        self.capacity = sum(int(w.get("nthreads", 1)) for w in workers.values())
        advertised = {
            addr
            for addr, w in workers.items()
            if float((w.get("resources") or {}).get("GPU", 0)) > 0
        }
        unknown = sorted(advertised - set(self._aer_gpu))
        if unknown:  # asked once per worker: does its Aer have the GPU build?
            try:
                found = self._client.run(_worker_has_aer_gpu, workers=unknown)
            except Exception:
                found = {}
            for addr in unknown:
                self._aer_gpu[addr] = bool(found.get(addr, False))
                if not self._aer_gpu[addr]:
                    logger.warning(
                        "Dask worker %s advertises a GPU but its Qiskit Aer has no GPU device: "
                        "no jobs are sent there as GPU work",
                        addr,
                    )
        self._gpu_workers = {addr for addr in advertised if self._aer_gpu.get(addr)}

    def _watch(self) -> None:
        while not self._stop.wait(self._refresh_seconds):
            try:
                before = self.capacity
                self._refresh()
                if self.capacity != before:
                    logger.info("Dask cluster capacity: %d worker thread(s)", self.capacity)
            except Exception:
                if not self._stop.is_set():
                    logger.debug("could not read the Dask worker list", exc_info=True)


def _kill_worker_process(dask_worker: Any = None) -> int:
    """Run on a nanny (``dask_worker`` is the Nanny): SIGKILL its worker process."""
    import os
    import signal

    pid = int(dask_worker.process.pid)
    os.kill(pid, signal.SIGKILL)
    return pid


def _set_worker_ttl(dask_scheduler: Any = None, seconds: float = 0.0) -> float | None:
    """Run on the scheduler: raise ``worker_ttl`` to at least ``seconds`` (returns the old)."""
    old = dask_scheduler.worker_ttl
    if old is not None and old < seconds:
        dask_scheduler.worker_ttl = seconds
    return old


def _worker_has_aer_gpu() -> bool:
    """Run on a worker: whether its Qiskit Aer lists a GPU device."""
    return aer_has_gpu()
