"""Executor and noise-learner params are decoded once per process that runs the job.

A job that only has its stored params (after a restart, or claimed by another replica) is
prepared in the worker and run there: the program admission decoded must be the one that runs,
not decoded a second time. A job pickled from the API process to a worker process leaves the
decoded form behind (it pickles slower than it decodes: see ``PreparedJob``) and decodes there.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from qiskit import QuantumCircuit, qasm3, transpile

pytest.importorskip("qiskit_ibm_runtime")

from qiskit_rest_provider.server.backends.catalog import BackendCatalog  # noqa: E402
from qiskit_rest_provider.server.execution.base import ExecutionTask  # noqa: E402
from qiskit_rest_provider.server.execution.workers import run_task  # noqa: E402
from qiskit_rest_provider.server.jobs.admission import prepare_job  # noqa: E402


def _executor_params() -> dict:
    from qiskit_ibm_runtime.options_models import ExecutorOptions
    from qiskit_ibm_runtime.quantum_program import QuantumProgram
    from qiskit_ibm_runtime.quantum_program.params_converters import (
        QUANTUM_PROGRAM_PARAMS_CONVERTERS,
    )

    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    program = QuantumProgram(shots=50)
    program.append_circuit_item(bell, circuit_arguments=np.zeros((1, 0)))
    params = QUANTUM_PROGRAM_PARAMS_CONVERTERS["v2.0"].encoder(program, ExecutorOptions())
    document = params.model_dump(mode="json")
    document["options"]["experimental"] = {"seed_simulator": 3}
    return document


def _noise_learner_params(backend) -> dict:
    layer = QuantumCircuit(2)
    layer.cx(0, 1)
    isa = transpile(layer, target=backend.target, optimization_level=0, initial_layout=[0, 1])
    return {
        "circuits": [qasm3.dumps(isa)],
        "options": {
            "layer_pair_depths": [0, 1],
            "num_randomizations": 2,
            "shots_per_randomization": 16,
            "simulator": {"seed_simulator": 5},
        },
    }


def _count_calls(monkeypatch, module, name) -> list[int]:
    """Count calls of ``module.name`` (also where admission imported it by name)."""
    import importlib

    calls = [0]
    target = importlib.import_module(module)
    original = getattr(target, name)

    def counted(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, counted)
    admission = importlib.import_module("qiskit_rest_provider.server.jobs.executor_admission")
    if getattr(admission, name, None) is original:
        monkeypatch.setattr(admission, name, counted)
    return calls


@pytest.mark.parametrize(
    ("program_id", "backend_name", "module", "name"),
    [
        ("executor", "rest_simulator", "qiskit_rest_provider.wire.executor", "decode_program"),
        (
            "noise-learner",
            "rest_line_5q",
            "qiskit_rest_provider.wire.noise_learner",
            "decode_noise_learner",
        ),
    ],
)
def test_a_job_prepared_in_the_worker_is_decoded_once(
    monkeypatch, program_id, backend_name, module, name
):
    import orjson

    backend = BackendCatalog.load().get(backend_name)
    params = _executor_params() if program_id == "executor" else _noise_learner_params(backend)
    calls = _count_calls(monkeypatch, module, name)
    task = ExecutionTask(
        job_id="j1",
        program_id=program_id,
        backend=backend_name,
        params=orjson.dumps(params),
        prepare=prepare_job,
    )
    outcome = run_task(task)
    assert outcome["ok"], outcome.get("traceback")
    assert calls[0] == 1  # admission's decode is the one that runs


def test_a_pickled_executor_job_leaves_the_decoded_program_behind_and_still_runs():
    from qiskit_rest_provider.server.execution.runner import execute_job

    backend = BackendCatalog.load().get("rest_simulator")
    prepared = prepare_job("executor", _executor_params(), backend)
    assert prepared.decoded is not None
    shipped = pickle.loads(pickle.dumps(prepared))
    assert shipped.decoded is None and shipped.payload == prepared.payload
    assert prepared.decoded is not None  # pickling did not strip the original
    first = execute_job(shipped, backend)
    second = execute_job(prepared, backend)
    # same seed, same program: the same bits (the documents differ only in their timing)
    import orjson

    assert orjson.loads(first.result_body)["data"] == orjson.loads(second.result_body)["data"]
