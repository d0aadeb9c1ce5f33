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

import logging
import os
import time
from typing import Any

__all__ = [
    "BACKENDS_DIR_ENV",
    "BATCH_INTERVAL",
    "aer_has_gpu",
    "DIAGNOSTICS_ENV",
    "dask_setup",
    "keep_diagnostics",
    "quiet",
    "run_task_on_gpu",
    "shorten_batching",
]

logger = logging.getLogger(__name__)

#: Environment variable naming the extra backends directory workers load (the server's
#: ``--backends-dir``).
BACKENDS_DIR_ENV = "QISKIT_REST_BACKENDS_DIR"


#: Seconds a Dask batched stream may hold a message to send it with the next ones. Dask batches
#: for throughput of many tiny tasks (10 ms client → scheduler, 2 ms worker → scheduler); our
#: tasks are whole jobs, so latency matters more: 1 ms, set on our client and (by the preload)
#: on each worker. Measured on 2 cores: a no-op task's round trip 10.4 → ~8 ms (client alone).
BATCH_INTERVAL = 0.001


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
    shorten_batching(worker)  # answers go back at once: our tasks are whole jobs
    quiet(worker)  # diagnostics off the cores the jobs need
    logger.info(
        "qiskit-rest-provider preload: worker %s warm in %.2f s (Aer GPU: %s)",
        getattr(worker, "address", "?"),
        seconds,
        aer_has_gpu(),
    )
