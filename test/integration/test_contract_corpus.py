"""Acceptance: every payload our client sends and every result our server returns meet IBM's models.

A corpus of Sampler and Estimator workloads (parameter forms Qiskit's ``BindingsArray.coerce``
accepts, observable forms ``ObservablesArray.coerce`` accepts, several registers, options set
and unset, ``run(shots=...)``/``precision=...``, sessions and batches) runs through our client
against the real reference server. For each job the params the server stored as sent
(``GET /jobs/{id}`` with params) are validated against the ``ibm-quantum-schemas`` input model
and the raw result document (``GET /jobs/{id}/results`` as JSON) against the result model.
The official client (qiskit-ibm-runtime) then sends its own payloads, which are held to the same
models (with the two documented tolerances) and still run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Clbit, Parameter
from qiskit.quantum_info import Pauli, SparsePauliOp
from qiskit.transpiler import generate_preset_pass_manager

from qiskit_rest_provider import Batch, EstimatorV2, SamplerV2, Session
from qiskit_rest_provider.wire import protocol
from qiskit_rest_provider.wire.contract import validate_params, validate_result
from qiskit_rest_provider.wire.json import loads

pytestmark = pytest.mark.timeout(600)


# ----------------------------------------------------------------------------- circuits
def _isa(backend: Any, circuit: QuantumCircuit) -> QuantumCircuit:
    return generate_preset_pass_manager(
        optimization_level=1, backend=backend, seed_transpiler=3
    ).run(circuit)


def _bell(measure: bool = True) -> QuantumCircuit:
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    return qc.measure_all(inplace=False) if measure else qc


def _two_params(measure: bool = True) -> QuantumCircuit:
    a, b = Parameter("a"), Parameter("b")
    qc = QuantumCircuit(2)
    qc.rx(a, 0)
    qc.ry(b, 1)
    qc.cx(0, 1)
    return qc.measure_all(inplace=False) if measure else qc


def _one_param(measure: bool = True) -> QuantumCircuit:
    qc = QuantumCircuit(1)
    qc.rx(Parameter("t"), 0)
    return qc.measure_all(inplace=False) if measure else qc


def _registers() -> QuantumCircuit:
    q = QuantumRegister(3, "q")
    out, flag = ClassicalRegister(2, "output"), ClassicalRegister(1, "flag")
    extra = ClassicalRegister(3, "c")
    qc = QuantumCircuit(q, out, flag, extra)
    qc.x(2)
    qc.h(0)
    qc.measure(0, out[0])
    qc.measure(1, out[1])
    qc.measure(2, flag[0])
    qc.measure(2, extra[2])
    return qc


def _aliased() -> QuantumCircuit:
    """Overlapping registers: OpenQASM 3 cannot say it, so the client sends QPY."""
    bits = [Clbit() for _ in range(2)]
    qc = QuantumCircuit(
        QuantumRegister(2, "q"),
        ClassicalRegister(bits=bits, name="a"),
        ClassicalRegister(bits=bits[:1], name="b"),
    )
    qc.x(0)
    qc.measure([0, 1], [0, 1])
    return qc


def _op(backend: Any, isa: QuantumCircuit, label: str, coeff: float = 1.0) -> SparsePauliOp:
    """``label`` on the virtual qubits, laid out on the ISA circuit's physical qubits."""
    return SparsePauliOp(label, coeffs=[coeff]).apply_layout(isa.layout)


# ----------------------------------------------------------------------------- the corpus
@dataclass
class Workload:
    """One job: which program, and how to submit it given the backend and the mode."""

    program: str
    submit: Callable[[Any, Any], Any]
    noisy: bool = False
    mode: str = "backend"  # "backend", "session" or "batch"
    check: Callable[[Any, dict], None] | None = None  # (PrimitiveResult, result document value)
    qpy: bool = False  # the client falls back to QPY (else it sends OpenQASM 3 text)


def _sampler(pubs: Callable[[Any], list], options: dict | None = None, **run: Any) -> Callable:
    def submit(backend: Any, mode: Any) -> Any:
        return SamplerV2(mode=mode, options=options).run(pubs(backend), **run)

    return submit


def _estimator(pubs: Callable[[Any], list], options: dict | None = None, **run: Any) -> Callable:
    def submit(backend: Any, mode: Any) -> Any:
        return EstimatorV2(mode=mode, options=options).run(pubs(backend), **run)

    return submit


def _pub_shots(expected: list[int]) -> Callable[[Any, dict], None]:
    def check(result: Any, value: dict) -> None:
        got = [p["__value__"]["metadata"]["shots"] for p in value["pub_results"]]
        assert got == expected

    return check


