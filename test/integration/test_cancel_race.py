"""A cancel in the dispatcher's hand-off window leaves the job Cancelled and its worker free.

The window: the dispatcher has claimed the job (Queued → Running in the store) and submitted it to
a worker, but has not yet registered it as in flight. A cancel there used to answer 204 and show
Cancelled while the job kept its worker busy to the end. The dispatcher's ``handoff_hook`` seam
pauses the dispatcher thread exactly there, so the race is reproduced every time: a real store,
a real worker process, a real dispatcher; only the timing is chosen by the test.
"""

from __future__ import annotations

import threading
import time

import orjson
import pytest

pytest.importorskip("qiskit_aer")
pytest.importorskip("sqlalchemy")

from workloads import slow_qasm

from qiskit_rest_provider.server.config import ServerConfig, instance_crn
from qiskit_rest_provider.server.execution.pool import LocalProcessExecutor
from qiskit_rest_provider.server.jobs.dispatcher import Dispatcher
from qiskit_rest_provider.server.jobs.models import Job
from qiskit_rest_provider.server.jobs.store import Store, new_id
from qiskit_rest_provider.server.jobs.watchers import JobWatchers

QUICK = 'OPENQASM 3.0; include "stdgates.inc"; qubit[1] q; bit[1] c; x q[0]; c[0] = measure q[0];'


def _job(instance_id: str, qasm: str, shots: int, pubs: int) -> Job:
    params = {"pubs": [[qasm, None, shots]] * pubs, "version": 2}
    return Job(
        id=new_id(),
        instance_id=instance_id,
        user_id="u",
        backend="rest_simulator",
        program_id="sampler",
        params=orjson.dumps(params),
        state="Queued",
        tags="[]",
        created=time.time(),
        logs="",
        usage_seconds=0.0,
        quantum_seconds=0.0,
        attempts=0,
    )


def _wait_final(store: Store, job_id: str, timeout: float) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = store.get_job(job_id)
        assert job is not None
        if job.state in ("Completed", "Failed", "Cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still {job.state} after {timeout} s")


@pytest.fixture
def engine(tmp_path):
    config = ServerConfig(data_dir=tmp_path, workers=1, abandon_grace=5.0)
    config.prepare_data_dir()
    store = Store(config)
    executor = LocalProcessExecutor(1)
    dispatcher = Dispatcher(store, executor, config, JobWatchers())
    instance = store.ensure_instance("local/default/main", instance_crn("local/default/main"))
    yield store, executor, dispatcher, instance.id
    dispatcher.stop()
    executor.shutdown(wait=False, cancel_futures=True)
    store.close()


def test_cancel_in_the_handoff_window_frees_the_worker(engine):
    store, executor, dispatcher, instance_id = engine
    # 20 PUBs x 100k per-shot-simulated shots: minutes of work if the worker kept running it
    slow = _job(instance_id, slow_qasm(), 100_000, 20)
    in_window = threading.Event()
    resume = threading.Event()

    def pause_in_handoff(job_id: str) -> None:
        if job_id == slow.id:
            in_window.set()
            assert resume.wait(60), "the test never let the dispatcher go on"

    dispatcher.handoff_hook = pause_in_handoff
    store.create_job(slow)
    dispatcher.start()
    assert in_window.wait(60), "the dispatcher never reached the hand-off of the job"

    # the job is Running in the store and submitted to the worker, not yet registered: cancel
    assert store.get_job(slow.id).state == "Running"
    assert dispatcher.cancel(slow.id)
    assert store.get_job(slow.id).state == "Cancelled"
    assert not dispatcher.cancel(slow.id)  # already final: the route answers 409
    resume.set()

    # the worker is freed at once: a following job runs and completes long before the slow one
    t0 = time.monotonic()
    quick = _job(instance_id, QUICK, 10, 1)
    store.create_job(quick)
    dispatcher.wake()
    done = _wait_final(store, quick.id, timeout=90)
    assert done.state == "Completed", done.reason
    assert time.monotonic() - t0 < 90
    deadline = time.monotonic() + 10
    while (executor.busy or dispatcher.in_flight) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert executor.busy == 0 and dispatcher.in_flight == 0

    final = store.get_job(slow.id)
    assert final.state == "Cancelled" and final.reason == "cancelled by the user"
    assert "completed" not in final.logs


def test_cancel_before_and_after_handoff_still_work(engine):
    """The seam changes nothing outside the window: queued and running jobs cancel as before."""
    store, executor, dispatcher, instance_id = engine
    dispatcher.start()
    running = _job(instance_id, slow_qasm(), 100_000, 20)
    store.create_job(running)
    dispatcher.wake()
    deadline = time.monotonic() + 60
    while dispatcher.in_flight == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    queued = _job(instance_id, QUICK, 10, 1)
    store.create_job(queued)
    assert dispatcher.cancel(queued.id)
    assert store.get_job(queued.id).state == "Cancelled"
    assert dispatcher.cancel(running.id)
    after = _job(instance_id, QUICK, 10, 1)
    store.create_job(after)
    dispatcher.wake()
    assert _wait_final(store, after.id, timeout=90).state == "Completed"
    assert store.get_job(running.id).state == "Cancelled"


def test_cancel_in_the_handoff_window_kills_every_part_of_a_split_job(tmp_path):
    """A lone job in memory is split over both workers; a cancel in its hand-off stops all parts."""
    from qiskit_rest_provider.server.backends.catalog import BackendCatalog
    from qiskit_rest_provider.server.jobs.admission import prepare_job

    config = ServerConfig(data_dir=tmp_path, workers=2, abandon_grace=5.0)
    config.prepare_data_dir()
    store = Store(config)
    executor = LocalProcessExecutor(2)
    dispatcher = Dispatcher(store, executor, config, JobWatchers())
    try:
        instance_id = store.ensure_instance("a/b/c", instance_crn("a/b/c")).id
        slow = _job(instance_id, slow_qasm(), 100_000, 4)
        backend = BackendCatalog.load().get("rest_simulator")
        prepared = prepare_job("sampler", orjson.loads(slow.params), backend)
        in_window, resume = threading.Event(), threading.Event()

        def pause_in_handoff(job_id: str) -> None:
            if job_id == slow.id:
                in_window.set()
                assert resume.wait(60), "the test never let the dispatcher go on"

        dispatcher.handoff_hook = pause_in_handoff
        store.create_job(slow)
        dispatcher.remember_prepared(slow.id, prepared, 0.0)
        dispatcher.start()
        assert in_window.wait(60), "the dispatcher never reached the hand-off of the job"
        deadline = time.monotonic() + 60
        while executor.busy < 2 and time.monotonic() < deadline:  # both parts on their workers
            time.sleep(0.05)
        assert executor.busy == 2
        assert dispatcher.cancel(slow.id)
        resume.set()
        deadline = time.monotonic() + 30
        while (executor.busy or dispatcher.in_flight) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert executor.busy == 0 and dispatcher.in_flight == 0
        final = store.get_job(slow.id)
        assert final.state == "Cancelled" and "completed" not in final.logs
    finally:
        dispatcher.stop()
        executor.shutdown(wait=False, cancel_futures=True)
        store.close()
