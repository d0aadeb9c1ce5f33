"""Error mitigation benchmark: the estimator at resilience levels 0/1/2 (issue 12 acceptance).

For two workloads on the noisy 5-qubit device ``rest_line_5q``:

* ``readout``: X on every qubit, ``<Z>`` per qubit (the error is mostly readout error);
* ``mirror``: a 3-qubit random-Clifford mirror circuit with CZs (the error is mostly gate error),

it measures, per resilience level, the end-to-end time of an ``EstimatorV2`` job through a
reference server and the mean absolute error of its ``evs`` against Qiskit's exact
``StatevectorEstimator``, and reports the error reduction against level 0. The baseline for the
times is the same work in qiskit-ibm-runtime's local testing mode: its client-side
``executor_estimator.Estimator`` with ``mode=AerSimulator(noise_model=<the device's model>)``
(the same noise the server simulates), run in this process. Ratios are server / local.

Usage::

    python benchmarks/mitigation.py [--quick] [--out results.json]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import markdown_table, median_seconds, reference_server, write_json  # noqa: E402

BACKEND = "rest_line_5q"


def _z_each(num_qubits: int):
    from qiskit.quantum_info import SparsePauliOp

    return [
        SparsePauliOp.from_sparse_list([("Z", [q], 1.0)], num_qubits) for q in range(num_qubits)
    ]


def _workloads(target) -> dict:
    """name -> (ISA circuit, ISA observables, exact values)."""
    from qiskit import QuantumCircuit
    from qiskit.primitives import StatevectorEstimator
    from qiskit.quantum_info import random_clifford
    from qiskit.transpiler import generate_preset_pass_manager

    readout = QuantumCircuit(5)
    readout.x(range(5))
    half = QuantumCircuit(3)
    rng = np.random.default_rng(4)
    for _ in range(6):
        for q in range(3):
            clifford = random_clifford(1, seed=int(rng.integers(1 << 30)))
            half.compose(clifford.to_circuit(), [q], inplace=True)
        half.cz(0, 1)
        half.cz(1, 2)
    mirror = half.compose(half.inverse())
    out = {}
    for name, logical, layout in (("readout", readout, None), ("mirror", mirror, [1, 2, 3])):
        pm = generate_preset_pass_manager(
            optimization_level=0, target=target, initial_layout=layout, seed_transpiler=1
        )
        isa = pm.run(logical)
        observables = [o.apply_layout(isa.layout) for o in _z_each(logical.num_qubits)]
        exact = StatevectorEstimator().run([(logical, _z_each(logical.num_qubits))]).result()
        out[name] = (isa, observables, np.asarray(exact[0].data.evs))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one repetition (< 1 minute)")
    parser.add_argument("--out", help="write the numbers as JSON here")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats

    from qiskit_aer import AerSimulator
    from qiskit_ibm_runtime.executor_estimator import Estimator as LocalEstimator

    from qiskit_rest_provider import EstimatorV2, ProviderService
    from qiskit_rest_provider.server.backends.catalog import BackendCatalog

    spec = BackendCatalog.load().get(BACKEND)
    workloads = _workloads(spec.target)
    local_backend = AerSimulator(noise_model=spec.noise_model)
    rows = []
    with reference_server() as server:
        service = ProviderService(
            channel="ibm_quantum_platform",
            url=server.url,
            token=server.token,
            instance=server.instance_crn,
        )
        backend = service.backend(BACKEND)
        for name, (isa, observables, exact) in workloads.items():
            errors: dict[int, float] = {}
            for level in (0, 1, 2):
                estimator = EstimatorV2(mode=backend, options={"seed_estimator": 11})
                estimator.options.resilience_level = level
                values: list[np.ndarray] = []

                def remote(estimator=estimator, values=values, pub=(isa, observables)) -> None:
                    values.append(estimator.run([pub]).result()[0].data.evs)

                server_s = median_seconds(remote, repeats)
                error = float(np.mean(np.abs(values[-1] - exact)))
                errors[level] = error
                row = {
                    "workload": name,
                    "level": level,
                    "server_s": server_s,
                    "error": error,
                    "reduction": errors[0] / error if error else float("inf"),
                }
                if level:
                    local = LocalEstimator(mode=local_backend)
                    local.options.resilience_level = level
                    local.options.simulator.seed_simulator = 11
                    local_values: list[np.ndarray] = []

                    def run_local(
                        local=local, local_values=local_values, pub=(isa, observables)
                    ) -> None:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            result = local.run([pub]).result()
                        local_values.append(result[0].data.evs)

                    local_s = median_seconds(run_local, repeats)
                    row.update(
                        local_s=local_s,
                        ratio=server_s / local_s,
                        local_error=float(np.mean(np.abs(local_values[-1] - exact))),
                    )
                rows.append(row)
    columns = ["workload", "level", "server_s", "local_s", "ratio", "error", "local_error",
               "reduction"]  # fmt: skip
    print(markdown_table(rows, columns))
    write_json(args.out, {"backend": BACKEND, "repeats": repeats, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
