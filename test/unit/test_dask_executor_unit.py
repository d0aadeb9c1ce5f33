"""Unit tests of the Dask executor's wiring: addresses, the worker command, refusals.

The executor itself runs against a real ``LocalCluster`` in
``test/integration/test_dask_executor.py``.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from workloads import handoff_circuits

from qiskit_rest_provider.cli import _parser, worker_command
from qiskit_rest_provider.server.config import ServerConfig
from qiskit_rest_provider.server.execution.base import ExecutionTask
from qiskit_rest_provider.server.execution.dask import parse_dask_address


def test_dask_addresses_become_tcp_and_bad_ones_name_the_shape():
    assert parse_dask_address("dask://10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    assert parse_dask_address("dask://[::1]:8786") == "tcp://[::1]:8786"
    for bad in ("dask://host", "dask://:8786", "tcp://h:1", "dask://h:port"):
        with pytest.raises(ValueError, match="dask://HOST:PORT"):
            parse_dask_address(bad)


def test_serve_options_reach_the_config():
    args = _parser().parse_args(
        ["serve", "--executor", "dask://s:8786", "--replica-id", "r1", "--lease-seconds", "7",
         "--notify-fallback", "2"]
    )  # fmt: skip
    assert (args.executor, args.replica_id, args.lease_seconds, args.notify_fallback) == (
        "dask://s:8786", "r1", 7.0, 2.0,
    )  # fmt: skip
    config = ServerConfig(data_dir="/tmp/x", executor="dask://s:8786", replica_id="r1")
    assert config.replica_id == "r1" and config.lease_seconds == 30.0


def test_serve_refuses_an_unknown_executor_with_a_clear_error(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "qiskit_rest_provider", "serve", "--data-dir", str(tmp_path),
         "--executor", "spark://h:1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "executor must be 'local' or 'dask://HOST:PORT'" in done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "qiskit_rest_provider", "serve", "--data-dir", str(tmp_path),
         "--executor", "dask://no-port"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "error: --executor: executor must look like dask://HOST:PORT" in done.stderr


def test_worker_command_is_dask_worker_with_one_thread_and_the_preload():
    args = _parser().parse_args(
        ["worker", "dask://sched:8786", "--nworkers", "3", "--resources", "GPU=1",
         "--memory-limit", "8GiB", "--name", "gpu-a"]
    )  # fmt: skip
    cmd = worker_command(args)
    assert cmd[:4] == [sys.executable, "-m", "distributed.cli.dask_worker", "tcp://sched:8786"]
    flags = dict(zip(cmd[4::2], cmd[5::2]))
    assert flags == {
        "--nthreads": "1",
        "--nworkers": "3",
        "--preload": "qiskit_rest_provider.server.execution.dask_preload",
        "--name": "gpu-a",
        "--resources": "GPU=1",
        "--memory-limit": "8GiB",
    }


def test_execution_task_defaults_keep_old_callers_working():
    task = ExecutionTask(job_id="j", program_id="sampler", backend="b")
    assert (task.attempt, task.priority) == (0, 0)


def test_aer_device_comes_from_the_environment(monkeypatch):
    from qiskit_rest_provider.server.execution.simulators import AER_DEVICE_ENV, aer_settings

    monkeypatch.delenv(AER_DEVICE_ENV, raising=False)
    assert "device" not in aer_settings()
    monkeypatch.setenv(AER_DEVICE_ENV, "gpu")
    assert aer_settings()["device"] == "GPU"
    monkeypatch.setenv(AER_DEVICE_ENV, "tpu")  # not an Aer device: ignored
    assert "device" not in aer_settings()


class _Server:
    """Stands in for a Dask server: quiet() reads only its periodic callbacks (real ones)."""

    def __init__(self) -> None:
        from tornado.ioloop import PeriodicCallback

        def nothing() -> None:
            return None

        rates = {"profile": 10, "profile-cycle": 1000, "tick": 20, "monitor": 500}
        rates |= {"memory_monitor": 100, "heartbeat": 500}
        self.periodic_callbacks = {
            name: PeriodicCallback(nothing, ms) for name, ms in rates.items()
        }
        self._tick_interval = 0.02


def test_quiet_drops_the_profiler_and_slows_diagnostics_only(monkeypatch):
    from qiskit_rest_provider.server.execution.dask_preload import DIAGNOSTICS_ENV, quiet

    monkeypatch.delenv(DIAGNOSTICS_ENV, raising=False)
    server = _Server()
    changed = quiet(server)
    assert changed == {
        "profile": 0.0, "profile-cycle": 0.0, "tick": 1.0, "monitor": 5.0, "memory_monitor": 0.5,
    }  # fmt: skip
    rates = {name: pc.callback_time for name, pc in server.periodic_callbacks.items()}
    # the heartbeat is the scheduler's to set: untouched
    assert rates == {"tick": 1000, "monitor": 5000, "memory_monitor": 500, "heartbeat": 500}
    assert server._tick_interval == 1.0
    assert quiet(server) == {}  # twice: nothing more to do
    # asked to keep Dask's rates (here, or by the environment): nothing changes
    kept = _Server()
    assert quiet(kept, keep=True) == {}
    monkeypatch.setenv(DIAGNOSTICS_ENV, "1")
    assert quiet(kept) == {}
    assert kept.periodic_callbacks["profile"].callback_time == 10
    assert kept.periodic_callbacks["tick"].callback_time == 20


def test_a_task_carries_plain_circuits_as_qpy_and_circuits_with_delays_pickled():
    """The hand-off pickle writes circuits as QPY (cheaper on both sides) where QPY keeps them
    whole; a delay in ``ns`` (QPY would turn it into ``dt``) travels pickled, unit intact."""
    import pickle

    from qiskit_rest_provider.server.execution.dask import _dumps

    plain, timed = handoff_circuits()
    blob = _dumps(len, ([plain, timed],), {})
    assert b"QISKIT" in blob  # QPY's magic: the plain circuit went as QPY
    assert blob.count(b"QISKIT") == 1  # and only that one
    fn, (circuits,), kwargs = pickle.loads(blob)
    assert fn is len and kwargs == {}
    assert circuits[0] == plain and circuits[0].name == "plain"
    assert circuits[0].metadata == {"k": 1}
    assert circuits[1] == timed
    assert circuits[1].data[0].operation.unit == "ns"  # pickled: the unit is kept