def _sampler_shots(expected: list[int]) -> Callable[[Any, dict], None]:
    def check(result: Any, value: dict) -> None:
        assert [next(iter(p.data.values())).num_shots for p in result] == expected

    return check


def _evs_shapes(expected: list[tuple]) -> Callable[[Any, dict], None]:
    def check(result: Any, value: dict) -> None:
        assert [p.data.evs.shape for p in result] == expected

    return check


def _qpy_circuits(result: Any, value: dict) -> None:
    assert result[0].data.a.get_counts() == {"01": 20} and result[0].data.b.get_counts() == {
        "1": 20
    }


GRID = np.linspace(0, math.pi, 12).reshape(2, 3, 2)

CORPUS: dict[str, Workload] = {
    # --- sampler: parameter forms
    "sampler-no-params": Workload(
        "sampler", _sampler(lambda b: [_isa(b, _bell())]), check=_sampler_shots([4096])
    ),
    "sampler-run-shots": Workload(
        "sampler", _sampler(lambda b: [_isa(b, _bell())], shots=100), check=_sampler_shots([100])
    ),
    "sampler-pub-shots-beat-run-shots": Workload(
        "sampler",
        _sampler(lambda b: [(_isa(b, _bell()), None, 30), _isa(b, _bell())], shots=60),
        check=_sampler_shots([30, 60]),
    ),
    "sampler-scalar-set": Workload(
        "sampler", _sampler(lambda b: [(_isa(b, _one_param()), [0.3])], shots=20)
    ),
    "sampler-1d-array": Workload(
        "sampler",
        _sampler(lambda b: [(_isa(b, _one_param()), np.linspace(0, 3, 4)[:, None])], shots=20),
    ),
    "sampler-2d-array": Workload(
        "sampler", _sampler(lambda b: [(_isa(b, _two_params()), GRID)], shots=20)
    ),
    "sampler-dict-bindings": Workload(
        "sampler",
        _sampler(lambda b: [(_isa(b, _two_params()), {"a": [0.1, 0.2, 0.3], "b": [1, 2, 3]})]),
    ),
    "sampler-dict-tuple-bindings": Workload(
        "sampler",
        _sampler(lambda b: [(_isa(b, _two_params()), {("a", "b"): GRID[0]})], shots=10),
    ),
    "sampler-several-registers": Workload(
        "sampler", _sampler(lambda b: [_isa(b, _registers())], shots=25)
    ),
    "sampler-qpy-fallback": Workload(
        "sampler",
        _sampler(lambda b: [_isa(b, _aliased())], shots=20),
        check=_qpy_circuits,
        qpy=True,
    ),
    # --- sampler: options
    "sampler-default-shots": Workload(
        "sampler",
        _sampler(lambda b: [_isa(b, _bell())], options={"default_shots": 77}),
        check=_sampler_shots([77]),
    ),
    "sampler-twirling": Workload(
        "sampler",
        _sampler(
            lambda b: [_isa(b, _bell())],
            options={
                "twirling": {
                    "enable_gates": True,
                    "enable_measure": True,
                    "num_randomizations": 4,
                    "shots_per_randomization": 16,
                }
            },
            shots=64,
        ),
    ),
    "sampler-dynamical-decoupling": Workload(
        "sampler",
        _sampler(
            lambda b: [_isa(b, _bell())],
            options={"dynamical_decoupling": {"enable": True, "sequence_type": "XY4"}},
            shots=20,
        ),
        noisy=True,  # DD needs gate durations: the ideal simulator refuses it (400)
    ),
    "sampler-seed": Workload(
        "sampler",
        _sampler(
            lambda b: [(_isa(b, _one_param()), [1.0])],
            options={"simulator": {"seed_simulator": 11}},
            shots=50,
        ),
    ),
    "sampler-noisy-device": Workload(
        "sampler", _sampler(lambda b: [_isa(b, _bell())], shots=50), noisy=True
    ),
    "sampler-in-session": Workload(
        "sampler", _sampler(lambda b: [(_isa(b, _one_param()), [0.5])], shots=30), mode="session"
    ),
    "sampler-in-batch": Workload(
        "sampler", _sampler(lambda b: [_isa(b, _registers())], shots=30), mode="batch"
    ),
    # --- estimator: observable forms
    "estimator-str-observable": Workload(
        "estimator",
        _estimator(
            lambda b: [
                (
                    isa := _isa(b, _bell(False)),
                    _op(b, isa, "ZZ").paulis[0].to_label(),
                )
            ]
        ),
        check=_pub_shots([4096]),
    ),
    "estimator-sparse-pauli-op": Workload(
        "estimator",
        _estimator(
            lambda b: [
                (
                    isa := _isa(b, _bell(False)),
                    _op(b, isa, "ZZ", 0.5) + _op(b, isa, "XX", 0.5),
                )
            ]
        ),
    ),
    "estimator-pauli": Workload(
        "estimator",
        _estimator(lambda b: [(isa := _isa(b, _bell(False)), Pauli(_op(b, isa, "XX").paulis[0]))]),
    ),
    "estimator-dict-observable": Workload(
        "estimator",
        _estimator(
            lambda b: [
                (isa := _isa(b, _bell(False)), {_op(b, isa, "YY").paulis[0].to_label(): -1.0})
            ]
        ),
    ),
    "estimator-list-of-observables": Workload(
        "estimator",
        _estimator(
            lambda b: [
                (isa := _isa(b, _bell(False)), [_op(b, isa, "ZZ"), _op(b, isa, "XI")]),
            ]
        ),
        check=_evs_shapes([(2,)]),
    ),
    "estimator-nested-observables-broadcast": Workload(
        "estimator",
        _estimator(
            lambda b: [
                (
                    isa := _isa(b, _two_params(False)),
                    [[_op(b, isa, "ZZ")], [_op(b, isa, "IZ")]],
                    GRID[0][None, :, :],
                )
            ]
        ),
        check=_evs_shapes([(2, 3)]),
    ),
    # --- estimator: parameter forms and precision
    "estimator-scalar-set": Workload(
        "estimator",
        _estimator(lambda b: [(isa := _isa(b, _one_param(False)), _op(b, isa, "Z"), [0.4])]),
    ),
    "estimator-1d-array-run-precision": Workload(
        "estimator",
        _estimator(
            lambda b: [
                (isa := _isa(b, _one_param(False)), _op(b, isa, "Z"), np.linspace(0, 3, 5)[:, None])
            ],
            precision=0.05,
        ),
        check=_pub_shots([400]),
    ),
    "estimator-2d-array-pub-precision": Workload(
        "estimator",
        _estimator(lambda b: [(isa := _isa(b, _two_params(False)), _op(b, isa, "ZZ"), GRID, 0.1)]),
        check=_pub_shots([100]),
    ),
    "estimator-dict-bindings": Workload(
        "estimator",
        _estimator(
            lambda b: [
                (
                    isa := _isa(b, _two_params(False)),
                    _op(b, isa, "ZI"),
                    {"a": [0.0, 1.0], "b": [2.0, 3.0]},
                )
            ]
        ),
    ),
    "estimator-empty-sets-of-no-param-circuit": Workload(
        "estimator",
        _estimator(lambda b: [(isa := _isa(b, _bell(False)), _op(b, isa, "ZZ"), [[]])]),
        check=_evs_shapes([(1,)]),
    ),
    # --- estimator: options
    "estimator-default-precision": Workload(
        "estimator",
        _estimator(
            lambda b: [(isa := _isa(b, _bell(False)), _op(b, isa, "ZZ"))],
            options={"default_precision": 0.03125},
        ),
        check=_pub_shots([1024]),
    ),
    "estimator-default-shots": Workload(
        "estimator",
        _estimator(
            lambda b: [(isa := _isa(b, _bell(False)), _op(b, isa, "ZZ"))],
            options={"default_shots": 500},
        ),
        check=_pub_shots([500]),
    ),
    "estimator-twirled-shots-beat-default-shots": Workload(
        "estimator",
        _estimator(
            lambda b: [(isa := _isa(b, _bell(False)), _op(b, isa, "ZZ"))],
            options={
                "default_shots": 400,
                "twirling": {
                    "enable_gates": True,
                    "num_randomizations": 16,
                    "shots_per_randomization": 100,
                },
            },
        ),
        check=_pub_shots([1600]),
    ),
    "estimator-seed-and-dd": Workload(
        "estimator",
        _estimator(
            lambda b: [(isa := _isa(b, _bell(False)), _op(b, isa, "ZZ"))],
            options={"seed_estimator": 5, "dynamical_decoupling": {"enable": True}},
        ),
        noisy=True,  # DD needs gate durations: the ideal simulator refuses it (400)
    ),
    "estimator-level-0-noisy": Workload(
        "estimator",
        _estimator(
            lambda b: [(isa := _isa(b, _bell(False)), _op(b, isa, "ZZ"))],
            options={"resilience_level": 0},
        ),
        noisy=True,
    ),
    "estimator-level-1-noisy": Workload(
        "estimator",
        _estimator(
            lambda b: [(isa := _isa(b, _bell(False)), _op(b, isa, "ZZ"))],
            options={"resilience_level": 1},
        ),
        noisy=True,
    ),
    "estimator-level-2-noisy": Workload(
        "estimator",
        _estimator(
            lambda b: [(isa := _isa(b, _bell(False)), _op(b, isa, "ZZ"))],
            options={"resilience_level": 2},
        ),
        noisy=True,
    ),
    "estimator-in-session": Workload(
        "estimator",
        _estimator(lambda b: [(isa := _isa(b, _one_param(False)), _op(b, isa, "Z"), [0.2])]),
        mode="session",
    ),
    "estimator-in-batch": Workload(
        "estimator",
        _estimator(lambda b: [(isa := _isa(b, _bell(False)), [_op(b, isa, "ZZ")])]),
        mode="batch",
    ),
}


