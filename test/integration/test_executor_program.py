"""The ``executor`` program through the official client (qiskit-ibm-runtime 0.51+).

qiskit-ibm-runtime's ``Executor`` sends a ``QuantumProgram`` (circuit and samplex items) to the
``executor`` program; its ``executor_sampler.Sampler`` and ``executor_estimator.Estimator`` build
such programs (twirled with samplomatic) and post-process the results themselves. These tests
drive them, unmodified, against the reference server and compare with Qiskit's reference
primitives on the same circuits.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("fastapi")
runtime = pytest.importorskip("qiskit_ibm_runtime")
pytest.importorskip("qiskit_ibm_runtime.executor_sampler")

import requests  # noqa: E402
from qiskit import QuantumCircuit, transpile  # noqa: E402
from qiskit.circuit import Parameter  # noqa: E402
from qiskit.primitives import StatevectorEstimator  # noqa: E402
from qiskit.quantum_info import SparsePauliOp  # noqa: E402
from qiskit_ibm_runtime.executor import Executor  # noqa: E402
from qiskit_ibm_runtime.quantum_program import QuantumProgram  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _rotation_program(backend, shots=2000, seed=None):
    theta = Parameter("θ")
    circuit = QuantumCircuit(1)
    circuit.rx(theta, 0)
    circuit.measure_all()
    isa = transpile(circuit, backend, optimization_level=1, seed_transpiler=1)
    angles = np.array([[0.0], [math.pi / 3], [math.pi / 2], [math.pi]])
    program = QuantumProgram(shots=shots)
    program.append_circuit_item(isa, circuit_arguments=angles)
    return program, angles


def test_circuit_items_match_the_rotation_probabilities(official_service):
    backend = official_service.backend("rest_simulator")
    program, angles = _rotation_program(backend)
    result = Executor(mode=backend).run(program).result()
    items = list(result)
    assert len(items) == 1
    bits = items[0]["meas"]
    assert bits.shape == (4, 2000, 1) and bits.dtype == bool
    ones = bits[..., 0].mean(axis=1)
    expected = np.sin(angles[:, 0] / 2) ** 2
    assert np.all(np.abs(ones - expected) <= 5 * np.sqrt(0.25 / 2000) + 1e-9)
    assert result.metadata.chunk_timing and result.metadata.chunk_timing[0].parts[0].size == 4


def test_seeded_programs_repeat_and_different_seeds_differ(official_service):
    backend = official_service.backend("rest_line_5q")
    program, _ = _rotation_program(backend, shots=300)

    def run(seed):
        executor = Executor(mode=backend)
        executor.options.experimental = {"seed_simulator": seed}
        return list(executor.run(program).result())[0]["meas"]

    first, again, other = run(11), run(11), run(12)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_executor_sampler_gives_bell_counts(official_service):
    from qiskit_ibm_runtime.executor_sampler import Sampler

    backend = official_service.backend("rest_line_5q")
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    isa = transpile(bell, backend, optimization_level=1, seed_transpiler=1)
    sampler = Sampler(mode=backend)
    counts = sampler.run([isa], shots=1000).result()[0].data.meas.get_counts()
    assert sum(counts.values()) == 1000
    assert counts.get("00", 0) + counts.get("11", 0) > 0.85 * 1000  # noisy, mostly correlated
    assert abs(counts.get("00", 0) - counts.get("11", 0)) < 200


def test_executor_estimator_matches_the_statevector_estimator(official_service):
    from qiskit_ibm_runtime.executor_estimator import Estimator

    backend = official_service.backend("rest_simulator")
    theta = Parameter("θ")
    circuit = QuantumCircuit(2)
    circuit.ry(theta, 0)
    circuit.cx(0, 1)
    isa = transpile(circuit, backend, optimization_level=1, seed_transpiler=1)
    observables = [
        SparsePauliOp("ZZ").apply_layout(isa.layout),
        SparsePauliOp("XX").apply_layout(isa.layout),
    ]
    values = [[0.3], [1.2]]
    estimator = Estimator(mode=backend)
    estimator.options.default_precision = 0.02
    result = estimator.run([(isa, [[o] for o in observables], values)]).result()[0]
    reference = StatevectorEstimator().run(
        [(circuit, [[SparsePauliOp("ZZ")], [SparsePauliOp("XX")]], values)]
    )
    expected = reference.result()[0].data.evs
    assert result.data.evs.shape == expected.shape == (2, 2)
    assert np.all(np.abs(result.data.evs - expected) <= 5 * 0.02 + 0.02)


def _submit(server, params, backend="rest_simulator"):
    return requests.post(
        f"{server.url}/api/v1/jobs",
        headers={"Authorization": f"Bearer {server.token}", "Service-CRN": server.instance_crn},
        json={"program_id": "executor", "backend": backend, "params": params},
        timeout=30,
    )


def _params(backend, **options):
    from qiskit_ibm_runtime.options_models import ExecutorOptions
    from qiskit_ibm_runtime.quantum_program.params_converters import (
        QUANTUM_PROGRAM_PARAMS_CONVERTERS,
    )

    program, _ = _rotation_program(backend, shots=10)
    params = QUANTUM_PROGRAM_PARAMS_CONVERTERS["v2.0"].encoder(program, ExecutorOptions())
    document = params.model_dump(mode="json")
    document["options"].update(options)
    return document


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"init_qubits": False}, "params.options.init_qubits"),
        ({"scheduler_timing": True}, "params.options.scheduler_timing"),
        ({"stretch_values": True}, "params.options.stretch_values"),
        ({"experimental": {"turbo": 1}}, "params.options.experimental.turbo"),
        ({"experimental": {"seed_simulator": -1}}, "params.options.experimental.seed_simulator"),
        ({"bogus": 1}, "params.options.bogus"),
    ],
)
def test_options_it_cannot_perform_are_refused(reference_server, official_service, options, field):
    backend = official_service.backend("rest_simulator")
    response = _submit(reference_server, _params(backend, **options))
    assert response.status_code == 400, response.text
    assert field in response.text


def test_bad_programs_are_refused_naming_the_field(reference_server, official_service):
    backend = official_service.backend("rest_simulator")
    document = _params(backend)
    document["quantum_program"]["shots"] = 10**9
    response = _submit(reference_server, document)
    assert response.status_code == 400 and "quantum_program.shots" in response.text

    for wrong in ([1, 2], "x", None):  # not an object: a 400 naming the field, never a 500
        document = _params(backend)
        document["options"] = wrong
        response = _submit(reference_server, document)
        assert response.status_code == 400 and "params.options" in response.text, response.text
    document = _params(backend)
    document["quantum_program"] = [1]
    response = _submit(reference_server, document)
    assert response.status_code == 400 and "quantum_program" in response.text, response.text

    document = _params(backend)
    document["schema_version"] = "v7.3"
    response = _submit(reference_server, document)
    assert response.status_code == 400 and "schema_version" in response.text

    # a tensor whose payload inflates beyond its declared shape: refused before inflating
    import base64
    import zlib

    document = _params(backend)
    arguments = document["quantum_program"]["items"][0]["circuit_arguments"]
    arguments["data"] = base64.b64encode(zlib.compress(b"\0" * (64 << 20))).decode()
    response = _submit(reference_server, document)
    assert response.status_code == 400 and "circuit_arguments" in response.text

    # a circuit that is not ISA for the backend
    wide = QuantumCircuit(2)
    wide.h(0)
    wide.cx(0, 1)
    wide.measure_all()
    program = QuantumProgram(shots=10)
    program.append_circuit_item(wide, circuit_arguments=np.zeros((1, 0)))
    from qiskit_ibm_runtime.options_models import ExecutorOptions
    from qiskit_ibm_runtime.quantum_program.params_converters import (
        QUANTUM_PROGRAM_PARAMS_CONVERTERS,
    )

    params = QUANTUM_PROGRAM_PARAMS_CONVERTERS["v2.0"].encoder(program, ExecutorOptions())
    response = _submit(reference_server, params.model_dump(mode="json"), backend="rest_line_5q")
    assert response.status_code == 400, response.text
    assert "items[0]" in response.text and "ISA" in response.text


def test_dry_run_answers_random_data_of_the_right_shape_on_the_mock_twin(official_service):
    names = [b.name for b in official_service.backends()]
    assert "rest_line_5q" in names and not any(n.startswith("mock_") for n in names)
    assert "mock_line_5q" in [b.name for b in official_service.backends(include_mocks=True)]
    backend = official_service.backend("rest_line_5q")
    program, _ = _rotation_program(backend, shots=500)
    job = Executor(mode=backend).run(program, dry_run=True)
    assert job.backend().name == "mock_line_5q"
    bits = list(job.result())[0]["meas"]
    assert bits.shape == (4, 500, 1) and bits.dtype == bool
    # random, not simulated: rx(0) would give all zeros and rx(pi) all ones
    assert 0.35 < bits[0].mean() < 0.65 and 0.35 < bits[3].mean() < 0.65


def test_dry_run_of_a_sampler_twirled_program_keeps_the_samplex_outputs(official_service):
    from qiskit_ibm_runtime.executor_sampler import Sampler

    backend = official_service.backend("rest_line_5q")
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    isa = transpile(bell, backend, optimization_level=1, seed_transpiler=1)
    mock = official_service.backend("mock_line_5q")
    assert mock.num_qubits == backend.num_qubits
    result = Sampler(mode=mock).run([isa], shots=200).result()
    assert result[0].data.meas.num_shots == 200


def test_mock_twins_refuse_other_programs(reference_server):
    response = requests.post(
        f"{reference_server.url}/api/v1/jobs",
        headers={
            "Authorization": f"Bearer {reference_server.token}",
            "Service-CRN": reference_server.instance_crn,
        },
        json={"program_id": "sampler", "backend": "mock_line_5q", "params": {"pubs": []}},
        timeout=30,
    )
    assert response.status_code == 400 and "dry-run twin" in response.text
