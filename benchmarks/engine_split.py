"""A lone multi-PUB job under the default ``serve`` against Aer in-process (issue 11, item 3).

The job: 20 PUBs of 20-qubit ``efficient_su2`` ISA circuits, 4096 shots, through our
``SamplerV2`` to a reference server started with the default worker count (two), which splits
a lone job's PUBs across its idle workers. Baseline: ``qiskit_aer.primitives.SamplerV2``
in-process on the same PUBs (all cores), in the same run. Goal: ratio <= 1.10. For context the
same job also runs on a one-worker server (nothing to split; Aer gets all cores there).

Usage::

    python benchmarks/engine_split.py [--quick] [--out results.json] [--repeats N]

``--quick``: 6 PUBs of 18 qubits, one repetition. Both servers run side by side and
the three runs alternate in each repetition (medians reported), so load changes hit every row
alike. Prints a Markdown table; ``--out`` writes JSON.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, reference_server, write_json  # noqa: E402

GOAL = 1.10


def _pubs(backend, num_pubs: int, num_qubits: int, seed: int = 7) -> list:
    import numpy as np
    from qiskit.circuit.library import efficient_su2
    from qiskit.transpiler import generate_preset_pass_manager

    rng = np.random.default_rng(seed)
    ansatz = efficient_su2(num_qubits, reps=2, entanglement="linear")
    ansatz.measure_all()
    pm = generate_preset_pass_manager(optimization_level=1, backend=backend, seed_transpiler=seed)
    return pm.run(
        [
            ansatz.assign_parameters(rng.uniform(0, 2 * np.pi, ansatz.num_parameters))
            for _ in range(num_pubs)
        ]
    )


class _Client:
    """Our SamplerV2 on one running server, timing one job at a time."""

    def __init__(self, server, pubs_of) -> None:
        from qiskit_rest_provider import ProviderService, SamplerV2

        self.server = server
        service = ProviderService(
            channel="ibm_quantum_platform", url=server.url, token=server.token
        )
        backend = service.backend("rest_simulator")
        self.pubs = pubs_of(backend)
        self.sampler = SamplerV2(mode=backend)
        self.sampler.run(self.pubs[:2], shots=16).result()  # warm the connection and workers
        self.times: list[float] = []
        self.last_job: Any = None

    def run(self, shots: int) -> None:
        start = time.perf_counter()
        job = self.sampler.run(self.pubs, shots=shots)
        job.result()
        self.times.append(time.perf_counter() - start)
        self.last_job = job

    def summary(self) -> dict:
        metrics = requests.get(
            f"{self.server.url}/runtime/jobs/{self.last_job.job_id()}/metrics",
            headers={"Authorization": f"apikey {self.server.token}"},
            timeout=30,
        ).json()
        split = metrics.get("split") or {}
        return {
            "seconds": statistics.median(self.times),
            "samples": self.times,
            "parts": split.get("parts", 1),
            "workers_used": len(set(split.get("worker_pids") or [])) or 1,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 PUBs x 18 qubits, one repetition")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per row (median)")
    parser.add_argument("--out", help="write the numbers as JSON to this path")
    args = parser.parse_args(argv)
    num_pubs, num_qubits, shots = (6, 18, 4096) if args.quick else (20, 20, 4096)
    repeats = args.repeats or (1 if args.quick else 3)

    from qiskit_aer.primitives import SamplerV2 as AerSampler

    made: list = []

    def pubs_of(backend):  # transpiled once, for the server's backend; reused for the baseline
        if not made:
            made.extend(_pubs(backend, num_pubs, num_qubits))
        return made

    serve_default = max(1, min(4, os.cpu_count() or 2))  # `serve --workers` default (cli.py)
    aer = AerSampler()
    aer_times: list[float] = []
    # both servers stay up (idle workers cost nothing) and the three runs alternate, so a change
    # in the machine's load hits every row alike
    with reference_server(workers=serve_default) as two, reference_server(workers=1) as one:
        default_client, single_client = _Client(two, pubs_of), _Client(one, pubs_of)
        aer.run(made[:2], shots=16).result()
        for _ in range(repeats):
            default_client.run(shots)
            single_client.run(shots)
            start = time.perf_counter()
            aer.run(made, shots=shots).result()
            aer_times.append(time.perf_counter() - start)
        default, single = default_client.summary(), single_client.summary()
    aer_s = statistics.median(aer_times)

    name = f"SamplerV2 {num_pubs} PUBs x {num_qubits}q x {shots} shots"
    rows = [
        {
            "run": f"default serve ({serve_default} workers, split)",
            "seconds": default["seconds"],
            "ratio_to_aer": default["seconds"] / aer_s,
            "parts": default["parts"],
            "workers_used": default["workers_used"],
            "goal": f"<= {GOAL}",
        },
        {
            "run": "serve --workers 1 (unsplit)",
            "seconds": single["seconds"],
            "ratio_to_aer": single["seconds"] / aer_s,
            "parts": single["parts"],
            "workers_used": single["workers_used"],
            "goal": "-",
        },
        {
            "run": "Aer SamplerV2 in-process (baseline)",
            "seconds": aer_s,
            "ratio_to_aer": 1.0,
            "parts": None,
            "workers_used": None,
            "goal": "-",
        },
    ]
    samples = {"default": default["samples"], "workers_1": single["samples"], "aer": aer_times}
    print(f"{name}; {os.cpu_count()} CPU cores; median of {repeats}\n")
    print(markdown_table(rows, ["run", "seconds", "ratio_to_aer", "parts", "workers_used", "goal"]))
    met = rows[0]["ratio_to_aer"] <= GOAL
    print(f"\ngoal ratio <= {GOAL}: {'met' if met else 'NOT met'}")
    write_json(
        args.out,
        {
            "benchmark": name,
            "quick": args.quick,
            "cpu_count": os.cpu_count(),
            "repeats": repeats,
            "goal_ratio": GOAL,
            "goal_met": met,
            "rows": rows,
            "samples_s": samples,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
