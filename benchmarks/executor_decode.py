"""What decoding an executor job's params costs, and where it happens (issue: decoded twice).

A representative executor job: qiskit-ibm-runtime's executor estimator program for a twirled
(resilience level 1) ``efficient_su2(27, reps=2)`` PUB with 4 parameter sets and 2 observables
on ``rest_hex_27q``, as the official client encodes it (schema v2.0). Measured, in CPU time
(``time.process_time``, medians of ``--repeat`` runs):

* admission (``prepare_job``) and one more decode of the params (what a worker process does);
* pickling the ``PreparedJob`` to a worker: with the params only, against with the decoded
  program (the alternative to decoding again);
* how many times a job prepared *in* the worker (stored params: after a restart, or claimed by
  another replica) decodes its params, and the CPU that path spends before simulating.

Run it against two trees to compare (``PYTHONPATH=<tree> python benchmarks/executor_decode.py``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import pickle
import statistics
import time
import warnings
from typing import Any

import numpy as np


def _program_params() -> dict[str, Any]:
    from qiskit import transpile
    from qiskit.circuit.library import efficient_su2
    from qiskit.primitives.containers.estimator_pub import EstimatorPub
    from qiskit.quantum_info import SparsePauliOp
    from qiskit_ibm_runtime.executor_estimator.finalize_options import (
        finalize_estimator_options,
    )
    from qiskit_ibm_runtime.executor_estimator.prepare import prepare
    from qiskit_ibm_runtime.options_models import EstimatorOptions, ExecutorOptions
    from qiskit_ibm_runtime.quantum_program.params_converters import (
        QUANTUM_PROGRAM_PARAMS_CONVERTERS,
    )

    from qiskit_rest_provider.server.backends.catalog import BackendCatalog

    backend = BackendCatalog.load().get("rest_hex_27q")
    n = 27
    circuit = efficient_su2(n, reps=2)
    isa = transpile(circuit, target=backend.target, optimization_level=1, seed_transpiler=1)
    observables = [SparsePauliOp(p * n).apply_layout(isa.layout) for p in ("Z", "X")]
    values = np.random.default_rng(1).uniform(size=(4, circuit.num_parameters))
    pub = EstimatorPub.coerce((isa, [[o] for o in observables], values), precision=0.02)
    options = EstimatorOptions()
    options.resilience_level = 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program, _ = prepare([pub], finalize_estimator_options(options), None, backend=None)
    params = QUANTUM_PROGRAM_PARAMS_CONVERTERS["v2.0"].encoder(program, ExecutorOptions())
    return params.model_dump(mode="json")


def _median_cpu(fn: Any, repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.process_time()
        out = fn()
        times.append(time.process_time() - t0)
    return statistics.median(times), out


def _decodes_in_worker(params: dict, repeat: int) -> tuple[int, float]:
    """Decode calls and CPU (s) of a job prepared in the worker, up to the simulation."""
    from qiskit_rest_provider.server.backends.catalog import BackendCatalog
    from qiskit_rest_provider.server.execution import executor_program
    from qiskit_rest_provider.server.jobs.admission import prepare_job
    from qiskit_rest_provider.wire import executor as wire_executor

    backend = BackendCatalog.load().get("rest_hex_27q")
    admission = importlib.import_module("qiskit_rest_provider.server.jobs.executor_admission")
    original = wire_executor.decode_program
    calls = [0]

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    class _Stop(Exception):
        pass

    def stop(*_args: Any, **_kwargs: Any) -> Any:
        raise _Stop  # the simulation: not what is measured here

    import qiskit_ibm_runtime.fake_provider.executor.run_quantum_program as rqp

    saved = (wire_executor.decode_program, admission.decode_program, rqp.run_quantum_program)
    wire_executor.decode_program = admission.decode_program = counted
    rqp.run_quantum_program = stop
    try:

        def once() -> None:
            prepared = prepare_job("executor", params, backend)
            try:
                executor_program.run_executor_job(prepared, backend)
            except RuntimeError:
                pass

        calls[0] = 0
        once()
        count = calls[0]
        cpu, _ = _median_cpu(once, repeat)
    finally:
        wire_executor.decode_program, admission.decode_program, rqp.run_quantum_program = saved
    return count, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="5 repetitions")
    parser.add_argument("--out", help="write the numbers as JSON here")
    args = parser.parse_args()
    repeat = 5 if args.quick else args.repeat

    from qiskit_rest_provider.server.backends.catalog import BackendCatalog
    from qiskit_rest_provider.server.jobs.admission import prepare_job
    from qiskit_rest_provider.wire.executor import decode_program

    params = _program_params()
    backend = BackendCatalog.load().get("rest_hex_27q")
    admit, prepared = _median_cpu(lambda: prepare_job("executor", params, backend), repeat)
    decode, (program, _o, _v) = _median_cpu(lambda: decode_program(params), repeat)
    shipped = pickle.dumps(prepared, protocol=5)
    ship_params, _ = _median_cpu(lambda: pickle.loads(pickle.dumps(prepared, protocol=5)), repeat)
    as_program = pickle.dumps(program, protocol=5)
    ship_program, _ = _median_cpu(lambda: pickle.loads(pickle.dumps(program, protocol=5)), repeat)
    count, in_worker = _decodes_in_worker(params, repeat)
    rows = {
        "params_json_bytes": len(json.dumps(params)),
        "admission_ms": admit * 1e3,
        "decode_again_ms": decode * 1e3,
        "pickle_round_trip_params_ms": ship_params * 1e3,
        "pickled_params_bytes": len(shipped),
        "pickle_round_trip_program_ms": ship_program * 1e3,
        "pickled_program_bytes": len(as_program),
        "decodes_when_prepared_in_worker": count,
        "prepared_in_worker_cpu_ms": in_worker * 1e3,
    }
    print("| measure | value |\n|---|---|")
    for key, value in rows.items():
        print(f"| {key} | {value:.2f} |" if isinstance(value, float) else f"| {key} | {value} |")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
