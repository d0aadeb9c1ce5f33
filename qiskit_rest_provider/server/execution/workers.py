"""Code that runs inside worker processes.

Each worker imports qiskit, qiskit_aer and the OpenQASM/QPY machinery in its *main thread* when it
starts (see perf-notes: importing them first in a short-lived thread later crashes QPY loading),
then builds the backend catalog once. Tasks are plain picklable objects; results come back as
plain dicts so no exception class has to survive pickling.

Other CPU work submitted to ``app.state.pool`` (e.g. remote transpilation) may call
:func:`catalog` to reach the worker's catalog.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from typing import Any

from .base import ExecutionTask

logger = logging.getLogger(__name__)

_CATALOG: Any = None
_BACKENDS_DIR: str | None = None


def import_heavy_modules() -> None:
    """Import (and exercise once) qiskit, Aer, OpenQASM 3 and QPY in the calling main thread.

    Lazy imports and one-time initialisations inside these libraries must not first happen in a
    short-lived request thread (perf-notes: a later QPY load then crashes the process), so a
    tiny QASM parse and QPY round trip run here too. Our own modules that a job's path imports
    lazily (the wire codecs, the programs, splitting and merging) are imported here as well:
    otherwise the first jobs after a start pay ~0.1 s of imports, on the busy path.
    """
    import io

    import qiskit
    import qiskit.qasm3
    import qiskit.qpy
    import qiskit_aer  # noqa: F401

    try:
        import qiskit_qasm3_import  # noqa: F401
    except ImportError:  # pragma: no cover - optional importer
        pass
    from ... import wire  # noqa: F401
    from ...wire import _spans, circuits, pubs, results  # noqa: F401
    from . import estimator, runner, sampler, split  # noqa: F401

    circuit = qiskit.qasm3.loads('OPENQASM 3.0; include "stdgates.inc"; qubit[1] q; x q[0];')
    buffer = io.BytesIO()
    qiskit.qpy.dump(circuit, buffer)
    buffer.seek(0)
    qiskit.qpy.load(buffer)


def init_worker(backends_dir: str | None) -> None:
    """Process-pool initializer: heavy imports in the main thread, then the catalog."""
    global _BACKENDS_DIR
    _BACKENDS_DIR = backends_dir
    import_heavy_modules()
    catalog()


def catalog() -> Any:
    """This worker's :class:`~qiskit_rest_provider.server.backends.catalog.BackendCatalog`.

    Built once per worker process.
    """
    global _CATALOG
    if _CATALOG is None:
        from ..backends.catalog import BackendCatalog

        _CATALOG = BackendCatalog.load(_BACKENDS_DIR)
    return _CATALOG


def run_task(task: ExecutionTask) -> dict[str, Any]:
    """Run one job; never raises for job-level problems (they come back as ``ok: False``)."""
    started = time.perf_counter()
    started_at = time.time()
    try:
        from . import runner

        if task.backend not in catalog():
            raise LookupError(f"backend {task.backend!r} is no longer in the server's catalog")
        backend = catalog().get(task.backend)
        parse = 0.0
        prepared = task.prepared
        if prepared is None:
            import orjson

            if task.prepare is None:
                raise LookupError("the job has neither a prepared form nor a preparer")
            t0 = time.perf_counter()
            prepared = task.prepare(task.program_id, orjson.loads(task.params or b"{}"), backend)
            parse = time.perf_counter() - t0
        outcome = runner.execute_job(prepared, backend, task.part)
        if parse:
            outcome.metrics["stage_seconds"]["parse"] = parse
        extra: dict[str, Any] = {}
        if task.part is not None:
            extra = {
                "pieces": outcome.pieces,
                "chunk_arrays": outcome.chunk_arrays,
                "result_metadata": outcome.result_metadata,
            }
        return {
            "ok": True,
            **extra,
            "result_body": outcome.result_body,
            "metrics": dict(outcome.metrics or {}),
            "quantum_seconds": float(outcome.quantum_seconds),
            "wall_seconds": time.perf_counter() - started,
            "pid": os.getpid(),
            "started_at": started_at,
            "finished_at": time.time(),
        }
    except Exception as exc:  # report, never crash the worker
        input_error = type(exc).__name__ in ("JobInputError", "WireFormatError")
        return {
            "ok": False,
            "input_error": bool(input_error),
            "reason": f"{type(exc).__name__}: {exc}",
            "traceback": traceback.format_exc(),
            "wall_seconds": time.perf_counter() - started,
            "pid": os.getpid(),
        }
