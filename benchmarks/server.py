"""Reference-server benchmark: small-job round trip, throughput, server-side stage times.

Starts a server (or uses ``--url``/``--token``), then measures over HTTP with ``requests``:

* round trip of a small job (Bell, 1024 shots): ``POST jobs`` → ``GET jobs/{id}?wait=`` →
  ``GET jobs/{id}/results``; median over N runs, as a ratio to Qiskit Aer's own ``SamplerV2``
  running the same PUB in this process (the floor a remote call is compared with);
* jobs/second with 1, 4 and 8 concurrent clients;
* server-side seconds per stage (parse, simulate, encode) from ``GET jobs/{id}/metrics``.

Usage::

    python benchmarks/server.py [--quick] [--out results.json] [--url URL --token TOKEN]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import json
import os
import statistics
import sys
import time

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import reference_server  # noqa: E402

BELL = (
    'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] meas; h q[0]; cx q[0], q[1]; '
    "meas[0] = measure q[0]; meas[1] = measure q[1];"
)


def one_job(session: requests.Session, base: str, shots: int = 1024) -> tuple[float, str]:
    body = {
        "program_id": "sampler",
        "backend": "rest_simulator",
        "params": {"pubs": [[BELL, None, shots]], "version": 2, "support_qiskit": True},
    }
    t0 = time.perf_counter()
    r = session.post(f"{base}/jobs", json=body, timeout=60)
    r.raise_for_status()
    job_id = r.json()["id"]
    while True:
        job = session.get(
            f"{base}/jobs/{job_id}", params={"wait": 20, "exclude_params": "true"}, timeout=60
        ).json()
        if job["state"]["status"] in ("Completed", "Failed", "Cancelled"):
            break
    body_bytes = session.get(f"{base}/jobs/{job_id}/results", timeout=60).content
    elapsed = time.perf_counter() - t0
    assert job["state"]["status"] == "Completed" and body_bytes
    return elapsed, job_id


def aer_baseline(runs: int) -> float:
    from qiskit import QuantumCircuit
    from qiskit_aer.primitives import SamplerV2

    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure([0, 1], [0, 1])
    sampler = SamplerV2()
    sampler.run([qc], shots=1024).result()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sampler.run([qc], shots=1024).result()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def throughput(base: str, headers: dict, clients: int, jobs_per_client: int) -> float:
    def client(_: int) -> int:
        with requests.Session() as s:
            s.headers.update(headers)
            for _ in range(jobs_per_client):
                one_job(s, base)
        return jobs_per_client

    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(clients) as pool:
        done = sum(pool.map(client, range(clients)))
    return done / (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (under a minute)")
    parser.add_argument("--out", help="write the numbers as JSON here")
    parser.add_argument("--url", help="use this running server instead of starting one")
    parser.add_argument("--token", help="API token for --url")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    runs = 10 if args.quick else 40
    per_client = 3 if args.quick else 10

    with contextlib.ExitStack() as stack:
        if args.url:
            url, token = args.url.rstrip("/"), args.token or ""
        else:
            server = stack.enter_context(reference_server(workers=args.workers))
            url, token = server.url, server.token
        base = f"{url}/api/v1"
        headers = {"Authorization": f"apikey {token}", "Content-Type": "application/json"}
        session = requests.Session()
        session.headers.update(headers)
        for _ in range(3):  # warm up workers and caches
            one_job(session, base)
        trips, ids = [], []
        for _ in range(runs):
            elapsed, job_id = one_job(session, base)
            trips.append(elapsed)
            ids.append(job_id)
        stages: dict[str, list[float]] = {}
        for job_id in ids:
            metrics = session.get(f"{base}/jobs/{job_id}/metrics", timeout=30).json()
            for stage, secs in (metrics.get("stage_seconds") or {}).items():
                stages.setdefault(stage, []).append(float(secs))
        baseline = aer_baseline(runs)
        rates = {n: throughput(base, headers, n, per_client) for n in (1, 4, 8)}

    rt = statistics.median(trips)
    result = {
        "round_trip_median_s": rt,
        "round_trip_p90_s": sorted(trips)[int(0.9 * (len(trips) - 1))],
        "aer_samplerv2_in_process_median_s": baseline,
        "round_trip_ratio_to_aer": rt / baseline,
        "jobs_per_second": {str(k): v for k, v in rates.items()},
        "stage_median_s": {k: statistics.median(v) for k, v in stages.items()},
        "runs": runs,
        "workers": args.workers,
    }
    print("| metric | value |")
    print("|---|---|")
    print(f"| small-job round trip, median (Bell, 1024 shots) | {rt * 1e3:.1f} ms |")
    print(f"| round trip p90 | {result['round_trip_p90_s'] * 1e3:.1f} ms |")
    print(f"| Aer SamplerV2 in-process (baseline) | {baseline * 1e3:.2f} ms |")
    print(f"| round trip / baseline | {rt / baseline:.1f}x |")
    for n, rate in rates.items():
        print(f"| jobs/s, {n} concurrent client(s) | {rate:.1f} |")
    for stage, secs in result["stage_median_s"].items():
        print(f"| server stage `{stage}`, median | {secs * 1e3:.2f} ms |")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
