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

How tasks travel (what makes the cluster scale like the local pool):

* **Pickled once, here.** The task (function, :class:`~.base.ExecutionTask`) is pickled by the
  executor, its circuits as QPY where QPY keeps them whole (:mod:`.handoff`: a third of the
  CPU here, a fifth on the worker), and submitted as bytes to :func:`_run_pickled`. Handed the
  task itself, Dask walks its arguments' dataclasses (the job's PUBs and options) on the client
  *and* on the scheduler to look for nested tasks — about 0.4 s of scheduler CPU per multi-PUB
  job, which on a small machine is a core taken from the workers (measured: 2 Dask workers on 2
  cores gave 1.6× the throughput of one where the local pool gave 2×).
* **A gate.** At most as many tasks as the cluster has worker threads (:attr:`capacity`,
  :attr:`gpu_capacity` for GPU work) are on the cluster at once; the rest are held here, highest
  :attr:`~.base.ExecutionTask.priority` first, and the next goes when one finishes — greedy, as
  the local pool is. Submitted all at once, Dask would assign them to workers up front (two per
  one-thread worker at the default ``worker-saturation``, or all of them for tasks that are not
  "root-ish": fewer than twice the threads, or with resources), so a worker that finishes early
  idles until work stealing moves a task. Several replicas each gate on the cluster's capacity
  (so up to replicas × capacity tasks may wait on the scheduler, which then queues them). A held
  task that is killed never reaches the cluster. :attr:`busy` counts held tasks too (they are
  in flight for the dispatcher), :attr:`held` only those.