def test_the_corpus_is_large_enough():
    assert len(CORPUS) >= 30
    assert {w.program for w in CORPUS.values()} == {"sampler", "estimator"}


def _fetch(client: Any, job_id: str) -> tuple[dict, dict]:
    params = client.job(job_id, exclude_params=False)["params"]
    document = loads(client.job_results(job_id, binary=False))
    return params, document


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_client_payload_and_server_result_meet_the_models(name, service, ideal, noisy):
    workload = CORPUS[name]
    backend = noisy if workload.noisy else ideal
    if workload.mode == "session":
        with Session(backend) as session:
            job = workload.submit(backend, session)
            result = job.result(timeout=300)
    elif workload.mode == "batch":
        with Batch(backend) as batch:
            job = workload.submit(backend, batch)
            result = job.result(timeout=300)
    else:
        job = workload.submit(backend, backend)
        result = job.result(timeout=300)
    params, document = _fetch(service.client, job.job_id())
    validate_params(workload.program, params)
    assert "shots" not in params and "precision" not in params
    slot = 1 if workload.program == "sampler" else 2
    assert all(pub[slot]["__type__"] == "ndarray" for pub in params["pubs"])  # never null
    kinds = {pub[0]["__type__"] if isinstance(pub[0], dict) else "qasm" for pub in params["pubs"]}
    assert kinds == ({"QuantumCircuit"} if workload.qpy else {"qasm"})
    if workload.program == "sampler":
        assert all(isinstance(pub[2], int) and pub[2] > 0 for pub in params["pubs"])
    validate_result(workload.program, document)
    if workload.check is not None:
        workload.check(result, document["__value__"])


