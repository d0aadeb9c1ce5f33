"""The worker-process pool: results, errors, targeted kills, crashes and FIFO queueing."""

from __future__ import annotations

import concurrent.futures as cf
import os
import time

import pytest

pytest.importorskip("qiskit_aer")

from workloads import handoff_circuits

from qiskit_rest_provider.server.execution.pool import LocalProcessExecutor, TaskKilled, WorkerDied


def _sleep_then(value, seconds=0.0):
    time.sleep(seconds)
    return value


def _boom():
    raise ValueError("boom")


def _die():
    os._exit(3)


def _pid():
    return os.getpid()


@pytest.fixture(scope="module")
def pool():
    executor = LocalProcessExecutor(2)
    yield executor
    executor.shutdown(wait=False)


def test_results_and_errors_come_back(pool):
    assert pool.submit(_sleep_then, 42).result(timeout=120) == 42
    with pytest.raises(ValueError, match="boom"):
        pool.submit(_boom).result(timeout=60)


def test_kill_stops_only_that_task_and_the_worker_is_replaced(pool):
    pool.submit(_pid).result(timeout=60)
    slow = pool.submit(_sleep_then, "late", 60)
    other = pool.submit(_sleep_then, "fine", 0.5)
    time.sleep(0.3)
    assert pool.kill(slow)
    with pytest.raises(TaskKilled):
        slow.result(timeout=60)
    assert other.result(timeout=60) == "fine"  # the other worker was not disturbed
    assert pool.submit(_sleep_then, 7).result(timeout=120) == 7  # replacement worker serves


def test_a_crashing_task_fails_alone(pool):
    neighbour = pool.submit(_sleep_then, "ok", 0.5)
    crash = pool.submit(_die)
    with pytest.raises(WorkerDied) as err:
        crash.result(timeout=60)
    assert not isinstance(err.value, TaskKilled)
    assert neighbour.result(timeout=60) == "ok"
    assert pool.submit(_sleep_then, 1).result(timeout=120) == 1


def test_pending_tasks_wait_fifo_and_can_be_cancelled(pool):
    blockers = [pool.submit(_sleep_then, i, 1.0) for i in range(2)]
    queued = [pool.submit(_sleep_then, f"q{i}") for i in range(3)]
    assert pool.kill(queued[1])  # still pending: cancelled
    assert queued[1].cancelled()
    assert [f.result(timeout=60) for f in blockers] == [0, 1]
    assert queued[0].result(timeout=60) == "q0" and queued[2].result(timeout=60) == "q2"
    done, _ = cf.wait(queued[::2], timeout=10)
    assert len(done) == 2


def _describe(circuits):
    """On the worker: what arrived, and whether each circuit's delay kept its unit."""
    return [
        (
            c.name,
            dict(c.count_ops()),
            c.metadata,
            [i.operation.unit for i in c.data if i.name == "delay"],
        )
        for c in circuits
    ]


def test_circuits_reach_a_worker_whole_and_unpicklable_arguments_fail_before(pool):
    """The pool sends the pickle of :func:`.handoff.dumps_call` (plain circuits as QPY, a delay
    in ``ns`` pickled with its unit); an argument pickle cannot write fails the future here."""
    plain, timed = handoff_circuits()
    arrived = pool.submit(_describe, [plain, timed]).result(timeout=120)
    assert arrived == [
        ("plain", {"h": 1, "cx": 1, "rz": 1, "measure": 3, "barrier": 1}, {"k": 1}, []),
        ("timed", {"delay": 1, "x": 1}, {}, ["ns"]),
    ]
    failed = pool.submit(_sleep_then, lambda: None)
    with pytest.raises(Exception, match="pickle"):  # noqa: B017 - pickle's own error types vary
        failed.result(timeout=5)
    assert pool.submit(_sleep_then, 3).result(timeout=60) == 3


def _refuse_to_load():
    raise ValueError("unreadable here")


class _UnreadableOnTheWorker:
    """Pickles fine; unpickling (on the worker) raises."""

    def __reduce__(self):
        return _refuse_to_load, ()


def test_a_task_the_worker_cannot_read_fails_alone_and_the_worker_serves_on(pool):
    bad = pool.submit(_sleep_then, _UnreadableOnTheWorker())
    with pytest.raises(RuntimeError, match="could not be read by the worker.*unreadable here"):
        bad.result(timeout=60)
    assert pool.submit(_sleep_then, 5).result(timeout=60) == 5
