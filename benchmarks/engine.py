"""Execution-engine benchmark: device-sized noisy jobs through the server, against in-process runs.

Figures (issue 11), each measured in this run next to its baselines:

* **127-qubit noisy GHZ** on ``rest_hex_127q``, 4096 shots (goal: under 60 s). The server picks
  the stabilizer method with the device noise Pauli-twirled. Baselines: IBM's local testing mode
  (qiskit-ibm-runtime ``SamplerV2`` on the 127-qubit ``FakeSherbrooke``, i.e.
  ``AerSimulator.from_backend``) on the same GHZ transpiled for that device, bounded at
  ``--baseline-timeout`` seconds (its error or time-out is its result); and the in-process floor:
  Aer on this process with the same circuit, method and noise model as the server (what the
  server costs over Aer itself).
* **efficient_su2(27, reps=1)** noisy on ``rest_hex_27q``, 2000 shots (goal: under 120 s). The
  server picks a matrix product state. Baselines: local testing mode on ``FakeKolkataV2``
  (27 qubits; Aer's automatic method: statevector trajectories), bounded likewise; the in-process
  floor as above.
* **peak RSS** of the server and its worker processes over the run (goal: under 8 GiB), sampled
  every 0.1 s from ``/proc``, and of each baseline's process.
* **small jobs** (Bell, 1024 shots, through this package's ``SamplerV2`` against the default
  server): round trip p50 (goal: 10 ms) and p99 over serial runs; jobs/s with 8 client threads,
  each its own service (goal: 100/s); and instance B's Bell latency p99 while instance A keeps
  100 small jobs pending (a feeder tops A's queue up; goal: 1 s), next to B's p99 on an idle
  server. Baseline of each: Qiskit Aer's ``SamplerV2`` in this process on the same circuit
  (serially, and with 8 threads for the rate).

Baselines run in child processes so that a time-out can be enforced and their memory measured.
Each heavy figure is run once (a median of one): at these sizes the spread between runs is small
next to the ratios.

Usage::

    python benchmarks/engine.py [--quick] [--small-only] [--out results.json] [--workers 2]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import markdown_table, reference_server, write_json  # noqa: E402

GIB = 1024**3


# ----------------------------------------------------------------------------- memory
def _tree(root: int) -> list[int]:
    """``root`` and all its descendants (Linux ``/proc``)."""
    parents: dict[int, list[int]] = collections.defaultdict(list)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents[ppid].append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(parents.get(pid, ()))
    return out


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class PeakRss:
    """Samples the summed RSS of a process tree every ``interval`` seconds; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(_rss(p) for p in _tree(self.pid)))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


# ----------------------------------------------------------------------------- circuits
def ghz_for(target: Any, n: int) -> Any:
    """GHZ over ``n`` connected qubits (BFS over the coupling map), measured, ISA for ``target``."""
    from qiskit import QuantumCircuit, transpile

    coupling = target.build_coupling_map()
    coupling.make_symmetric()  # directed (ECR) devices: BFS both ways
    qc = QuantumCircuit(target.num_qubits, n)
    qc.h(0)
    order, seen, queue = [0], {0}, collections.deque([0])
    while queue and len(seen) < n:
        u = queue.popleft()
        for v in coupling.neighbors(u):
            if v not in seen and len(seen) < n:
                seen.add(v)
                order.append(v)
                qc.cx(u, v)
                queue.append(v)
    qc.measure(order, range(n))
    layout = list(range(target.num_qubits))
    return transpile(qc, target=target, optimization_level=1, initial_layout=layout)


def su2_for(target: Any) -> Any:
    """``efficient_su2(27, reps=1)`` with fixed random angles, measured, ISA for ``target``."""
    import numpy as np
    from qiskit import transpile
    from qiskit.circuit.library import efficient_su2

    qc = efficient_su2(27, reps=1)
    qc.measure_all()
    angles = np.random.default_rng(2026).uniform(0, 2 * np.pi, qc.num_parameters)
    qc = qc.assign_parameters(angles)
    return transpile(qc, target=target, optimization_level=1, seed_transpiler=1)


def _fake(name: str) -> Any:
    from qiskit_ibm_runtime import fake_provider

    return getattr(fake_provider, name)()


