"""The dispatcher's clock and hand-off, for jobs and transpile tasks (a real store, a real worker).

* A job's time limit counts from when a worker actually starts it: work the dispatcher did not
  hand out (another router's CPU task) may hold the only worker, and a job waiting behind it in
  the pool must not be cancelled for time it never ran (issue 11: a job with a 5 s limit was
  cancelled as "ran longer than 5 s" without ever running).
* A cancel in the hand-off window of a transpile task (claimed STARTED, submitted, not yet
  registered) leaves it CANCELLED and its worker free, as for jobs.
* A task that finishes past its time limit, between two of the dispatcher's looks, fails as one
  the dispatcher stopped (the same task must not pass or fail by how the ticks fall: a CI run saw
  an 8 s-limit task succeed after 8.04 s).
"""

from __future__ import annotations

import contextlib
import threading
import time

import orjson
import pytest

pytest.importorskip("qiskit_aer")
pytest.importorskip("sqlalchemy")

from qiskit.circuit.random import random_circuit  # noqa: E402
from qiskit.qasm2 import dumps  # noqa: E402

from qiskit_rest_provider.server.backends.catalog import BackendCatalog  # noqa: E402
from qiskit_rest_provider.server.config import ServerConfig, instance_crn  # noqa: E402
from qiskit_rest_provider.server.execution.pool import LocalProcessExecutor  # noqa: E402
from qiskit_rest_provider.server.jobs import transpile_store as ts  # noqa: E402
from qiskit_rest_provider.server.jobs.dispatcher import Dispatcher  # noqa: E402
from qiskit_rest_provider.server.jobs.models import Job, TranspileTaskRow  # noqa: E402
from qiskit_rest_provider.server.jobs.store import Store, new_id  # noqa: E402
from qiskit_rest_provider.server.jobs.watchers import JobWatchers  # noqa: E402
from qiskit_rest_provider.server.transpile.tasks import run_stored_transpile  # noqa: E402

QUICK = 'OPENQASM 3.0; include "stdgates.inc"; qubit[1] q; bit[1] c; x q[0]; c[0] = measure q[0];'


@contextlib.contextmanager
def _engine(tmp_path, run_transpile=run_stored_transpile):
    """A real store, one worker and a dispatcher over them: ``(store, executor, dispatcher,
    instance id)``."""
    config = ServerConfig(data_dir=tmp_path, workers=1, abandon_grace=5.0)
    config.prepare_data_dir()
    store = Store(config)
    executor = LocalProcessExecutor(1)
    dispatcher = Dispatcher(
        store,
        executor,
        config,
        JobWatchers(),
        catalog=BackendCatalog.load(None),
        run_transpile=run_transpile,
    )
    instance = store.ensure_instance("local/default/main", instance_crn("local/default/main"))
    try:
        yield store, executor, dispatcher, instance.id
    finally:
        dispatcher.stop()
        executor.shutdown(wait=False, cancel_futures=True)
        store.close()


@pytest.fixture
def engine(tmp_path):
    with _engine(tmp_path) as parts:
        yield parts


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_job_time_limit_counts_from_when_a_worker_starts_it(engine):
    store, executor, dispatcher, instance_id = engine
    _wait(lambda: executor.submit(int, 1).result(timeout=60) == 1, 60, "no worker")
    blocker = executor.submit(time.sleep, 4.0)  # CPU work the dispatcher did not hand out
    _wait(blocker.running, 10, "the blocker never started")
    job = Job(
        id=new_id(),
        instance_id=instance_id,
        user_id="u",
        backend="rest_simulator",
        program_id="sampler",
        params=orjson.dumps({"pubs": [[QUICK, None, 10]], "version": 2}),
        state="Queued",
        tags="[]",
        cost=2,  # shorter than the 4 s it waits in the pool behind the blocker
        created=time.time(),
        logs="",
        usage_seconds=0.0,
        quantum_seconds=0.0,
        attempts=0,
    )
    store.create_job(job)
    dispatcher.start()
    _wait(lambda: store.get_job(job.id).state != "Queued", 30, "never handed out")
    _wait(blocker.done, 30, "the blocker never finished")
    _wait(lambda: store.get_job(job.id).state not in ("Queued", "Running"), 60, "never final")
    done = store.get_job(job.id)
    assert done.state == "Completed", (done.state, done.reason)


