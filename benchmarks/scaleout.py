"""Scale-out benchmark: the Dask executor with 1 and 2 workers, and its overhead per small job.

Two measurements, each a ratio against a baseline measured in the same run:

1. **Throughput of PUB-parallel work.** Several independent multi-PUB sampler jobs (each PUB a
   16-qubit circuit of ~0.1–0.3 s of Aer time) are handed at once to the Dask executor on a
   ``distributed.LocalCluster`` of 1, then 2 worker processes (one thread each, our preload),
   and to the local worker pool of 1, then 2 processes (the baseline: what this machine gives
   the same work with plain processes, at the same time). Without ``--quick`` the same jobs also
   go through a reference server with ``--executor dask://…`` (HTTP, store, dispatcher), and
   through one with the local executor of 1, then 2 processes (that path's baseline). The
   figure is the wall time from the first hand-off to the last outcome and the speed-up
   ``t(1 worker) / t(2 workers)`` (goal ≥ 1.8 on 2 cores). The in-process rows also give the
   CPU this process spent per job (the client, and for Dask the LocalCluster's scheduler and
   nannies): on a machine shared with other work the wall times drift, this does not, and
   every millisecond of it is taken from the workers when they fill the cores.
2. **Overhead per small job.** One Bell-state job (100 shots) at a time, submit → long-poll →
   results, through a server with the local executor (1 worker process) and through one with
   the Dask executor (1 Dask worker); the overhead is the difference of the medians (goal
   ≤ 5 ms). The same comparison is made in-process on the executors alone (``run_job`` of a
   prepared task → its outcome), which leaves out HTTP and the store.

Usage::

    python benchmarks/scaleout.py [--quick] [--jobs N] [--pubs P] [--small S] [--out scaleout.json]

``--quick`` keeps the run under a minute (fewer jobs and repetitions). The measurements alternate
(1 and 2 workers; local and Dask jobs) so that load from other processes on a shared machine
weighs on both sides of each ratio alike; the wall time reported is the median of the runs.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, reference_server, write_json  # noqa: E402

PRELOAD = "qiskit_rest_provider.server.execution.dask_preload"


def _cluster(n_workers: int) -> Any:
    import distributed

    return distributed.LocalCluster(
        n_workers=n_workers,
        processes=True,
        threads_per_worker=1,
        dashboard_address=None,
        preload=[PRELOAD],
        env={"QISKIT_REST_AER_THREADS": "1"},
    )


def _layered(n: int, layers: int) -> Any:
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(n)
    for layer in range(layers):
        for i in range(n):
            qc.rx(0.1 * (i + layer + 1), i)
        for i in range(layer % 2, n - 1, 2):
            qc.cx(i, i + 1)
    qc.measure_all()
    return qc


def _multi_pub_params(pubs: int, seed: int) -> dict:
    from qiskit.primitives.containers.sampler_pub import SamplerPub

    from qiskit_rest_provider.wire.pubs import encode_sampler_params

    circuits = [_layered(16, 40 + 4 * k) for k in range(pubs)]
    return encode_sampler_params(
        [SamplerPub.coerce(c, shots=256) for c in circuits],
        options={"simulator": {"seed_simulator": seed}},
    )


def _bell_params() -> dict:
    from qiskit import QuantumCircuit
    from qiskit.primitives.containers.sampler_pub import SamplerPub

    from qiskit_rest_provider.wire.pubs import encode_sampler_params

    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return encode_sampler_params([SamplerPub.coerce(qc, shots=100)])


def _headers(server: Any) -> dict[str, str]:
    return {"Authorization": f"apikey {server.token}", "Content-Type": "application/json"}


def _run_job(server: Any, http: requests.Session, params: dict) -> float:
    """Submit, long-poll until final, fetch results; returns the wall seconds."""
    base = f"{server.url}/api/v1"
    started = time.perf_counter()
    body = {"program_id": "sampler", "backend": "rest_simulator", "params": params}
    r = http.post(f"{base}/jobs", headers=_headers(server), json=body, timeout=60)
    r.raise_for_status()
    job_id = r.json()["id"]
    while True:
        r = http.get(f"{base}/jobs/{job_id}", params={"wait": 30}, headers=_headers(server))
        r.raise_for_status()
        state = r.json()["state"]["status"]
        if state in ("Completed", "Failed", "Cancelled"):
            break
    if state != "Completed":
        raise RuntimeError(f"job {job_id} ended {state}: {r.json()['state']}")
    http.get(
        f"{base}/jobs/{job_id}/results", headers=_headers(server), timeout=60
    ).raise_for_status()
    return time.perf_counter() - started


def throughput(n_workers: int, jobs: int, pubs: int, kind: str = "dask") -> dict:
    """Wall time of ``jobs`` multi-PUB jobs submitted at once to a server.

    ``kind`` ``"dask"``: a server with ``--executor dask://…`` on a LocalCluster of
    ``n_workers``; ``"local"``: a server with ``--workers n_workers`` (the baseline: the same
    server work, HTTP, admission and store, next to plain worker processes).
    """
    with contextlib.ExitStack() as stack:
        if kind == "dask":
            cluster = stack.enter_context(_cluster(n_workers))
            address = cluster.scheduler_address.replace("tcp://", "dask://")
            server = stack.enter_context(reference_server(extra_args=["--executor", address]))
        else:
            server = stack.enter_context(reference_server(workers=n_workers))
        params = [_multi_pub_params(pubs, seed) for seed in range(jobs)]
        with requests.Session() as http:  # warm: the first job pays imports on the path
            for _ in range(n_workers):
                _run_job(server, http, _bell_params())
        started = time.perf_counter()
        with cf.ThreadPoolExecutor(jobs) as pool:

            def one(p: dict) -> float:
                with requests.Session() as http:
                    return _run_job(server, http, p)

            latencies = list(pool.map(one, params))
        wall = time.perf_counter() - started
    return {
        "workers": n_workers,
        "jobs": jobs,
        "pubs_per_job": pubs,
        "wall_s": wall,
        "jobs_per_s": jobs / wall,
        "median_job_s": statistics.median(latencies),
    }


def executor_throughput(kind: str, n_workers: int, jobs: int, pubs: int) -> dict:
    """In-process: wall time of ``jobs`` prepared multi-PUB jobs on ``n_workers`` workers.

    ``kind`` ``"local"`` is the local worker pool (the machine's own ceiling for this work:
    plain processes, no cluster), ``"dask"`` the Dask executor on a LocalCluster.
    """
    import orjson

    from qiskit_rest_provider.server.backends.catalog import BackendCatalog
    from qiskit_rest_provider.server.execution.base import ExecutionTask
    from qiskit_rest_provider.server.execution.dask import DaskExecutor
    from qiskit_rest_provider.server.execution.pool import LocalProcessExecutor
    from qiskit_rest_provider.server.jobs.admission import prepare_job

    backend = BackendCatalog.load().get("rest_simulator")
    preps = [
        prepare_job("sampler", orjson.loads(orjson.dumps(_multi_pub_params(pubs, k))), backend)
        for k in range(jobs)
    ]

    cpu = {"s": 0.0}  # this process' CPU: the client, and with Dask the LocalCluster scheduler

    def run(executor: Any) -> float:
        warm = ExecutionTask(job_id="w", program_id="sampler", backend="rest_simulator")
        warm.prepared = preps[0]
        for f in [executor.run_job(warm) for _ in range(n_workers)]:
            f.result(timeout=300)
        cpu0 = time.process_time()
        started = time.perf_counter()
        futures = [
            executor.run_job(
                ExecutionTask(
                    job_id=f"t{k}", program_id="sampler", backend="rest_simulator", prepared=p
                )
            )
            for k, p in enumerate(preps)
        ]
        for f in futures:
            assert f.result(timeout=600)["ok"]
        cpu["s"] = time.process_time() - cpu0
        return time.perf_counter() - started

    if kind == "local":
        pool = LocalProcessExecutor(n_workers)
        try:
            wall = run(pool)
        finally:
            pool.shutdown()
    else:
        with _cluster(n_workers) as cluster:
            dask = DaskExecutor(cluster.scheduler_address)
            try:
                dask.warm_up(wait=True, timeout=120)
                deadline = time.monotonic() + 120
                while dask.capacity < n_workers and time.monotonic() < deadline:
                    time.sleep(0.1)
                wall = run(dask)
            finally:
                dask.shutdown()
    return {
        "path": f"{kind} executor",
        "workers": n_workers,
        "jobs": jobs,
        "wall_s": wall,
        "server_cpu_ms_per_job": cpu["s"] / jobs * 1000,
    }


def small_job_latency(dask_address: str, repeats: int) -> dict:
    """Median submit → results seconds of a Bell job, local vs Dask executor, interleaved.

    Both servers run at once and the jobs alternate between them, so a load change on a shared
    machine hits both sides alike.
    """
    with (
        reference_server(workers=1) as local,
        reference_server(extra_args=["--executor", dask_address]) as dask,
    ):
        params = _bell_params()
        times: dict[str, list[float]] = {"local": [], "dask": []}
        with requests.Session() as http:
            for _ in range(3):  # warm-up
                _run_job(local, http, params)
                _run_job(dask, http, params)
            for _ in range(repeats):
                times["local"].append(_run_job(local, http, params))
                times["dask"].append(_run_job(dask, http, params))
    return {name: statistics.median(values) for name, values in times.items()}


def executor_overhead(repeats: int) -> dict:
    """In-process: median ``run_job(task).result()`` of the local pool and the Dask executor."""
    import orjson

    from qiskit_rest_provider.server.backends.catalog import BackendCatalog
    from qiskit_rest_provider.server.execution.base import ExecutionTask
    from qiskit_rest_provider.server.execution.dask import DaskExecutor
    from qiskit_rest_provider.server.execution.pool import LocalProcessExecutor
    from qiskit_rest_provider.server.jobs.admission import prepare_job

    params = _bell_params()
    backend = BackendCatalog.load().get("rest_simulator")
    prepared = prepare_job("sampler", orjson.loads(orjson.dumps(params)), backend)

    def task(k: int) -> ExecutionTask:
        return ExecutionTask(
            job_id=f"bench{k}", program_id="sampler", backend="rest_simulator", prepared=prepared
        )

    def once(executor: Any, k: int) -> float:
        t0 = time.perf_counter()
        out = executor.run_job(task(k)).result(timeout=120)
        elapsed = time.perf_counter() - t0
        assert out["ok"], out
        time.sleep(0.005)  # jobs arrive apart, as from clients (not back to back)
        return elapsed

    local = LocalProcessExecutor(1)
    with _cluster(1) as cluster:
        dask = DaskExecutor(cluster.scheduler_address)
        try:
            dask.warm_up(wait=True, timeout=120)
            for k in range(5):
                once(local, k)
                once(dask, k)
            local_t, dask_t = [], []
            for k in range(repeats):  # interleaved: a load change hits both alike
                local_t.append(once(local, 1000 + k))
                dask_t.append(once(dask, 1000 + k))
        finally:
            dask.shutdown()
            local.shutdown()
    local_s, dask_s = statistics.median(local_t), statistics.median(dask_t)
    return {"local_s": local_s, "dask_s": dask_s, "overhead_ms": (dask_s - local_s) * 1000}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a run under a minute")
    parser.add_argument("--jobs", type=int, default=None, help="multi-PUB jobs per run")
    parser.add_argument("--pubs", type=int, default=4, help="PUBs per job")
    parser.add_argument("--small", type=int, default=None, help="small jobs per latency median")
    parser.add_argument("--repeats", type=int, default=3, help="throughput runs per size")
    parser.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = parser.parse_args(argv)
    # one Aer thread per worker on both paths (as `serve` and the worker preload set it): the
    # comparison is of executors, not of OpenMP oversubscription
    os.environ.setdefault("QISKIT_REST_AER_THREADS", "1")
    jobs = args.jobs or (4 if args.quick else 8)
    small = args.small or (15 if args.quick else 60)

    reps = 1 if args.quick else args.repeats
    walls: dict[tuple[str, int], list[float]] = {}
    cpus: dict[tuple[str, int], list[float]] = {}  # load-independent: CPU outside the workers
    for _ in range(reps):  # alternating sizes and paths: load drift hits every side alike
        for n in (1, 2):
            for kind in ("local", "dask"):
                row = executor_throughput(kind, n, jobs, args.pubs)
                walls.setdefault((row["path"], n), []).append(row["wall_s"])
                cpus.setdefault((row["path"], n), []).append(row["server_cpu_ms_per_job"])
            if not args.quick:
                for kind in ("local", "dask"):
                    row = throughput(n, jobs, args.pubs, kind)
                    path = f"server, {kind} executor (HTTP)"
                    walls.setdefault((path, n), []).append(row["wall_s"])
    runs = []
    for (path, n), values in walls.items():
        wall = statistics.median(values)
        row = {"path": path, "workers": n, "jobs": jobs, "pubs_per_job": args.pubs}
        row |= {"repeats": len(values), "wall_s": wall, "jobs_per_s": jobs / wall}
        if (path, n) in cpus:
            row["server_cpu_ms_per_job"] = statistics.median(cpus[(path, n)])
        runs.append(row)
    runs.sort(key=lambda r: (r["path"], r["workers"]))
    wall_of = {(r["path"], r["workers"]): r["wall_s"] for r in runs}
    speedups = {path: wall_of[(path, 1)] / wall_of[(path, 2)] for path, n in wall_of if n == 1}
    speedup = speedups["dask executor"]
    with _cluster(1) as cluster:
        e2e = small_job_latency(cluster.scheduler_address.replace("tcp://", "dask://"), small)
    local_e2e, dask_e2e = e2e["local"], e2e["dask"]
    inproc = executor_overhead(small)

    print(f"## Scale-out on {os.cpu_count()} cores\n")
    print(
        markdown_table(
            runs,
            [
                "path",
                "workers",
                "jobs",
                "pubs_per_job",
                "repeats",
                "wall_s",
                "jobs_per_s",
                "server_cpu_ms_per_job",
            ],
        )  # fmt: skip
    )
    print()
    for path, value in speedups.items():
        print(f"- speed-up 2 workers / 1 worker, {path}: **{value:.2f}x**")
    print(
        "\n(goal >= 1.8x for the Dask executor; the local executor's figure is what this "
        "machine delivers for the same work with plain processes at the same time)\n"
    )
    rows = [
        {
            "path": "end to end (HTTP + store), Bell job",
            "local_ms": local_e2e * 1000,
            "dask_ms": dask_e2e * 1000,
            "overhead_ms": (dask_e2e - local_e2e) * 1000,
        },
        {
            "path": "executor alone, run_job -> outcome",
            "local_ms": inproc["local_s"] * 1000,
            "dask_ms": inproc["dask_s"] * 1000,
            "overhead_ms": inproc["overhead_ms"],
        },
    ]
    print(markdown_table(rows, ["path", "local_ms", "dask_ms", "overhead_ms"]))
    print("\n(overhead goal <= 5 ms per small job; medians)")
    write_json(
        args.out,
        {
            "cores": os.cpu_count(),
            "throughput": runs,
            "speedup": speedup,
            "speedups": speedups,
            "small_job": rows,
            "quick": args.quick,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
