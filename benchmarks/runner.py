"""Server-side execution benchmark: ``server.execution.runner`` in-process against Aer's primitives.

Runs the same PUBs through (a) ``qiskit_aer.primitives.SamplerV2`` / ``EstimatorV2`` and
``qiskit.primitives.BackendSamplerV2(AerSimulator())`` in-process, and (b) the reference
server's admission and runner (``prepare_job`` + ``execute_job``) from the wire ``params``
(OpenQASM 3) to the encoded result body, i.e. everything a worker process does for a job
(parse, ISA check, simulate, encode).

Cases: 20 PUBs of 20-qubit EfficientSU2 (ISA for ``rest_simulator``) x 4096 shots; a Bell
circuit x 1024 shots; estimator 12 qubits, 100 parameter sets x 10 observables.

Figures are medians of interleaved repetitions, wall and process CPU time, and ratios to the
Aer primitive measured in the same run. On a loaded machine wall times swing widely; CPU time
with ``--threads 1`` is the steadier comparison.

Usage::

    python benchmarks/runner.py [--quick] [--threads N] [--out results.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import markdown_table, write_json  # noqa: E402


def _measure(cases: dict[str, Callable[[], Any]], repeats: int) -> dict[str, dict[str, float]]:
    wall: dict[str, list[float]] = {k: [] for k in cases}
    cpu: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            c0, w0 = time.process_time(), time.perf_counter()
            fn()
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - w0)
    return {
        k: {"wall_s": statistics.median(wall[k]), "cpu_s": statistics.median(cpu[k])} for k in cases
    }


def _rows(title: str, stats: dict[str, dict[str, float]], base: str) -> list[dict]:
    rows = []
    for name, s in stats.items():
        rows.append(
            {
                "case": title,
                "path": name,
                "wall_s": s["wall_s"],
                "cpu_s": s["cpu_s"],
                "wall_ratio": s["wall_s"] / stats[base]["wall_s"],
                "cpu_ratio": s["cpu_s"] / stats[base]["cpu_s"],
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print a Markdown table; write JSON with ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller circuits, fewer repeats")
    parser.add_argument("--threads", type=int, default=0, help="Aer threads (0 = Aer default)")
    parser.add_argument("--repeats", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.threads:
        os.environ["QISKIT_REST_AER_THREADS"] = str(args.threads)

    import numpy as np
    from qiskit import QuantumCircuit, transpile
    from qiskit.circuit.library import efficient_su2
    from qiskit.primitives import BackendSamplerV2
    from qiskit.primitives.containers.estimator_pub import EstimatorPub
    from qiskit.primitives.containers.sampler_pub import SamplerPub
    from qiskit_aer import AerSimulator
    from qiskit_aer.primitives import EstimatorV2 as AerEstimator
    from qiskit_aer.primitives import SamplerV2 as AerSampler

    from qiskit_rest_provider.server.backends.catalog import BackendCatalog
    from qiskit_rest_provider.server.execution.runner import execute_job
    from qiskit_rest_provider.server.jobs.admission import prepare_job
    from qiskit_rest_provider.wire.pubs import encode_estimator_params, encode_sampler_params

    def run_job(program_id: str, params: dict, backend) -> object:
        return execute_job(prepare_job(program_id, params, backend), backend)

    backend_options = {"max_parallel_threads": args.threads} if args.threads else {}
    repeats = args.repeats or (1 if args.quick else 3)
    spec = BackendCatalog.load().get("rest_simulator")
    rng = np.random.default_rng(1)
    rows: list[dict] = []

    width = 14 if args.quick else 20
    ansatz = transpile(efficient_su2(width, reps=2), basis_gates=["ry", "rz", "cx"])
    ansatz.measure_all()
    pubs = [
        SamplerPub.coerce((ansatz, rng.uniform(0, np.pi, ansatz.num_parameters)), 4096)
        for _ in range(20)
    ]
    params = encode_sampler_params(pubs) | {"support_qiskit": True}
    title = f"sampler 20 PUBs x {width}q EfficientSU2 x 4096 shots"
    stats = _measure(
        {
            "qiskit_aer SamplerV2": lambda: (
                AerSampler(default_shots=4096, options={"backend_options": backend_options})
                .run(pubs)
                .result()
            ),
            "BackendSamplerV2(AerSimulator())": lambda: (
                BackendSamplerV2(backend=AerSimulator(**backend_options)).run(pubs).result()
            ),
            "admission + execute_job (QASM3 params -> body)": lambda: run_job(
                "sampler", params, spec
            ),
        },
        repeats,
    )
    rows += _rows(title, stats, "qiskit_aer SamplerV2")

    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    bell_pubs = [SamplerPub.coerce((bell,), 1024)]
    bell_params = encode_sampler_params(bell_pubs) | {"support_qiskit": True}
    stats = _measure(
        {
            "qiskit_aer SamplerV2": lambda: (
                AerSampler(default_shots=1024, options={"backend_options": backend_options})
                .run(bell_pubs)
                .result()
            ),
            "admission + execute_job (QASM3 params -> body)": lambda: run_job(
                "sampler", bell_params, spec
            ),
        },
        repeats * 20,
    )
    rows += _rows("sampler Bell x 1024 shots", stats, "qiskit_aer SamplerV2")

    n = 12
    circuit = transpile(efficient_su2(n, reps=2), basis_gates=["ry", "rz", "cx"])
    values = rng.uniform(0, np.pi, (100, circuit.num_parameters))
    labels = ["Z" * n, "X" * n, "Y" * n, "ZZ" + "I" * (n - 2), "I" * (n - 2) + "XX"]
    labels += ["ZI" * (n // 2), "IZ" * (n // 2), "XY" * (n // 2), "Z" + "I" * (n - 1)]
    labels += ["I" * (n - 1) + "Z"]
    pub = EstimatorPub.coerce((circuit, [[{lab: 1.0}] for lab in labels], values), 0.015625)
    est_params = encode_estimator_params([pub]) | {"support_qiskit": True}
    stats = _measure(
        {
            "qiskit_aer EstimatorV2": lambda: (
                AerEstimator(
                    options={"default_precision": 0.015625, "backend_options": backend_options}
                )
                .run([pub])
                .result()
            ),
            "admission + execute_job (QASM3 params -> body)": lambda: run_job(
                "estimator", est_params, spec
            ),
        },
        repeats,
    )
    rows += _rows("estimator 12q, 100 sets x 10 observables", stats, "qiskit_aer EstimatorV2")

    columns = ["case", "path", "wall_s", "cpu_s", "wall_ratio", "cpu_ratio"]
    print(markdown_table(rows, columns))
    write_json(args.out, {"threads": args.threads, "repeats": repeats, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