# ----------------------------------------------------------------------------- child runs
def child(kind: str, shots: int) -> dict[str, Any]:
    """One baseline in this (child) process; prints its result as JSON."""
    import resource

    t0 = time.perf_counter()
    if kind.startswith("ltm-"):
        from qiskit_ibm_runtime import SamplerV2

        fake = _fake("FakeSherbrooke" if kind == "ltm-ghz127" else "FakeKolkataV2")
        circuit = ghz_for(fake.target, 127) if kind == "ltm-ghz127" else su2_for(fake.target)
        import logging

        aer_errors: list[str] = []  # Aer logs why a simulation failed; the primitive may not say

        class _Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                aer_errors.append(" ".join(record.getMessage().split())[-160:])

        logging.getLogger("qiskit_aer").addHandler(_Keep(logging.WARNING))
        t0 = time.perf_counter()
        try:
            result = SamplerV2(mode=fake).run([circuit], shots=shots).result()
            ok, note = (
                True,
                f"{result[0].data.c.num_shots if kind == 'ltm-ghz127' else shots} shots",
            )
        except Exception as exc:  # noqa: BLE001 - the baseline's failure is its result
            ok, note = False, f"{type(exc).__name__}: {str(exc)[:120]}"
            if aer_errors:
                note += f" (Aer: {aer_errors[-1]})"
    else:  # the in-process floor: the server's own method and noise model, no REST, no worker
        from qiskit_aer import AerSimulator

        from qiskit_rest_provider.server.backends.catalog import BackendCatalog
        from qiskit_rest_provider.server.execution.simulators import (
            active_qubits,
            pauli_noise_model,
            restrict_noise_model,
        )

        name = "rest_hex_127q" if kind == "floor-ghz127" else "rest_hex_27q"
        backend = BackendCatalog.load().get(name)
        circuit = (
            ghz_for(backend.target, 127) if kind == "floor-ghz127" else su2_for(backend.target)
        )
        model = restrict_noise_model(backend.noise_model, active_qubits([circuit]))
        if kind == "floor-ghz127":
            sim = AerSimulator(method="stabilizer", noise_model=pauli_noise_model(model))
        else:
            sim = AerSimulator(method="matrix_product_state", noise_model=model)
        t0 = time.perf_counter()
        result = sim.run(circuit, shots=shots, memory=True).result()
        ok, note = bool(result.success), str(result.results[0].metadata.get("method"))
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"ok": ok, "seconds": seconds, "note": note, "peak_rss_bytes": peak}


