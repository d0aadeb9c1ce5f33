"""The whole job flow through the Dask executor (``serve --executor dask://HOST:PORT``).

A real ``distributed.LocalCluster`` (two worker processes, one thread each, our preload) and a
real server subprocess connected to its scheduler: sampler and estimator jobs, a session job,
cancelling queued and running jobs, the max-time kill, seeded results identical to the local
executor's, and a Dask worker SIGKILLed mid-job (the job is re-queued or failed with a
reason, never lost). Task keys and worker restarts are read back from the scheduler itself.
"""

from __future__ import annotations

import os
import secrets
import signal
import time

import numpy as np
import pytest
import requests

distributed = pytest.importorskip("distributed")
pytest.importorskip("fastapi")

from conftest import ServerFactory, worker_cluster  # noqa: E402
from qiskit import QuantumCircuit  # noqa: E402
from qiskit.primitives.containers.estimator_pub import EstimatorPub  # noqa: E402
from qiskit.primitives.containers.sampler_pub import SamplerPub  # noqa: E402
from qiskit.quantum_info import SparsePauliOp  # noqa: E402
from workloads import bell_circuit  # noqa: E402

from qiskit_rest_provider.wire.pubs import (  # noqa: E402
    encode_estimator_params,
    encode_sampler_params,
)
from qiskit_rest_provider.wire.results import decode_result  # noqa: E402

FINAL = ("Completed", "Failed", "Cancelled")


def _long(n: int = 22, layers: int = 40) -> QuantumCircuit:
    """A dense statevector job: ~10 s of one Aer thread (22 qubits, ~1,300 gates)."""
    qc = QuantumCircuit(n)
    for layer in range(layers):
        for i in range(n):
            qc.rx(0.1 * (i + layer + 1), i)
        for i in range(layer % 2, n - 1, 2):
            qc.cx(i, i + 1)
    qc.measure_all()
    return qc


