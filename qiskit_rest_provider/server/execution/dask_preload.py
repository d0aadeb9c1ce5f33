"""Dask worker preload: warm Qiskit and Aer once per worker process.

``dask worker SCHEDULER --nthreads 1 --preload qiskit_rest_provider.server.execution.dask_preload``
(or ``qiskit-rest-provider worker SCHEDULER``, which runs exactly that) calls :func:`dask_setup`
in the worker's main thread when it starts: qiskit, Aer, OpenQASM 3 and QPY are imported and
exercised there (perf-notes: a first import in a short-lived thread later crashes QPY loading), a
tiny simulator runs once, and the backend catalog is loaded (``QISKIT_REST_BACKENDS_DIR`` names
the server's ``--backends-dir``, if it has one). The first job on the worker then pays nothing of
this.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import pickle
import time
from typing import Any

__all__ = [
    "BACKENDS_DIR_ENV",
    "BATCH_INTERVAL",
    "aer_has_gpu",
    "DIAGNOSTICS_ENV",
    "dask_setup",
    "install_push_handler",
    "keep_diagnostics",
    "push_outcome",
    "quiet",
    "run_task_on_gpu",
    "shorten_batching",
    "tune_malloc",
]

logger = logging.getLogger(__name__)

#: Environment variable naming the extra backends directory workers load (the server's
#: ``--backends-dir``).
BACKENDS_DIR_ENV = "QISKIT_REST_BACKENDS_DIR"


#: Seconds a Dask batched stream may hold a message to send it with the next ones. Dask batches
#: for throughput of many tiny tasks (10 ms client → scheduler, 2 ms worker → scheduler); our
#: tasks are whole jobs, so latency matters more: none, set on our client and (by the preload)
#: on each worker. Measured on 2 cores: a no-op task's round trip 10.4 → ~8 ms at 1 ms (client
#: alone); a small job's overhead against the local pool a further ~0.5–1 ms less at 0.
BATCH_INTERVAL = 0.0


def shorten_batching(client_or_worker: Any) -> None:
    """Lower the batching interval of a Dask client's or worker's stream (best effort)."""
    for name in ("scheduler_comm", "batched_stream"):
        stream = getattr(client_or_worker, name, None)
        if stream is not None and hasattr(stream, "interval"):
            stream.interval = min(float(stream.interval), BATCH_INTERVAL)


#: Environment variable: ``1`` keeps Dask's own diagnostics rates (see :func:`quiet`), on the
#: workers (read by the preload) and on the scheduler and nannies (read by the server).
DIAGNOSTICS_ENV = "QISKIT_REST_DASK_DIAGNOSTICS"

#: The periodic work of every Dask server process (scheduler, nanny, worker) :func:`quiet`
#: slows down: callback name -> seconds between calls (Dask's defaults in the comments).
QUIET_INTERVALS = {
    "tick": 1.0,  # distributed.admin.tick.interval 20 ms: event-loop health check
    "monitor": 5.0,  # distributed.admin.system-monitor.interval 500 ms: psutil samples
    "memory_monitor": 0.5,  # distributed.worker.memory.monitor-interval 100 ms
}


def keep_diagnostics() -> bool:
    """Whether ``QISKIT_REST_DASK_DIAGNOSTICS`` asks to keep Dask's diagnostics rates."""
    return os.environ.get(DIAGNOSTICS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def quiet(server: Any, keep: bool | None = None) -> dict[str, float]:
    """Slow down a Dask server's diagnostics; stop a worker's statistical profiler.

    Dask samples a worker's stacks every 10 ms for the dashboard's profile, checks each event
    loop every 20 ms, reads psutil every 500 ms and every process' memory every 100 ms. On a
    small machine that CPU is taken from the Aer runs: idle, a 2-worker cluster with its
    nannies and scheduler burned ~100 ms of CPU per second (measured, 2 cores), ~15 with
    :data:`QUIET_INTERVALS` and no profiler. Only the dashboard's profile and the rate of its
    system graphs are lost; memory limits are still enforced (every 0.5 s instead of 0.1 s).
    Set ``QISKIT_REST_DASK_DIAGNOSTICS=1`` to keep Dask's rates (``keep`` None reads it here;
    the server passes its own reading for the scheduler and nannies). Returns what was changed
    (callback → new seconds; 0 for a stopped one). Safe to call twice.
    """
    if keep if keep is not None else keep_diagnostics():
        return {}
    callbacks = getattr(server, "periodic_callbacks", None)
    if not callbacks:
        return {}
    changed: dict[str, float] = {}
    for name in ("profile", "profile-cycle"):  # the worker's statistical profiler
        pc = callbacks.pop(name, None)  # dropped: the preload runs before they are started
        if pc is not None:
            pc.stop()
            changed[name] = 0.0
    for name, seconds in QUIET_INTERVALS.items():
        pc = callbacks.get(name)
        if pc is not None and pc.callback_time < seconds * 1000:
            pc.callback_time = seconds * 1000  # tornado reads it when it schedules the next call
            changed[name] = seconds
    if "tick" in changed and hasattr(server, "_tick_interval"):
        server._tick_interval = changed["tick"]
    return changed


#: The worker handler that hands finished outcomes straight to the client that submitted them
#: (see :mod:`.dask`, "Outcomes pushed"); installed by the preload, else by the first task.
PUSH_HANDLER = "qiskit_rest_outcomes"
#: An outcome larger than this (pickled) is not pushed: the client fetches it from the worker.
PUSH_MAX_BYTES = 16 * 2**20
#: Seconds a standing request for outcomes waits on a worker before the client renews it.
PUSH_WAIT = 10.0
#: Outcomes a worker keeps for one client that has not collected them (oldest dropped).
PUSH_BACKLOG = 64
#: A client that has not asked a worker for outcomes for this long gets none kept there.
PUSH_IDLE = 60.0

_PUSHED: dict[str, collections.deque[tuple[str, bytes]]] = {}  # client id -> outcomes to hand over
_PUSH_WAKERS: dict[str, asyncio.Event] = {}  # client id -> set when an outcome is added
_PUSH_SEEN: dict[str, float] = {}  # client id -> when it last asked (monotonic; inf: asking now)


def install_push_handler(worker: Any) -> bool:
    """Give a Dask worker the :data:`PUSH_HANDLER` request handler (idempotent)."""
    handlers = getattr(worker, "handlers", None)
    if handlers is None:
        return False
    handlers.setdefault(PUSH_HANDLER, _outcomes_handler)
    return True


async def _outcomes_handler(
    comm: Any = None, client: str = "", timeout: float = PUSH_WAIT
) -> list[tuple[str, bytes]]:
    """On a worker's loop: the outcomes pushed for ``client``, waiting up to ``timeout`` s."""
    _PUSH_SEEN[client] = float("inf")
    try:
        queue = _PUSHED.get(client)
        if not queue:
            waker = _PUSH_WAKERS.setdefault(client, asyncio.Event())
            waker.clear()
            try:
                await asyncio.wait_for(waker.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            queue = _PUSHED.get(client)
        out = list(queue or ())
        if queue:
            queue.clear()
        return out
    finally:
        _PUSH_SEEN[client] = time.monotonic()


def push_outcome(client: str, result: Any) -> None:
    """In the task's thread: queue ``result`` for ``client`` on this worker (best effort)."""
    try:
        from distributed import get_worker
        from distributed.worker import thread_state

        worker = get_worker()
        key = str(thread_state.key)
        install_push_handler(worker)
        data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # not on a worker, an odd result: the client fetches it instead
        return
    if len(data) <= PUSH_MAX_BYTES:
        worker.loop.add_callback(_add_pushed, client, key, data)


def _add_pushed(client: str, key: str, data: bytes) -> None:
    """On the worker's loop: keep the outcome for ``client`` and wake its standing request."""
    if time.monotonic() - _PUSH_SEEN.get(client, float("-inf")) > PUSH_IDLE:
        _PUSHED.pop(client, None)  # not asking (gone, or no poller yet): it fetches instead
        return
    _PUSHED.setdefault(client, collections.deque(maxlen=PUSH_BACKLOG)).append((key, data))
    waker = _PUSH_WAKERS.get(client)
    if waker is not None:
        waker.set()


#: glibc ``mallopt`` settings for a worker (see :func:`tune_malloc`): parameter -> bytes.
MALLOC_SETTINGS = {
    -1: 64 * 2**20,  # M_TRIM_THRESHOLD: give memory back once 64 MiB are free at the heap's top
    -3: 32 * 2**20,  # M_MMAP_THRESHOLD: blocks from 32 MiB (glibc's dynamic ceiling) are mapped
}


def tune_malloc() -> bool:
    """Undo the cost of Dask's ``MALLOC_TRIM_THRESHOLD_`` in this worker (glibc only).

    The nanny starts each worker with ``MALLOC_TRIM_THRESHOLD_=65536`` so that freed memory goes
    back to the OS at once. Setting it also freezes glibc's mmap threshold at 128 kB: every
    array from 128 kB on (a 16-qubit statevector is 1 MB) is mapped and unmapped each time, and
    trimmed heap comes back page by page. Measured on a 4-PUB, 16-qubit sampler job: ~4,100
    page faults and 5–8 ms of system CPU per job (a local worker process: ~450–950 faults,
    0–3 ms); with :data:`MALLOC_SETTINGS`, ~5 faults and 1.5–2.5 ms (2 cores, under load).
    Memory is still returned: mapped blocks (32 MiB on, e.g. statevectors from 22 qubits) at
    once, the heap once 64 MiB of it are free. Returns whether it applied.
    """
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return False  # glibc adapts its thresholds itself: nothing to undo
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return all(libc.mallopt(param, value) == 1 for param, value in MALLOC_SETTINGS.items())
    except (OSError, AttributeError):  # not glibc
        return False


def aer_has_gpu() -> bool:
    """Whether this process' Qiskit Aer lists a GPU device (the GPU build on a GPU host)."""
    try:
        from qiskit_aer import AerSimulator

        return "GPU" in AerSimulator().available_devices()
    except Exception:  # noqa: BLE001 - no Aer, no GPU
        return False


def run_task_on_gpu(task: Any) -> dict[str, Any]:
    """Run one job with Aer's ``device="GPU"`` (a worker runs one task at a time: nthreads 1)."""
    from .simulators import AER_DEVICE_ENV
    from .workers import run_task

    before = os.environ.get(AER_DEVICE_ENV)
    os.environ[AER_DEVICE_ENV] = "GPU"
    try:
        return run_task(task)
    finally:
        if before is None:
            os.environ.pop(AER_DEVICE_ENV, None)
        else:
            os.environ[AER_DEVICE_ENV] = before


def warm() -> float:
    """Import and exercise everything a job needs; returns the seconds it took."""
    t0 = time.perf_counter()
    os.environ.setdefault(
        "QISKIT_REST_AER_THREADS", "1"
    )  # one thread per worker: no oversubscription
    from .workers import init_worker

    init_worker(os.environ.get(BACKENDS_DIR_ENV) or None)
    from qiskit import QuantumCircuit, transpile
    from qiskit_aer import AerSimulator

    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure_all()
    simulator = AerSimulator()
    simulator.run(transpile(circuit, simulator), shots=8).result()
    return time.perf_counter() - t0


def dask_setup(worker: Any) -> None:
    """Dask's preload hook: warm this worker (runs once, in its main thread)."""
    seconds = warm()
    install_push_handler(worker)  # outcomes go straight to the client that asked for them
    tune_malloc()  # no page faults for every mid-size array (the nanny's malloc setting)
    shorten_batching(worker)  # answers go back at once: our tasks are whole jobs
    quiet(worker)  # diagnostics off the cores the jobs need
    logger.info(
        "qiskit-rest-provider preload: worker %s warm in %.2f s (Aer GPU: %s)",
        getattr(worker, "address", "?"),
        seconds,
        aer_has_gpu(),
    )