def run_child(kind: str, shots: int, timeout: float) -> dict[str, Any]:
    """Run :func:`child` in a subprocess, killed after ``timeout`` seconds."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", kind, "--shots", str(shots)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), *sys.path[:1]])}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    with PeakRss(proc.pid) as rss:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return {
                "ok": False,
                "seconds": None,
                "note": f"timed out after {timeout:.0f} s",
                "peak_rss_bytes": rss.peak,
            }
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (err or out).strip().splitlines()[-1:] or [""]
        return {
            "ok": False,
            "seconds": time.perf_counter() - t0,
            "note": f"exit {proc.returncode}: {tail[0][:160]}",
            "peak_rss_bytes": rss.peak,
        }
    result = json.loads(lines[-1])
    result["peak_rss_bytes"] = max(int(result.get("peak_rss_bytes") or 0), rss.peak)
    return result


# ----------------------------------------------------------------------------- the server
def server_run(backend: Any, circuit: Any, shots: int) -> dict[str, Any]:
    from qiskit_rest_provider import SamplerV2

    sampler = SamplerV2(mode=backend)
    t0 = time.perf_counter()
    result = sampler.run([circuit], shots=shots).result()
    seconds = time.perf_counter() - t0
    meta = result.metadata.get("simulator") or {}
    return {"ok": True, "seconds": seconds, "method": meta.get("method"), "result": result}


# ----------------------------------------------------------------------------- small jobs
#: The second instance of the small-job figures (``--extra-token``): instance B.
_B_INSTANCE = "bench/b/main"


def bell_circuit() -> Any:
    """The 2-qubit Bell circuit, measured (already ISA for ``rest_simulator``: h, cx)."""
    from qiskit import QuantumCircuit

    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure([0, 1], [0, 1])
    return qc


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (nearest rank) of ``values``; ``None`` when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def _latencies(run_one: Any, count: int, warm: int = 5) -> list[float]:
    for _ in range(warm):
        run_one()
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        run_one()
        out.append(time.perf_counter() - t0)
    return out


def _rate(make_run_one: Any, jobs: int, threads: int) -> float:
    """Jobs per second with ``threads`` clients (each its own ``make_run_one()``) doing ``jobs``."""
    left = iter(range(jobs))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def client(run_one: Any) -> None:
        while True:
            with lock:
                if next(left, None) is None:
                    return
            try:
                run_one()
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    runners = [make_run_one() for _ in range(threads)]
    for run_one in runners:  # warm each client (connections, backend target)
        run_one()
    pool = [threading.Thread(target=client, args=(r,)) for r in runners]
    t0 = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} small job(s) failed: {errors[0]!r}")
    return jobs / wall


def _check_bell(result: Any) -> None:
    """The same check of every Bell result, ours and Aer's: 1024 shots, each ``00`` or ``11``.

    Vectorized on the packed bits (one byte per shot: 0 or 3), so that it costs both sides the
    same few microseconds; ``get_counts`` would add Qiskit's per-shot Python loop (~0.6 ms).
    """
    import numpy as np

    bits = result[0].data.c
    assert bits.num_shots == 1024, bits.num_shots
    packed = bits.array[:, -1]
    assert bool(np.all((packed == 0) | (packed == 3))), "a Bell shot other than 00 or 11"


def _aer_run_one() -> Any:
    from qiskit_aer.primitives import SamplerV2 as AerSampler

    sampler, circuit = AerSampler(), bell_circuit()

    def run_one() -> None:
        _check_bell(sampler.run([circuit], shots=1024).result())

    return run_one


def _ours_run_one(url: str, token: str, instance: str | None) -> Any:
    from qiskit_rest_provider import ProviderService
    from qiskit_rest_provider.primitives import SamplerV2

    service = ProviderService(url=url, token=token, instance=instance)
    sampler, circuit = SamplerV2(mode=service.backend("rest_simulator")), bell_circuit()

    def run_one() -> None:
        _check_bell(sampler.run([circuit], shots=1024).result())

    return run_one


class _QueueFeeder:
    """Keeps ``depth`` small jobs of one instance pending (Queued or Running) until stopped.

    ``threads`` submitters each read the pending count and top it up; ``min_pending`` is the
    least count seen once the queue first reached ``depth`` (what B's jobs really waited behind).
    """

    def __init__(self, base: str, token: str, depth: int, threads: int = 8) -> None:
        self.base, self.token, self.depth = base, token, depth
        self.stop_event, self.ready = threading.Event(), threading.Event()
        self.submitted, self.min_pending = 0, None
        self._lock = threading.Lock()
        qasm = (
            'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] c; h q[0]; cx q[0], q[1];'
            " c[0] = measure q[0]; c[1] = measure q[1];"
        )
        self.body = {
            "program_id": "sampler",
            "backend": "rest_simulator",
            "params": {"pubs": [[qasm, None, 1024]], "version": 2, "support_qiskit": True},
        }
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self.stop_event.set()
        for t in self._threads:
            t.join(60)

    def _run(self) -> None:
        import requests

        with requests.Session() as http:
            http.headers.update({"Authorization": f"apikey {self.token}"})
            while not self.stop_event.is_set():
                r = http.get(
                    f"{self.base}/jobs", params={"pending": "true", "limit": 0}, timeout=60
                )
                r.raise_for_status()
                pending = int(r.json()["count"])
                with self._lock:
                    if pending >= self.depth:
                        self.ready.set()
                    if self.ready.is_set():
                        seen = self.min_pending
                        self.min_pending = pending if seen is None else min(seen, pending)
                if pending >= self.depth:
                    self.stop_event.wait(0.01)
                    continue
                for _ in range(min(20, self.depth - pending)):
                    http.post(f"{self.base}/jobs", json=self.body, timeout=60).raise_for_status()
                    with self._lock:
                        self.submitted += 1


def small_jobs(workers: int, quick: bool) -> dict[str, Any]:
    """The small-job figures: Bell round trip, throughput with 8 clients, B's latency behind A."""
    runs, jobs, b_runs, depth = (40, 100, 20, 100) if quick else (200, 500, 50, 100)
    token_b = "bench-b-" + os.urandom(9).hex()
    aer_latency = _latencies(_aer_run_one(), runs)
    aer_rate = _rate(_aer_run_one, jobs, 8)
    with reference_server(
        workers=workers, extra_args=["--extra-token", f"{token_b}:{_B_INSTANCE}"]
    ) as server:
        a = _ours_run_one(server.url, server.token, server.instance_crn)
        latency = _latencies(a, runs)
        rate = _rate(lambda: _ours_run_one(server.url, server.token, server.instance_crn), jobs, 8)
        b = _ours_run_one(server.url, token_b, None)
        b_idle = _latencies(b, b_runs)
        feeder = _QueueFeeder(f"{server.url}/api/v1", server.token, depth)
        feeder.start()
        feeder.ready.wait(60)
        try:
            with feeder._lock:  # what B waits behind from now on
                feeder.min_pending = None
            b_behind = _latencies(b, b_runs, warm=0)
        finally:
            feeder.stop()
    ms = 1e3
    return {
        "bell_round_trip": {
            "runs": runs,
            "server_p50_ms": percentile(latency, 50) * ms,
            "server_p99_ms": percentile(latency, 99) * ms,
            "aer_in_process_p50_ms": percentile(aer_latency, 50) * ms,
            "aer_in_process_p99_ms": percentile(aer_latency, 99) * ms,
            "goal_p50_ms": 10.0,
        },
        "throughput_8_clients": {
            "jobs": jobs,
            "server_jobs_per_s": rate,
            "aer_in_process_jobs_per_s": aer_rate,
            "goal_jobs_per_s": 100.0,
        },
        "instance_b_behind_a_queue": {
            "runs": b_runs,
            "a_pending_target": depth,
            "a_pending_min_seen": feeder.min_pending,
            "a_jobs_submitted": feeder.submitted,
            "server_b_p50_ms": percentile(b_behind, 50) * ms,
            "server_b_p99_ms": percentile(b_behind, 99) * ms,
            "server_b_idle_p99_ms": percentile(b_idle, 99) * ms,
            "aer_in_process_p99_ms": percentile(aer_latency, 99) * ms,
            "goal_p99_ms": 1000.0,
        },
    }


def small_rows(small: dict[str, Any]) -> list[dict[str, Any]]:
    """Table rows of :func:`small_jobs` (times in seconds like the other rows)."""
    rt, tp, fb = (
        small["bell_round_trip"],
        small["throughput_8_clients"],
        small["instance_b_behind_a_queue"],
    )

    def met(ok: bool) -> str:
        return "met" if ok else "missed"

    return [
        {
            "figure": "Bell 1024 shots round trip p50",
            "run": "server",
            "seconds": rt["server_p50_ms"] / 1e3,
            "server / this": 1.0,
            "note": f"goal <= 10 ms: {met(rt['server_p50_ms'] <= 10)}; {rt['runs']} runs",
        },
        {
            "figure": "Bell 1024 shots round trip p50",
            "run": "Aer SamplerV2 in-process",
            "seconds": rt["aer_in_process_p50_ms"] / 1e3,
            "server / this": rt["server_p50_ms"] / rt["aer_in_process_p50_ms"],
        },
        {
            "figure": "Bell 1024 shots round trip p99",
            "run": "server",
            "seconds": rt["server_p99_ms"] / 1e3,
            "server / this": 1.0,
        },
        {
            "figure": "Bell 1024 shots round trip p99",
            "run": "Aer SamplerV2 in-process",
            "seconds": rt["aer_in_process_p99_ms"] / 1e3,
            "server / this": rt["server_p99_ms"] / rt["aer_in_process_p99_ms"],
        },
        {
            "figure": "small jobs/s, 8 clients",
            "run": "server",
            "jobs/s": tp["server_jobs_per_s"],
            "note": f"goal >= 100/s: {met(tp['server_jobs_per_s'] >= 100)}; {tp['jobs']} Bell jobs",
        },
        {
            "figure": "small jobs/s, 8 clients",
            "run": "Aer SamplerV2 in-process, 8 threads",
            "jobs/s": tp["aer_in_process_jobs_per_s"],
            "server / this": tp["server_jobs_per_s"] / tp["aer_in_process_jobs_per_s"],
        },
        {
            "figure": f"instance B Bell p99, A keeps {fb['a_pending_target']} queued",
            "run": "server",
            "seconds": fb["server_b_p99_ms"] / 1e3,
            "server / this": 1.0,
            "note": (
                f"goal <= 1 s: {met(fb['server_b_p99_ms'] <= 1000)}; p50 "
                f"{fb['server_b_p50_ms']:.1f} ms; A pending >= {fb['a_pending_min_seen']}"
            ),
        },
        {
            "figure": f"instance B Bell p99, A keeps {fb['a_pending_target']} queued",
            "run": "server, A idle",
            "seconds": fb["server_b_idle_p99_ms"] / 1e3,
            "server / this": fb["server_b_p99_ms"] / fb["server_b_idle_p99_ms"],
        },
        {
            "figure": f"instance B Bell p99, A keeps {fb['a_pending_target']} queued",
            "run": "Aer SamplerV2 in-process",
            "seconds": fb["aer_in_process_p99_ms"] / 1e3,
            "server / this": fb["server_b_p99_ms"] / fb["aer_in_process_p99_ms"],
        },
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer shots (about a minute)")
    parser.add_argument("--out", help="write the numbers as JSON here")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline-timeout", type=float, default=None)
    parser.add_argument(
        "--small-only", action="store_true", help="only the small-job figures (about a minute)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--shots", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.shots)))
        return 0
    columns = ["figure", "run", "seconds", "jobs/s", "server / this", "peak RSS GiB", "note"]
    if args.small_only:
        small = small_jobs(args.workers, args.quick)
        print(markdown_table(small_rows(small), columns))
        write_json(args.out, {"small_jobs": small, "workers": args.workers, "quick": args.quick})
        return 0

    ghz_shots, su2_shots = (512, 50) if args.quick else (4096, 2000)
    bound = args.baseline_timeout or (10.0 if args.quick else 120.0)
    from qiskit_rest_provider import ProviderService

    figures: dict[str, dict[str, Any]] = {}
    with reference_server(workers=args.workers) as server:
        service = ProviderService(
            channel="ibm_quantum_platform",
            url=server.url,
            token=server.token,
            instance=server.instance_crn,
        )
        hex127, hex27 = service.backend("rest_hex_127q"), service.backend("rest_hex_27q")
        ghz, su2 = ghz_for(hex127.target, 127), su2_for(hex27.target)
        with PeakRss(server.process.pid) as server_rss:
            runs = {
                "ghz127": server_run(hex127, ghz, ghz_shots),
                "su2_27": server_run(hex27, su2, su2_shots),
            }
        counts = runs["ghz127"].pop("result")[0].data.c.get_counts()
        su2_counts = runs["su2_27"].pop("result")[0].data.meas.get_counts()
        runs["su2_27"]["note"] = f"{len(su2_counts)} distinct outcomes"
        ends = counts.get("0" * 127, 0) + counts.get("1" * 127, 0)
        runs["ghz127"]["note"] = f"all-0 or all-1 in {ends}/{ghz_shots} shots"
    for key, shots in (("ghz127", ghz_shots), ("su2_27", su2_shots)):
        figures[key] = {
            "shots": shots,
            "server": runs[key],
            "floor_in_process": run_child(f"floor-{key}", shots, 4 * bound),
            "local_testing_mode": run_child(f"ltm-{key}", shots, bound),
        }
    goals = {"ghz127": 60.0, "su2_27": 120.0}
    rows = []
    for key, label in (("ghz127", "127q noisy GHZ"), ("su2_27", "efficient_su2(27) noisy")):
        fig = figures[key]
        server_s = fig["server"]["seconds"]
        for who, run in (
            ("server", fig["server"]),
            ("Aer in-process, same method (floor)", fig["floor_in_process"]),
            ("IBM local testing mode", fig["local_testing_mode"]),
        ):
            seconds = run.get("seconds")
            rows.append(
                {
                    "figure": f"{label}, {fig['shots']} shots",
                    "run": who,
                    "seconds": seconds if run.get("ok") else None,
                    "server / this": (server_s / seconds) if run.get("ok") and seconds else None,
                    "peak RSS GiB": (run.get("peak_rss_bytes") or 0) / GIB or None,
                    "note": run.get("method") or run.get("note"),
                }
            )
            if who == "server":
                rows[-1]["note"] = f"{run.get('method')}; {run.get('note')}"
        fig["goal_seconds"] = goals[key]
        fig["meets_goal"] = bool(server_s is not None and server_s < goals[key])
    peak = server_rss.peak
    rows.append(
        {
            "figure": "peak RSS, server + workers",
            "run": "server",
            "peak RSS GiB": peak / GIB,
            "note": f"goal < 8 GiB: {'met' if peak < 8 * GIB else 'missed'}",
        }
    )
    small = small_jobs(args.workers, args.quick)
    rows += small_rows(small)
    print(markdown_table(rows, columns))
    write_json(
        args.out,
        {
            "figures": figures,
            "server_peak_rss_bytes": peak,
            "small_jobs": small,
            "workers": args.workers,
            "quick": args.quick,
            "baseline_timeout_s": bound,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