# ----------------------------------------------------------------------------- official client
@pytest.fixture
def official(official_service):
    return official_service


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_official_client_payloads_meet_the_models_and_run(official, service):
    import qiskit_ibm_runtime as runtime

    backend = official.backend("rest_simulator")
    bell = _isa(backend, _bell())
    two = _isa(backend, _two_params(False))
    sampler_job = runtime.SamplerV2(mode=backend).run([bell, (bell, None, 40)])
    estimator_job = runtime.EstimatorV2(mode=backend).run(
        [(two, [[_op(backend, two, "ZZ")], [_op(backend, two, "XI")]], GRID[0][None, :, :])]
    )
    sampled = sampler_job.result()
    estimated = estimator_job.result()
    assert sampled[0].data.meas.num_shots == protocol.DEFAULT_SHOTS  # null shots: the default
    assert sampled[1].data.meas.num_shots == 40
    assert estimated[0].data.evs.shape == (2, 3)
    for job, program in ((sampler_job, "sampler"), (estimator_job, "estimator")):
        params, document = _fetch(service.client, job.job_id())
        validate_params(program, params)  # null shots and nested observables tolerated
        validate_result(program, document)
    params, _ = _fetch(service.client, sampler_job.job_id())
    assert params["pubs"][0][2] is None  # what qiskit-ibm-runtime 0.51 sends
    meta = estimated[0].metadata
    assert meta["shots"] == protocol.DEFAULT_SHOTS
    assert meta["target_precision"] == protocol.DEFAULT_PRECISION


def test_unknown_params_keys_are_a_400_naming_the_key_not_stored(reference_server):
    import requests

    qasm = 'OPENQASM 3.0; include "stdgates.inc"; bit[1] c; x $0; c[0] = measure $0;'
    body = {
        "program_id": "sampler",
        "backend": "rest_simulator",
        "params": {"pubs": [[qasm]], "padding": "x" * 100_000},
    }
    response = requests.post(
        f"{reference_server.runtime_url}/jobs",
        json=body,
        headers=reference_server.platform_headers(),
        timeout=60,
    )
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error["message"].startswith("params.padding: unknown key")