def test_cancel_in_a_transpile_task_handoff_frees_the_worker(engine):
    store, executor, dispatcher, instance_id = engine
    tasks = ts.TranspileStore(store)
    slow = {
        "backend": "rest_hex_27q",
        "optimization_level": 3,
        "qasm_circuits": [dumps(random_circuit(20, 60, max_operands=2, seed=3))] * 10,
    }

    def add(request: dict) -> str:
        row = TranspileTaskRow(
            id=new_id(),
            instance_id=instance_id,
            state=ts.PENDING,
            backend=request["backend"],
            request=orjson.dumps(request),
            warnings="[]",
            num_circuits=len(request["qasm_circuits"]),
            time_limit=600.0,
            created=time.time(),
            attempts=0,
        )
        tasks.add(row)
        return row.id

    slow_id = add(slow)
    in_window, resume = threading.Event(), threading.Event()

    def pause_in_handoff(task_id: str) -> None:
        if task_id == slow_id:
            in_window.set()
            assert resume.wait(60), "the test never let the dispatcher go on"

    dispatcher.handoff_hook = pause_in_handoff
    dispatcher.start()
    assert in_window.wait(60), "the dispatcher never reached the hand-off of the task"
    assert tasks.state(slow_id) == ts.STARTED
    assert dispatcher.cancel_transpile(slow_id)
    assert not dispatcher.cancel_transpile(slow_id)  # already final: the route answers 409
    resume.set()
    quick = add(
        {
            "backend": "rest_line_5q",
            "optimization_level": 1,
            "qasm_circuits": ['OPENQASM 2.0; include "qelib1.inc"; qreg q[1]; h q[0];'],
        }
    )
    dispatcher.wake()
    t0 = time.monotonic()
    _wait(lambda: tasks.state(quick) in ts.FINAL, 60, "the quick task never finished")
    assert tasks.state(quick) == ts.SUCCESS
    assert time.monotonic() - t0 < 30  # the slow task (~45 s of work) no longer holds the worker
    _wait(lambda: dispatcher.in_flight == 0 and executor.busy == 0, 10, "a worker stayed busy")
    row = tasks.get(slow_id)
    assert row is not None and row.state == ts.CANCELLED
    assert bytes(row.result or b"").decode() == "cancelled by the user"


def _transpile_reporting_9_s(data: dict, spec: object) -> dict:
    """A transpile run that reports 9 s of work at once (top level: the worker unpickles it)."""
    return {"ok": True, "result": [], "seconds": 9.0}


def test_a_transpile_task_that_finished_past_its_limit_fails(tmp_path):
    with _engine(tmp_path, run_transpile=_transpile_reporting_9_s) as engine:
        store, _executor, dispatcher, instance_id = engine
        tasks = ts.TranspileStore(store)
        row = TranspileTaskRow(
            id=new_id(),
            instance_id=instance_id,
            state=ts.PENDING,
            backend="rest_line_5q",
            request=orjson.dumps({"backend": "rest_line_5q", "qasm_circuits": [QUICK]}),
            warnings="[]",
            num_circuits=1,
            time_limit=8.0,
            created=time.time(),
            attempts=0,
        )
        tasks.add(row)
        dispatcher.start()
        _wait(lambda: tasks.state(row.id) in ts.FINAL, 60, "the task never finished")
        done = tasks.get(row.id)
        assert done is not None and done.state == ts.FAILURE
        message = bytes(done.result or b"").decode()
        assert "time limit of 8 s" in message and "--max-transpile-time" in message
