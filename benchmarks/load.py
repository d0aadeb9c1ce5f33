"""Load benchmark: many small jobs from several client threads through one reference server.

Starts a reference server (its own temp data dir, ``--workers`` worker processes), then 8 client
threads (each its own :class:`~qiskit_rest_provider.ProviderService` and ``SamplerV2``) submit
1,000 Bell-state jobs of 100 shots in total and wait for each result. Reports:

* whether every job completed exactly once (server job count == submitted, ids unique, each
  result has its 100 shots of ``00``/``11``): none lost, none duplicated;
* submit -> result latency p50 / p90 / p99 / max, and jobs per second overall;
* peak RSS of the server process tree (server + workers, sampled from ``/proc`` or psutil) and
  of the server process alone, at start and at the end (memory stays bounded);
* **under attack** (issue 15; ``benchmarks/_attacks.py``): on a second server, another
  instance's ("B's") Bell job p50/p99 while each attack on the edge runs (wrong key + huge body,
  trickled body, half-open heads, inflation bomb, 583 KiB OpenQASM programs, unknown-params
  padding, failed-login flood, odd queries), as a ratio to B's idle p50 measured first, with the
  API process's peak memory growth during the attack. ``--skip-attack`` leaves it out.

Usage::

    python benchmarks/load.py [--quick] [--jobs N] [--threads T] [--workers W] [--skip-attack]
                              [--out load.json]

``--quick`` runs 100 jobs and the short form of each attack (CI / ``tox -e bench``).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _attacks import ATTACKS, SERVER_ARGS, bell_latency, measure  # noqa: E402
from _common import markdown_table, reference_server, write_json  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


# ------------------------------------------------------------------------------ server
def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _rss(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
        return int(fields[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def tree_rss(pid: int) -> tuple[int, int]:
    """(RSS of ``pid`` alone, RSS of ``pid`` and all its descendants), in bytes."""
    todo, total, own = [pid], 0, _rss(pid)
    while todo:
        p = todo.pop()
        total += _rss(p)
        todo.extend(_children(p))
    return own, total


class RssSampler(threading.Thread):
    """Samples the server's RSS every ``interval`` seconds; keeps the peaks."""

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_own = self.peak_tree = 0
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            own, tree = tree_rss(self.pid)
            self.peak_own, self.peak_tree = max(self.peak_own, own), max(self.peak_tree, tree)
            self.stop_event.wait(self.interval)


# ------------------------------------------------------------------------------ clients
def bell():
    """The 2-qubit Bell circuit with measurements."""
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure([0, 1], [0, 1])
    return qc


def run_clients(
    url: str, token: str, crn: str, jobs: int, threads: int, shots: int, tag: str
) -> dict[str, Any]:
    """Submit ``jobs`` jobs from ``threads`` threads; each waits for its results in turn."""
    from qiskit_rest_provider import ProviderService
    from qiskit_rest_provider.primitives import SamplerV2

    latencies: list[float] = []
    ids: list[str] = []
    errors: list[str] = []
    bad_results: list[str] = []
    lock = threading.Lock()
    counter = iter(range(jobs))
    circuit = bell()

    def client() -> None:
        service = ProviderService(url=url, token=token, instance=crn)
        sampler = SamplerV2(
            mode=service.backend("rest_simulator"), options={"environment": {"job_tags": [tag]}}
        )
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            t0 = time.perf_counter()
            try:
                job = sampler.run([circuit], shots=shots)
                result = job.result(timeout=600)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                continue
            elapsed = time.perf_counter() - t0
            counts = result[0].data.c.get_counts()
            with lock:
                latencies.append(elapsed)
                ids.append(job.job_id())
                if sum(counts.values()) != shots or not set(counts) <= {"00", "11"}:
                    bad_results.append(job.job_id())

    pool = [threading.Thread(target=client) for _ in range(threads)]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - t0
    return {
        "latencies": latencies,
        "ids": ids,
        "errors": errors,
        "bad_results": bad_results,
        "wall": wall,
    }


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def server_job_count(url: str, token: str, tag: str | None = None) -> tuple[int, set[str]]:
    """Job count (and ids) the server holds, optionally for one tag."""
    headers = {"Authorization": f"apikey {token}"}
    ids: set[str] = set()
    count = None
    offset = 0
    while True:
        params: dict[str, Any] = {"limit": 1000, "offset": offset}
        if tag:
            params["tags"] = tag
        body = requests.get(f"{url}/api/v1/jobs", headers=headers, params=params, timeout=60).json()
        count = body["count"]
        ids.update(j["id"] for j in body["jobs"])
        offset += len(body["jobs"])
        if not body["jobs"] or offset >= count:
            return count, ids


