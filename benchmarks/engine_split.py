"""A lone multi-PUB job under the default ``serve`` against Aer in-process (issue 11, item 3).

The job: 20 PUBs of 20-qubit ``efficient_su2`` ISA circuits, 4096 shots, through our
``SamplerV2`` to a reference server started with the default worker count (two), which splits
a lone job's PUBs across its idle workers. Baseline: ``qiskit_aer.primitives.SamplerV2``
in-process on the same PUBs (all cores), in the same run. Goal: ratio <= 1.10. For context the
same job also runs on a one-worker server (nothing to split; Aer gets all cores there).

Usage::

    python benchmarks/engine_split.py [--quick] [--out results.json] [--repeats N]

``--quick``: 6 PUBs of 16 qubits, one repetition. Prints a Markdown table; ``--out`` writes JSON.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, median_seconds, reference_server, write_json  # noqa: E402

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


def _through_server(workers: int, pubs_of, shots: int, repeats: int) -> dict:
    from qiskit_rest_provider import ProviderService, SamplerV2

    with reference_server(workers=workers) as server:
        service = ProviderService(
            channel="ibm_quantum_platform", url=server.url, token=server.token
        )
        backend = service.backend("rest_simulator")
        pubs = pubs_of(backend)
        sampler = SamplerV2(mode=backend)
        sampler.run(pubs[:2], shots=16).result()  # warm the connection and the workers
        jobs: list = []

        def run() -> None:
            job = sampler.run(pubs, shots=shots)
            job.result()
            jobs.append(job)

        seconds = median_seconds(run, repeats)
        metrics = requests.get(
            f"{server.url}/runtime/jobs/{jobs[-1].job_id()}/metrics",
            headers={"Authorization": f"apikey {server.token}"},
            timeout=30,
        ).json()
    split = metrics.get("split") or {}
    return {
        "seconds": seconds,
        "parts": split.get("parts", 1),
        "workers_used": len(set(split.get("worker_pids") or [])) or 1,
        "quantum_seconds": metrics.get("usage", {}).get("quantum_seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 PUBs x 16 qubits, one repetition")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per row (median)")
    parser.add_argument("--out", help="write the numbers as JSON to this path")
    args = parser.parse_args(argv)
    num_pubs, num_qubits, shots = (6, 16, 4096) if args.quick else (20, 20, 4096)
    repeats = args.repeats or (1 if args.quick else 3)

    from qiskit_aer.primitives import SamplerV2 as AerSampler

    made: list = []

    def pubs_of(backend):  # transpiled once, for the server's backend; reused for the baseline
        if not made:
            made.extend(_pubs(backend, num_pubs, num_qubits))
        return made

    serve_default = max(1, min(4, os.cpu_count() or 2))  # `serve --workers` default (cli.py)
    default = _through_server(serve_default, pubs_of, shots, repeats)
    single = _through_server(1, pubs_of, shots, repeats)
    pubs = made
    aer = AerSampler()
    aer.run(pubs[:2], shots=16).result()
    aer_s = median_seconds(lambda: aer.run(pubs, shots=shots).result(), repeats)

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
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