* **Outcomes pushed.** A worker hands each outcome straight to the client that submitted the
  task: the client keeps one standing request per worker (:data:`.dask_preload.PUSH_HANDLER`,
  installed by the preload, else by the first task there), which the worker answers as soon as
  a task of that client ends, with the outcome. The usual way — the worker tells the scheduler,
  the scheduler tells the client, the client asks the worker for the result — costs a hop and
  a round trip more (measured on 2 cores, a small job: ~4 ms back → ~2 ms). The task still
  returns its outcome to Dask, and a client that got no push (a worker without the handler
  yet, an outcome over :data:`.dask_preload.PUSH_MAX_BYTES`) fetches it when the scheduler
  says the task ended; errors and lost workers come that way too. A worker keeps outcomes only
  for clients that asked it within :data:`.dask_preload.PUSH_IDLE` seconds, at most
  :data:`.dask_preload.PUSH_BACKLOG` each. A pushed task's Dask future is released a little
  later (:data:`RELEASE_DELAY`, together with the others of that moment): released at once, its
  clean-up (client → scheduler → worker) ran just as the job's result was being stored and
  answered, and a small job's overhead through the server was ~3 ms more (measured on 2 cores,
  8.0 → 4.9 ms, four runs each). All of it runs on the Dask client's event loop, which
  then completes our future: no callback thread and no blocking ``result()`` call in between.
  Callbacks on the returned futures therefore run on that loop: keep them short (the
  dispatcher's only queues).
* **No batching.** Dask batches messages for throughput of tiny tasks (client 10 ms, worker
  2 ms, scheduler to workers 5 ms, to clients 2 ms): our client and workers (the preload) send
  at once (:data:`.dask_preload.BATCH_INTERVAL` 0), and on connecting the executor does the same
  for the scheduler's streams to the workers and to our client, with a scheduler plugin for
  workers that join later (:func:`_tune_scheduler`; without it a job's ``compute-task`` could
  wait behind the previous job's ``free-keys``).
* **Quiet diagnostics.** The scheduler, each nanny (asked once per new worker) and each worker
  (the preload) run :func:`.dask_preload.quiet`: no statistical profiler, the loop check, psutil
  and memory samples far less often. Idle, a 2-worker cluster with its scheduler burned ~100 ms
  of CPU a second before, ~15 after: on a small machine that was taken from the Aer runs.
  ``QISKIT_REST_DASK_DIAGNOSTICS=1`` keeps Dask's rates.

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

import asyncio
import concurrent.futures as cf
import heapq
import itertools
import logging
import pickle
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .base import ExecutionTask, JobExecutor, TaskKilled, WorkerDied
from .dask_preload import (
    BATCH_INTERVAL,
    PUSH_WAIT,
    aer_has_gpu,
    keep_diagnostics,
    push_outcome,
    quiet,
    run_task_on_gpu,
    shorten_batching,
)
from .handoff import dumps_call
from .workers import run_task

__all__ = ["DaskExecutor", "import_distributed", "parse_dask_address"]

logger = logging.getLogger(__name__)

#: Programs that may run on a GPU worker (Aer's ``device="GPU"``).
GPU_PROGRAMS = ("sampler", "estimator")
#: Simulation methods with a dense state in memory: what a GPU speeds up.
DENSE_METHODS = ("statevector", "density_matrix")
SPARSE_METHODS = ("stabilizer", "matrix_product_state")
#: Seconds a pushed task's Dask future is kept before it is released, with the others of that
#: window in one go (see "Outcomes pushed" in the module doc).
RELEASE_DELAY = 0.05


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
    key: str
    blob: bytes  # ``pickle((fn, args, kwargs))``: what the worker runs (:func:`_run_pickled`)
    priority: int
    gpu: bool
    seq: int
    dask_future: Any = None  # None while the task is held here (not yet on the cluster)
    submitted: bool = False  # holds a slot of the gate
    killed: bool = False

    def __lt__(self, other: _Entry) -> bool:  # the held heap: higher priority, then older
        return (-self.priority, self.seq) < (-other.priority, other.seq)


def _run_pickled(blob: bytes, reply_to: str | None = None) -> Any:
    """Run on a worker: the task's ``(fn, args, kwargs)``, pickled by the executor.

    With ``reply_to`` (the submitting client's id) the outcome is also pushed to that client
    (:func:`.dask_preload.push_outcome`); it is returned as well: a client that missed the push
    fetches it.
    """
    fn, args, kwargs = pickle.loads(blob)
    result = fn(*args, **kwargs)
    if reply_to:
        push_outcome(reply_to, result)
    return result


def _dumps(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """Pickle a call once, here (:func:`.handoff.dumps_call`).

    cloudpickle takes what pickle cannot do, such as a function of ``__main__``, which a worker
    could not import.
    """
    try:
        if getattr(fn, "__module__", None) == "__main__":  # not importable on a worker
            raise pickle.PicklingError("by value")
        return dumps_call(fn, args, kwargs)
    except (pickle.PicklingError, AttributeError, TypeError):
        import cloudpickle

        return bytes(cloudpickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL))


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
        self._entries: dict[int, _Entry] = {}  # id(our future) -> entry (held or submitted)
        self._held: list[_Entry] = []  # heap: waiting here for a free worker thread
        self._seq = itertools.count()
        self._submitted = 0  # entries on the cluster (each holds a slot of the gate)
        self._submitted_gpu = 0
        self._closed = False
        self.capacity = 0
        self.gpu_capacity = 0  # worker threads of the GPU workers (Aer on GPU)
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
        self._keep_diagnostics = keep_diagnostics()
        try:
            self._client.run_on_scheduler(
                _tune_scheduler, client=self._client.id, keep=self._keep_diagnostics
            )
        except Exception as exc:
            logger.warning(
                "could not shorten the Dask scheduler's message batching (%s): each task then "
                "waits up to 5 ms more on its way to a worker",
                exc,
            )
        self._quieted: set[str] = set()  # workers whose nanny was quieted
        self._by_key: dict[str, _Entry] = {}  # Dask key -> entry on the cluster (for pushes)
        self._workers_now: set[str] = set()  # the cluster's workers at the last refresh
        self._pollers: set[str] = set()  # workers with a standing request for our outcomes
        self.pushed = 0  # outcomes that came pushed by their worker (the rest were fetched)
        self._to_release: list[Any] = []  # Dask futures of pushed tasks (client loop only)
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
            self._pump()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future[Any]:
        """Run any picklable ``fn(*args, **kwargs)`` on the cluster (e.g. remote transpiling).

        Such a task passes the gate before any waiting job (priority 0, jobs' are negative).
        """
        key = f"task-{getattr(fn, '__name__', 'fn')}-{secrets.token_hex(6)}"
        return self._submit(_dumps(fn, args, kwargs), key=key, priority=0, gpu=False)

    def run_job(self, task: ExecutionTask) -> cf.Future[dict[str, Any]]:
        """Submit one job as one Dask task (see the module docstring for key and resources)."""
        part = "" if task.part is None else f"-p{task.part.index}"  # a split job's part
        key = f"job-{task.job_id}-{task.attempt}{part}-{secrets.token_hex(3)}"
        gpu = self._wants_gpu(task)
        blob = _dumps(run_task_on_gpu if gpu else run_task, (task,), {})
        return self._submit(blob, key=key, priority=task.priority, gpu=gpu)

    def kill(self, future: cf.Future[Any]) -> bool:
        """Stop the task of ``future``: drop it if held or waiting, restart its worker if running.

        A held task (not yet on the cluster) never runs.
        """
        with self._lock:
            entry = self._entries.get(id(future))
            if entry is None or entry.killed:
                return future.cancel()
            entry.killed = True
            dask_future = entry.dask_future
        if dask_future is None:  # held here (or being sent: _send cancels it)
            self._finish(entry, error=TaskKilled("the task was stopped before it started"))
            return True
        worker = self._worker_running(dask_future.key)
        dask_future.cancel()
        if worker is not None:
            logger.info("restarting Dask worker %s to stop task %s", worker, dask_future.key)
            threading.Thread(
                target=self._restart_worker, args=(worker,), name="dask-restart", daemon=True
            ).start()
        self._finish(entry, error=TaskKilled("the task was stopped"))
        return True

    @property
    def busy(self) -> int:
        """Tasks of ours not finished: on the cluster, or held here for a free worker."""
        with self._lock:
            return len(self._entries)

    @property
    def held(self) -> int:
        """Tasks held here until a worker thread is free (see the gate in the module doc)."""
        with self._lock:
            return sum(not e.submitted for e in self._entries.values())

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Cancel our tasks and disconnect (the cluster keeps running)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            entries = list(self._entries.values())
            self._held.clear()
        self._stop.set()
        for entry in entries:
            try:
                if entry.dask_future is not None:
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
    def _submit(self, blob: bytes, *, key: str, priority: int, gpu: bool) -> cf.Future[Any]:
        """Register a task; send it to the cluster now if a worker thread is free, else hold it."""
        future: cf.Future[Any] = cf.Future()
        future.set_running_or_notify_cancel()
        entry = _Entry(future, key, blob, priority, gpu, next(self._seq))
        with self._lock:
            if self._closed:
                raise RuntimeError("the Dask executor is shut down")
            self._entries[id(future)] = entry
            if self._has_room(gpu):
                self._take_slot(entry)
            else:
                heapq.heappush(self._held, entry)
        if entry.submitted:
            self._send(entry)
        return future

    def _has_room(self, gpu: bool) -> bool:
        """Whether one more task fits the cluster's free worker threads (lock held)."""
        if self._submitted >= self.capacity:
            return False
        return not gpu or self._submitted_gpu < self.gpu_capacity

    def _take_slot(self, entry: _Entry) -> None:
        entry.submitted = True
        self._submitted += 1
        self._submitted_gpu += entry.gpu

    def _release_slot(self, entry: _Entry) -> None:
        """Free the entry's slot (lock held); once per submitted entry."""
        if entry.submitted:
            entry.submitted = False
            self._submitted -= 1
            self._submitted_gpu -= entry.gpu

    def _pump(self) -> None:
        """Send held tasks, highest priority first, while worker threads are free."""
        ready: list[_Entry] = []
        with self._lock:
            skipped: list[_Entry] = []
            while self._held and not self._closed:
                entry = heapq.heappop(self._held)
                if entry.killed or entry.future.done():
                    continue
                if self._has_room(entry.gpu):
                    self._take_slot(entry)
                    ready.append(entry)
                elif entry.gpu and self._submitted < self.capacity:
                    skipped.append(entry)  # no GPU slot free: a CPU task behind it may go
                else:
                    heapq.heappush(self._held, entry)
                    break
            for entry in skipped:
                heapq.heappush(self._held, entry)
        for entry in ready:
            self._send(entry)

    def _send(self, entry: _Entry) -> None:
        """Submit the entry's task; its outcome is awaited on the client's event loop."""
        options: dict[str, Any] = {"key": entry.key, "pure": False, "retries": 0}
        if entry.priority:
            options["priority"] = entry.priority
        if entry.gpu:
            options["resources"] = {"GPU": 1}
        with self._lock:
            self._by_key[entry.key] = entry  # before it can run: its outcome may be pushed
        try:
            dask_future = self._client.submit(_run_pickled, entry.blob, self._client.id, **options)
        except Exception as exc:  # the client is closing or the scheduler is gone
            self._finish(entry, error=WorkerDied(f"the Dask task could not be submitted: {exc}"))
            return
        entry.blob = b""  # the client holds it now
        with self._lock:
            entry.dask_future = dask_future
            killed = entry.killed
        if killed:  # killed while being sent: it must not run
            dask_future.cancel()
        self._client.loop.add_callback(self._await_outcome, entry)

    async def _await_outcome(self, entry: _Entry) -> None:
        """On the client's event loop: the task's outcome, pushed by its worker or fetched.

        Whichever comes first: the worker's push (:meth:`_on_pushed`: no round trip after the
        task), or the scheduler's word that the task ended, then its result fetched from the
        worker (an outcome that was not pushed) or its error.
        """
        dask_future = entry.dask_future
        try:  # until the scheduler says the task ended (no fetch yet)
            await self._distributed.client._wait([dask_future])
        except BaseException:  # noqa: BLE001 - the fetch below says what happened
            pass
        if entry.killed or entry.future.done():  # pushed (or killed): nothing to fetch
            self._forget(entry)
            entry.dask_future = None
            self._release_later(dask_future)
            return
        result: Any = None
        error: BaseException | None = None
        try:
            result = await self._client.gather(dask_future, asynchronous=True)
        except BaseException as exc:  # noqa: BLE001 - every outcome belongs to the future
            status = dask_future.status
            if isinstance(exc, self._distributed.KilledWorker):
                error = WorkerDied(f"the Dask worker running the task died ({exc})")
            elif status == "cancelled" or isinstance(exc, cf.CancelledError):
                error = WorkerDied("the Dask task was cancelled by the cluster (scheduler lost?)")
            elif status == "error":
                error = exc  # the task itself raised
            else:
                error = WorkerDied(f"the Dask task's result was lost: {exc!r}")
        if entry.killed or entry.future.done():
            self._forget(entry)
        else:
            self._finish(entry, result=result, error=error)
        entry.dask_future = None  # the cluster may drop the result now

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

    def _release_later(self, dask_future: Any) -> None:
        """On the client's loop: drop ``dask_future`` within :data:`RELEASE_DELAY` s, batched."""
        self._to_release.append(dask_future)
        if len(self._to_release) == 1:
            self._client.loop.call_later(RELEASE_DELAY, self._release_now)

    def _release_now(self) -> None:
        """On the client's loop: the last references go, so the client releases their keys."""
        self._to_release = []

    def _on_pushed(self, key: str, data: bytes) -> None:
        """On the client's loop: a worker pushed the outcome of task ``key``."""
        with self._lock:
            entry = self._by_key.pop(key, None)
        if entry is None or entry.killed or entry.future.done():
            return
        try:
            result = pickle.loads(data)
        except Exception:  # the fetch brings it instead
            logger.debug("could not read the pushed outcome of %s", key, exc_info=True)
            return
        self.pushed += 1
        self._finish(entry, result=result)

    async def _poll(self, worker: str) -> None:
        """On the client's loop: a standing request to ``worker`` for the outcomes it pushes.

        Runs while the worker is in the cluster; a worker without the handler (no preload, and
        no task of ours yet) is asked again later, less and less often.
        """
        failures = 0
        try:
            while not self._closed and worker in self._workers_now:
                try:
                    got = await self._client.rpc(worker).qiskit_rest_outcomes(
                        client=self._client.id, timeout=PUSH_WAIT
                    )
                except Exception:  # gone, restarting, or no handler yet
                    failures += 1
                    await asyncio.sleep(min(30.0, 0.25 * 2**failures))
                    continue
                failures = 0
                for key, data in got:
                    try:
                        self._on_pushed(key, data)
                    except Exception:  # never stop asking: the others still come
                        logger.exception("could not complete Dask task %s", key)
        except asyncio.CancelledError:  # the client closes
            pass
        finally:
            self._pollers.discard(worker)

    def _forget(self, entry: _Entry) -> None:
        """Drop the entry; a freed slot lets the next held task go."""
        with self._lock:
            self._entries.pop(id(entry.future), None)
            if self._by_key.get(entry.key) is entry:
                del self._by_key[entry.key]
            freed = entry.submitted
            self._release_slot(entry)
            more = freed and bool(self._held)
        if more:
            self._pump()

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
        self._workers_now = set(workers)
        for addr in sorted(set(workers) - self._pollers):  # a standing request for outcomes
            self._pollers.add(addr)
            self._client.loop.add_callback(self._poll, addr)
        fresh = sorted(set(workers) - self._quieted)
        if fresh:  # once per worker (a restarted one has a new address): its nanny too
            self._quieted.update(fresh)
            threading.Thread(  # never here: a nanny of a worker being replaced may not answer
                target=self._quiet_nannies, args=(fresh,), name="dask-quiet", daemon=True
            ).start()
        self._gpu_workers = {addr for addr in advertised if self._aer_gpu.get(addr)}
        self.gpu_capacity = sum(
            min(int(workers[a].get("nthreads", 1)), int(float(workers[a]["resources"]["GPU"])))
            for a in self._gpu_workers
        )

    def _quiet_nannies(self, workers: list[str]) -> None:
        """:func:`_quiet_nanny` on the nannies of ``workers`` (off the watch thread)."""
        try:
            self._client.run(_quiet_nanny, workers=workers, nanny=True, keep=self._keep_diagnostics)
        except Exception:  # workers without a nanny, or one that went away
            logger.debug("could not quiet the nannies of %s", workers, exc_info=True)

    def _watch(self) -> None:
        while not self._stop.wait(self._refresh_seconds):
            try:
                before = self.capacity
                self._refresh()
                if self.capacity != before:
                    logger.info("Dask cluster capacity: %d worker thread(s)", self.capacity)
                if self._held:  # workers came: held tasks may go now
                    self._pump()
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


def _tune_scheduler(
    dask_scheduler: Any = None, client: str = "", keep: bool = False
) -> dict[str, float]:
    """Run on the scheduler: send at once to workers and to ``client``; quiet diagnostics.

    The scheduler batches what it sends each worker for 5 ms (each client 2 ms): a job's
    ``compute-task`` that follows the previous job's ``free-keys`` within that window waits for
    it. Our tasks are whole jobs, so the streams to the workers and to our client get
    :data:`.dask_preload.BATCH_INTERVAL`, and a scheduler plugin does the same for each worker
    that joins later (a restarted one too). Then :func:`.dask_preload.quiet` on the scheduler.
    """
    from distributed.diagnostics.plugin import SchedulerPlugin

    def shorten(stream: Any) -> None:
        if stream is not None and hasattr(stream, "interval"):
            stream.interval = min(float(stream.interval), BATCH_INTERVAL)

    class ShortWorkerStreams(SchedulerPlugin):  # type: ignore[misc]
        name = "qiskit-rest-short-worker-streams"

        def add_worker(self, scheduler: Any = None, worker: str = "", **kwargs: Any) -> None:
            shorten(scheduler.stream_comms.get(worker))

    for stream in dask_scheduler.stream_comms.values():
        shorten(stream)
    shorten(dask_scheduler.client_comms.get(client))
    dask_scheduler.add_plugin(ShortWorkerStreams(), idempotent=True)
    return quiet(dask_scheduler, keep=keep)


def _quiet_nanny(dask_worker: Any = None, keep: bool = False) -> dict[str, float]:
    """Run on a nanny (``dask_worker`` is the Nanny): :func:`.dask_preload.quiet`."""
    return quiet(dask_worker, keep=keep)


def _set_worker_ttl(dask_scheduler: Any = None, seconds: float = 0.0) -> float | None:
    """Run on the scheduler: raise ``worker_ttl`` to at least ``seconds`` (returns the old)."""
    old = dask_scheduler.worker_ttl
    if old is not None and old < seconds:
        dask_scheduler.worker_ttl = seconds
    return old


def _worker_has_aer_gpu() -> bool:
    """Run on a worker: whether its Qiskit Aer lists a GPU device."""
    return aer_has_gpu()