def under_attack(workers: int, quick: bool) -> list[dict[str, Any]]:
    """B's Bell latency idle, then during each attack of issue 15 (a fresh server)."""
    other = "bench-b-" + secrets.token_urlsafe(12)
    extra = [*SERVER_ARGS, "--extra-token", f"{other}:other/team/project"]
    with reference_server(workers=workers, prefix="qrp-attack-", extra_args=extra) as server:
        for _ in range(3):  # warm up the importers and the worker pool
            bell_latency(server.url, other)
        pid = server.process.pid
        rows = [measure(server.url, server.token, other, pid, None, quick)]
        rows += [measure(server.url, server.token, other, pid, name, quick) for name in ATTACKS]
    idle = rows[0]["bell_p50_ms"]
    for row in rows:
        row["p50_vs_idle"] = row["bell_p50_ms"] / idle if idle else float("nan")
    return rows


def main() -> int:
    """Run the benchmark and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 jobs instead of 1,000")
    parser.add_argument("--jobs", type=int, default=None, help="number of jobs (default 1000)")
    parser.add_argument("--threads", type=int, default=8, help="client threads")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--shots", type=int, default=100)
    parser.add_argument("--skip-attack", action="store_true", help="leave out the attack rows")
    parser.add_argument("--out", help="write the numbers as JSON here")
    args = parser.parse_args()
    jobs = args.jobs or (100 if args.quick else 1000)

    with reference_server(workers=args.workers, prefix="qrp-load-") as server:
        url, token, crn, proc = server.url, server.token, server.instance_crn, server.process
        time.sleep(1.0)  # let the worker pool warm up
        own0, tree0 = tree_rss(proc.pid)
        sampler = RssSampler(proc.pid)
        sampler.start()
        tag = f"load-{os.getpid()}"
        out = run_clients(url, token, crn, jobs, args.threads, args.shots, tag)
        sampler.stop_event.set()
        sampler.join()
        own1, tree1 = tree_rss(proc.pid)
        count, server_ids = server_job_count(url, token)

    lat = out["latencies"]
    mib = 1024 * 1024
    numbers = {
        "jobs_requested": jobs,
        "client_threads": args.threads,
        "server_workers": args.workers,
        "shots": args.shots,
        "completed": len(lat),
        "client_errors": len(out["errors"]),
        "wrong_results": len(out["bad_results"]),
        "server_job_count": count,
        "unique_ids": len(set(out["ids"])),
        "lost": len(set(out["ids"]) - server_ids) + (jobs - len(lat)),
        "duplicated": count - len(set(out["ids"])),
        "wall_s": out["wall"],
        "jobs_per_s": len(lat) / out["wall"] if out["wall"] else 0.0,
        "latency_p50_ms": percentile(lat, 50) * 1000,
        "latency_p90_ms": percentile(lat, 90) * 1000,
        "latency_p99_ms": percentile(lat, 99) * 1000,
        "latency_max_ms": max(lat) * 1000 if lat else float("nan"),
        "latency_mean_ms": statistics.fmean(lat) * 1000 if lat else float("nan"),
        "server_rss_start_mib": own0 / mib,
        "server_rss_end_mib": own1 / mib,
        "server_rss_peak_mib": sampler.peak_own / mib,
        "tree_rss_start_mib": tree0 / mib,
        "tree_rss_end_mib": tree1 / mib,
        "tree_rss_peak_mib": sampler.peak_tree / mib,
        "first_errors": out["errors"][:5],
    }
    ok = (
        numbers["completed"] == jobs
        and numbers["client_errors"] == 0
        and numbers["wrong_results"] == 0
        and numbers["server_job_count"] == jobs
        and numbers["unique_ids"] == jobs
    )
    numbers["all_completed_once"] = ok
    rows = [{"metric": k, "value": v} for k, v in numbers.items() if k != "first_errors"]
    print(markdown_table(rows, ["metric", "value"]))
    if out["errors"]:
        print("first errors:", *out["errors"][:5], sep="\n  ")
    if not args.skip_attack:
        numbers["under_attack"] = under_attack(args.workers, args.quick)
        print()
        print(markdown_table(numbers["under_attack"], [
            "attack", "answers", "bells", "bell_p50_ms", "bell_p99_ms", "p50_vs_idle",
            "api_peak_growth_mib",
        ]))  # fmt: skip
    write_json(args.out, numbers)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