@pytest.fixture(scope="module")
def cluster():
    import dask

    # LocalCluster closes the nanny of a worker that has not come back 15 s after it was lost
    # (``distributed.deploy.lost-worker-timeout``); a restarted worker warming Qiskit and Aer on
    # a loaded 2-core machine can take longer, and the cluster then lost that worker for good
    with (
        dask.config.set({"distributed.deploy.lost-worker-timeout": "120s"}),
        worker_cluster(2) as local,
    ):
        with distributed.Client(local, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
            yield local, client


@pytest.fixture(scope="module")
def dask_server(cluster, tmp_path_factory):
    local, _ = cluster
    factory = ServerFactory(tmp_path_factory.mktemp("dask-servers"), None, None)
    address = local.scheduler_address.replace("tcp://", "dask://")
    server = factory.start(
        args=["--executor", address, "--rate-limit", "1000", "--cancel-grace", "5"]
    )
    yield server
    factory.cleanup()


def _headers(server) -> dict[str, str]:
    return {"Authorization": f"apikey {server.token}", "Content-Type": "application/json"}


def _submit(server, program: str, params: dict, **extra) -> str:
    body = {"program_id": program, "backend": "rest_simulator", "params": params, **extra}
    r = requests.post(f"{server.runtime_url}/jobs", headers=_headers(server), json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["id"]


def _job(server, job_id: str) -> dict:
    r = requests.get(f"{server.runtime_url}/jobs/{job_id}", headers=_headers(server), timeout=30)
    r.raise_for_status()
    return r.json()


def _state(server, job_id: str) -> str:
    return _job(server, job_id)["state"]["status"]


def _wait_state(server, job_id: str, states: tuple[str, ...], timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = _job(server, job_id)
        if job["state"]["status"] in states:
            return job
        assert time.monotonic() < deadline, f"{job_id} still {job['state']['status']}"
        time.sleep(0.05)


def _results(server, job_id: str) -> bytes:
    job = server.wait_job(server.runtime_url, job_id, _headers(server), timeout=120)
    assert job["state"]["status"] == "Completed", job
    r = requests.get(
        f"{server.runtime_url}/jobs/{job_id}/results", headers=_headers(server), timeout=60
    )
    r.raise_for_status()
    return r.content


def _worker_pid(dask_worker=None) -> int:
    """Run on a nanny (a busy worker cannot answer: Aer holds the GIL): its worker's pid."""
    return int(dask_worker.process.pid)


def _worker_pids(client) -> set[int]:
    return set(client.run(_worker_pid, nanny=True).values())


def _shots(body: bytes) -> int:
    return decode_result(body)[0].data.meas.num_shots


def _task_keys(client) -> set[str]:
    """Every task key the scheduler has seen (its transition log)."""

    def keys(dask_scheduler):
        return sorted({str(entry[0]) for entry in dask_scheduler.transition_log})

    return set(client.run_on_scheduler(keys))


def _sampler_params(seed: int = 11) -> dict:
    return encode_sampler_params(
        [SamplerPub.coerce(bell_circuit(), shots=500)],
        options={"simulator": {"seed_simulator": seed}},
    )


def _estimator_params() -> dict:
    qc = QuantumCircuit(2)
    qc.ry(0.7, 0)
    qc.cx(0, 1)
    pub = EstimatorPub.coerce((qc, SparsePauliOp(["ZZ", "XI", "IZ"])), precision=0.02)
    return encode_estimator_params([pub], options={"seed_estimator": 5})


def test_seeded_sampler_and_estimator_match_the_local_executor(
    dask_server, reference_server, cluster
):
    _, client = cluster
    sampler = _sampler_params()
    estimator = _estimator_params()
    ids = [_submit(dask_server, "sampler", sampler), _submit(dask_server, "estimator", estimator)]
    local = [
        _submit(reference_server, "sampler", sampler),
        _submit(reference_server, "estimator", estimator),
    ]
    on_dask = [decode_result(_results(dask_server, i)) for i in ids]
    on_local = [decode_result(_results(reference_server, i)) for i in local]
    # same seeds, same code on the workers: identical data (only the run times differ)
    dask_bits, local_bits = on_dask[0][0].data.meas, on_local[0][0].data.meas
    assert dask_bits.num_shots == 500
    np.testing.assert_array_equal(dask_bits.array, local_bits.array)
    np.testing.assert_array_equal(on_dask[1][0].data.evs, on_local[1][0].data.evs)
    np.testing.assert_array_equal(on_dask[1][0].data.stds, on_local[1][0].data.stds)
    # the jobs really ran as Dask tasks keyed job-<id>-<attempt>-...
    keys = _task_keys(client)
    for job_id in ids:
        assert any(k.startswith(f"job-{job_id}-0-") for k in keys), keys


def test_session_job_runs_on_the_cluster(dask_server):
    r = requests.post(
        f"{dask_server.runtime_url}/sessions",
        headers=_headers(dask_server),
        json={"mode": "dedicated", "backend": "rest_simulator"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    session_id = r.json()["id"]
    job_id = _submit(dask_server, "sampler", _sampler_params(3), session_id=session_id)
    assert _shots(_results(dask_server, job_id)) == 500
    session = requests.get(
        f"{dask_server.runtime_url}/sessions/{session_id}",
        headers=_headers(dask_server),
        timeout=30,
    ).json()
    assert session.get("activated_at") or session.get("started_at") or session["state"] != "open"


def test_cancel_queued_and_running_jobs_and_the_worker_comes_back(dask_server, cluster):
    _, client = cluster
    # ~30 s jobs: restarting a worker (a new process warming Qiskit and Aer) takes 3-12 s on
    # a loaded 2-core machine, and the fresh job must still finish well before these could
    long_params = encode_sampler_params([SamplerPub.coerce(_long(layers=120), shots=100)])
    running = [_submit(dask_server, "sampler", long_params) for _ in range(2)]
    for job_id in running:
        _wait_state(dask_server, job_id, ("Running",))
    queued = _submit(dask_server, "sampler", _sampler_params())
    time.sleep(0.5)
    assert _state(dask_server, queued) == "Queued"  # both worker threads are busy
    pids_before = _worker_pids(client)

    r = requests.post(
        f"{dask_server.runtime_url}/jobs/{queued}/cancel", headers=_headers(dask_server), timeout=30
    )
    assert r.status_code == 204, r.text
    assert _state(dask_server, queued) == "Cancelled"
    started = time.monotonic()
    for job_id in running:
        r = requests.post(
            f"{dask_server.runtime_url}/jobs/{job_id}/cancel",
            headers=_headers(dask_server),
            timeout=30,
        )
        assert r.status_code == 204, r.text
        assert _state(dask_server, job_id) == "Cancelled"
    # the killed tasks' workers were restarted (new processes) and take new work at once
    fresh = _submit(dask_server, "sampler", _sampler_params(7))
    assert _shots(_results(dask_server, fresh)) == 500
    assert time.monotonic() - started < 25  # well before the ~30 s jobs could have finished
    client.wait_for_workers(2, timeout=60)
    pids_after = _worker_pids(client)
    assert pids_after - pids_before, "the workers of cancelled running jobs were not restarted"


def test_max_execution_time_kills_the_task(dask_server):
    long_params = encode_sampler_params([SamplerPub.coerce(_long(), shots=100)])
    job_id = _submit(dask_server, "sampler", long_params, cost=2)
    job = _wait_state(dask_server, job_id, FINAL, timeout=30)
    assert job["state"]["status"] == "Cancelled"
    assert job["state"].get("reason_code") == 1305, job["state"]
    fresh = _submit(dask_server, "sampler", _sampler_params(8))
    assert _shots(_results(dask_server, fresh)) == 500


def test_sigkill_of_a_dask_worker_mid_job_requeues_it_never_loses_it(dask_server, cluster):
    _, client = cluster
    client.wait_for_workers(2, timeout=60)
    long_params = encode_sampler_params([SamplerPub.coerce(_long(20, 60), shots=100)])
    job_id = _submit(dask_server, "sampler", long_params, tags=[secrets.token_hex(4)])
    _wait_state(dask_server, job_id, ("Running",))
    deadline = time.monotonic() + 30
    victim = None
    while victim is None and time.monotonic() < deadline:
        for worker, keys in client.processing().items():
            if any(str(k).startswith(f"job-{job_id}-0-") for k in keys):
                victim = worker
        time.sleep(0.05)
    assert victim is not None, "the job's task never showed up as processing"
    (pid,) = client.run(_worker_pid, workers=[victim], nanny=True).values()
    os.kill(pid, signal.SIGKILL)
    job = _wait_state(dask_server, job_id, FINAL, timeout=90)
    logs = requests.get(
        f"{dask_server.runtime_url}/jobs/{job_id}/logs", headers=_headers(dask_server), timeout=30
    ).text
    assert "re-queued" in logs, logs
    if job["state"]["status"] == "Failed":  # allowed, but only with a reason
        assert job["state"].get("reason"), job
    else:
        assert job["state"]["status"] == "Completed", job


def test_remote_transpile_runs_on_the_cluster(dask_server):
    auth = {"Authorization": f"Bearer {dask_server.token}", "Accept": "application/json"}
    bell = 'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; h q[0]; cx q[0], q[1];'
    r = requests.post(
        f"{dask_server.url}/transpile",
        params={"backend": "rest_line_5q", "optimization_level": 1},
        json={"qasm_circuits": [bell]},
        headers=auth,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    task_id = r.json()["task_id"]
    deadline = time.monotonic() + 60
    while True:
        body = requests.get(
            f"{dask_server.url}/transpile/{task_id}", params={"wait": 10}, headers=auth, timeout=60
        ).json()
        if body["state"] in ("SUCCESS", "FAILURE"):
            break
        assert time.monotonic() < deadline, body
    assert body["state"] == "SUCCESS", body


def test_a_worker_advertising_a_gpu_its_aer_lacks_gets_no_gpu_work():
    """GPU routing needs both the ``GPU`` resource and Aer's GPU build on the worker."""
    from qiskit_rest_provider.server.execution.base import ExecutionTask
    from qiskit_rest_provider.server.execution.dask import DaskExecutor
    from qiskit_rest_provider.server.execution.dask_preload import aer_has_gpu
    from qiskit_rest_provider.server.jobs.admission import prepare_job

    if aer_has_gpu():
        pytest.skip("this host's Aer has a GPU device: the refusal cannot be shown here")
    with distributed.LocalCluster(
        n_workers=1,
        processes=True,
        threads_per_worker=1,
        dashboard_address=None,
        resources={"GPU": 1},
    ) as local:
        executor = DaskExecutor(local.scheduler_address)
        try:
            executor.warm_up(wait=True, timeout=120)
            assert executor.capacity == 1
            assert executor._gpu_workers == set()  # advertised, but Aer has no GPU device
            from qiskit_rest_provider.server.backends.catalog import BackendCatalog

            backend = BackendCatalog.load().get("rest_simulator")
            task = ExecutionTask(
                job_id="gpu-check",
                program_id="sampler",
                backend="rest_simulator",
                prepared=prepare_job("sampler", _sampler_params(), backend),
            )
            assert not executor._wants_gpu(task)
            out = executor.run_job(task).result(timeout=120)
            assert out["ok"] and _shots(out["result_body"]) == 500
            # a worker without our preload: the first outcome is fetched, and that task
            # installed the push handler there, so the next ones come pushed
            deadline = time.monotonic() + 30
            while executor.pushed == 0:
                again = executor.run_job(task).result(timeout=120)
                assert again["ok"] and _shots(again["result_body"]) == 500
                assert time.monotonic() < deadline, "no outcome came pushed"
                time.sleep(0.5)
        finally:
            executor.shutdown()


def test_the_gate_holds_tasks_beyond_free_threads_in_priority_order_and_a_killed_one_never_runs():
    import orjson

    from qiskit_rest_provider.server.backends.catalog import BackendCatalog
    from qiskit_rest_provider.server.execution.base import ExecutionTask, TaskKilled
    from qiskit_rest_provider.server.execution.dask import DaskExecutor
    from qiskit_rest_provider.server.jobs.admission import prepare_job

    backend = BackendCatalog.load().get("rest_simulator")
    prepared = prepare_job("sampler", orjson.loads(orjson.dumps(_sampler_params())), backend)
    with (
        worker_cluster(1) as local,
        distributed.Client(local, set_as_default=False) as client,
    ):
        executor = DaskExecutor(local.scheduler_address)
        try:
            executor.warm_up(wait=True, timeout=120)
            assert executor.capacity == 1
            tag = secrets.token_hex(3)
            with distributed.get_task_stream(client=client) as stream:
                blocker = executor.submit(time.sleep, 2.0)  # the one thread is busy
                jobs = {
                    prio: executor.run_job(
                        ExecutionTask(
                            job_id=f"gate{tag}{-prio}",
                            program_id="sampler",
                            backend="rest_simulator",
                            prepared=prepared,
                            priority=prio,
                        )
                    )
                    for prio in (-3, -1, -4, -2)
                }
                assert (executor.busy, executor.held) == (5, 4)
                assert executor.kill(jobs[-4])  # held: it must never reach the cluster
                with pytest.raises(TaskKilled):
                    jobs[-4].result(timeout=5)
                assert (executor.busy, executor.held) == (4, 3)
                outcomes = {p: f.result(timeout=120) for p, f in jobs.items() if p != -4}
                blocker.result(timeout=60)
            assert all(o["ok"] for o in outcomes.values())
            # held tasks went out one at a time as the thread freed, highest priority first
            order = sorted(outcomes, key=lambda p: outcomes[p]["started_at"])
            assert order == [-1, -2, -3], order
            keys = {str(t["key"]) for t in stream.data}
            assert any(f"gate{tag}1-" in k for k in keys)  # the stream saw the jobs that ran
            assert not any(f"gate{tag}4-" in k for k in keys)  # and never the killed one
            assert (executor.busy, executor.held) == (0, 0)
            # the outcomes came pushed by the worker (no fetch after the scheduler's word)
            assert executor.pushed >= 3, executor.pushed
        finally:
            executor.shutdown()


def _scheduler_tuning(dask_scheduler=None) -> dict:
    return {
        "worker_streams": [float(s.interval) for s in dask_scheduler.stream_comms.values()],
        "client_streams": {c: float(s.interval) for c, s in dask_scheduler.client_comms.items()},
        "plugin": "qiskit-rest-short-worker-streams" in dask_scheduler.plugins,
        "tick_ms": dask_scheduler.periodic_callbacks["tick"].callback_time,
        "monitor_ms": dask_scheduler.periodic_callbacks["monitor"].callback_time,
    }


def _process_tuning(dask_worker=None) -> dict:
    """On a worker or (``nanny=True``) a nanny: its periodic work and its stream's batching."""
    callbacks = dask_worker.periodic_callbacks
    stream = getattr(dask_worker, "batched_stream", None)
    return {
        "profiling": "profile" in callbacks or "profile-cycle" in callbacks,
        "tick_ms": callbacks["tick"].callback_time,
        "memory_ms": callbacks["memory_monitor"].callback_time,
        "stream": None if stream is None else float(stream.interval),
    }


def _page_faults_of_mid_size_arrays(dask_worker=None) -> int:
    """On a worker: minor page faults of 200 allocations of a 1 MB array (a 16-qubit state)."""
    import resource

    import numpy as np

    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(200):
        np.ones(2**17).sum()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_workers_reuse_mid_size_arrays_despite_the_nannys_malloc_setting(cluster):
    """The nanny's ``MALLOC_TRIM_THRESHOLD_`` would map and fault in every 1 MB array anew
    (~256 faults each); the preload's malloc settings let the heap reuse it."""
    _, client = cluster
    faults = client.run(_page_faults_of_mid_size_arrays)
    assert faults and all(n < 2000 for n in faults.values()), faults


def test_the_cluster_sends_at_once_and_keeps_its_diagnostics_off_the_cores(dask_server, cluster):
    """After the server connected (and, earlier in this module, a worker was restarted): the
    scheduler sends each worker and the server's client at once, every worker runs without the
    statistical profiler, and scheduler, nannies and workers check their loops once a second,
    memory twice a second (Dask: 20 ms, 100 ms): CPU the Aer runs get back."""
    _, client = cluster
    _job(dask_server, _submit(dask_server, "sampler", _sampler_params()))  # connected, in use
    deadline = time.monotonic() + 30  # nannies are quieted by the server's 1 s worker refresh
    while True:
        scheduler = client.run_on_scheduler(_scheduler_tuning)
        workers = client.run(_process_tuning)
        nannies = client.run(_process_tuning, nanny=True)
        if all(n["memory_ms"] == 500 for n in nannies.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(workers) == 2 and len(nannies) == 2
    assert scheduler["plugin"]
    assert scheduler["worker_streams"] and max(scheduler["worker_streams"]) <= 0.001
    # the server's client is one of the scheduler's clients: at least one stream is short
    assert min(scheduler["client_streams"].values()) <= 0.001
    assert scheduler["tick_ms"] == 1000 and scheduler["monitor_ms"] == 5000
    for info in workers.values():
        assert not info["profiling"]
        assert info["tick_ms"] == 1000 and info["memory_ms"] == 500
        assert info["stream"] <= 0.001
    for info in nannies.values():
        assert info["tick_ms"] == 1000 and info["memory_ms"] == 500
