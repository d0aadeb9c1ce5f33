"""The ``noise-learner`` program through the official clients (qiskit-ibm-runtime 0.51).

``NoiseLearnerV3`` (v3 inputs: the caller's boxed instructions), the legacy ``NoiseLearner`` (v2
inputs: circuits whose two-qubit layers the server finds) and the client-side
``executor_noise_learner.NoiseLearnerV3`` (which runs on the executor program) all learn the
noise of ``rest_line_5q``'s layers; the learned readout (TREX) rates are checked against the
device's own readout errors, and the gate layers' rates against its two-qubit gate errors.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastapi")
runtime = pytest.importorskip("qiskit_ibm_runtime")
pytest.importorskip("qiskit_noise_learning")

import requests  # noqa: E402
from qiskit.circuit import Parameter, QuantumCircuit, QuantumRegister  # noqa: E402
from qiskit.transpiler.preset_passmanagers import generate_preset_pass_manager  # noqa: E402
from samplomatic.transpiler import generate_boxing_pass_manager  # noqa: E402
from samplomatic.utils import find_unique_box_instructions  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _instructions(backend):
    manager = generate_preset_pass_manager(backend=backend, optimization_level=0)
    manager.post_scheduling = generate_boxing_pass_manager(
        enable_gates=True, enable_measures=True, inject_noise_site="after"
    )
    circuit = QuantumCircuit(3)
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.cx(1, 2)
    circuit.rz(Parameter("theta"), 0)
    circuit.measure_all()
    instructions = find_unique_box_instructions(manager.run(circuit))
    assert len(instructions) == 3  # two gate layers, one measurement layer
    return instructions


def _readout_errors(backend):
    properties = backend.properties()
    return {q: properties.readout_error(q) for q in range(backend.num_qubits)}


def test_noise_learner_v3_learns_the_device_noise(official_service):
    backend = official_service.backend("rest_line_5q")
    instructions = _instructions(backend)
    learner = runtime.NoiseLearnerV3(backend)
    learner.options.layer_pair_depths = [0, 2, 4, 8]
    learner.options.num_randomizations = 16
    learner.options.shots_per_randomization = 256
    result = learner.run(instructions).result()
    assert len(result) == 3
    assert [r.metadata["learning_protocol"] for r in result] == ["lindblad", "lindblad", "trex"]
    for datum, instruction in zip(result, instructions):
        assert datum.to_pauli_lindblad_map().num_qubits == len(instruction.qubits)
    # the measurement layer: one X-flip rate per qubit, close to the device's readout error
    trex = result[2].to_pauli_lindblad_map()
    assert trex.num_terms == 3
    readout = _readout_errors(backend)
    register = QuantumRegister(backend.num_qubits, "q")
    qubits = sorted(register.index(q) for q in instructions[2].qubits)
    for paulis, (index,), rate in trex.to_sparse_list():
        assert paulis == "X"
        flip = (1 - np.exp(-2 * rate)) / 2
        expected = readout[qubits[index]]
        assert 0.5 * expected < flip < 1.6 * expected, (qubits[index], flip, expected)
    # gate layers: positive total error of the order of the device's two-qubit errors
    for datum in result[:2]:
        rates = np.asarray(datum.to_pauli_lindblad_map().rates)
        assert rates.sum() > 1e-4
        assert np.all(rates > -0.01)


def test_legacy_noise_learner_finds_and_learns_the_layers(official_service):
    from qiskit_ibm_runtime.noise_learner import NoiseLearner
    from qiskit_ibm_runtime.options import NoiseLearnerOptions
    from qiskit_ibm_runtime.results.noise_learner import LayerError, PauliLindbladError

    backend = official_service.backend("rest_line_5q")
    first = QuantumCircuit(2)
    first.cx(0, 1)
    second = QuantumCircuit(3)
    second.cx(0, 1)
    second.cx(1, 2)
    second.cx(0, 1)
    circuits = generate_preset_pass_manager(backend=backend, optimization_level=0).run(
        [first, second]
    )
    options = NoiseLearnerOptions()
    options.layer_pair_depths = [0, 1, 2, 4]
    options.num_randomizations = 8
    options.shots_per_randomization = 128
    options.simulator.seed_simulator = 3
    result = NoiseLearner(mode=backend, options=options).run(circuits).result()
    assert len(result) == 3  # (0,1) alone, (1,2) and (0,1) with qubit 2 active (active-accum)
    for datum in result.data:
        assert isinstance(datum, LayerError) and isinstance(datum.error, PauliLindbladError)
        assert datum.circuit.num_qubits == len(datum.qubits) == datum.error.num_qubits
        assert datum.qubits == sorted(datum.qubits)
        assert np.asarray(datum.error.rates).sum() > 1e-4
    assert result.metadata["backend"] == "rest_line_5q"
    assert result.metadata["input_options"] == {
        "max_layers_to_learn": 4,
        "shots_per_randomization": 128,
        "num_randomizations": 8,
        "layer_pair_depths": [0, 1, 2, 4],
        "twirling_strategy": "active-accum",
    }
    again = NoiseLearner(mode=backend, options=options).run(circuits).result()
    for one, other in zip(result.data, again.data):  # seeded: the same rates
        assert one.qubits == other.qubits
        np.testing.assert_array_equal(one.error.rates, other.error.rates)
    options.max_layers_to_learn = 0
    assert NoiseLearner(mode=backend, options=options).run(circuits).result().data == []


def test_client_side_noise_learner_runs_on_the_executor_program(official_service):
    from qiskit_ibm_runtime.executor_noise_learner import NoiseLearnerV3

    backend = official_service.backend("rest_line_5q")
    instructions = _instructions(backend)
    learner = NoiseLearnerV3(backend)
    learner.options.layer_pair_depths = [0, 2, 4]
    learner.options.num_randomizations = 8
    learner.options.shots_per_randomization = 100
    result = learner.run(instructions).result()
    assert len(result) == 3
    assert result[2].to_pauli_lindblad_map().num_terms == 3


def _submit(server, params):
    return requests.post(
        f"{server.url}/api/v1/jobs",
        headers={"Authorization": f"Bearer {server.token}", "Service-CRN": server.instance_crn},
        json={"program_id": "noise-learner", "backend": "rest_line_5q", "params": params},
        timeout=30,
    )


def _v3_params(backend, **changes):
    from qiskit_ibm_runtime.noise_learner_v3.params_converters import (
        NOISE_LEARNER_V3_PARAMS_CONVERTERS,
    )
    from qiskit_ibm_runtime.options_models import NoiseLearnerV3Options

    model = NOISE_LEARNER_V3_PARAMS_CONVERTERS["v0.3"].encoder(
        _instructions(backend), NoiseLearnerV3Options()
    )
    document = model.model_dump(mode="json")
    for path, value in changes.items():
        target = document["options"]
        *parents, last = path.split(".")
        for key in parents:
            target = target[key]
        target[last] = value
    return document


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"post_selection.enable": True}, "params.options.post_selection.enable"),
        (
            {"bit_flip_checks.pre_circuit.enable": True},
            "params.options.bit_flip_checks.pre_circuit.enable",
        ),
        ({"init_qubits": False}, "params.options.init_qubits"),
        ({"experimental": {"seed_simulator": 1}}, "params.options.experimental"),
        ({"bogus": 1}, "params.options.bogus"),
        ({"num_randomizations": 10**6}, "params.options"),
    ],
)
def test_v3_options_it_cannot_perform_are_refused(
    reference_server, official_service, change, field
):
    backend = official_service.backend("rest_line_5q")
    response = _submit(reference_server, _v3_params(backend, **change))
    assert response.status_code == 400, response.text
    assert field in response.text


def test_v2_inputs_it_cannot_perform_are_refused(reference_server):
    bell = QuantumCircuit(2)
    bell.cx(0, 1)
    from qiskit_rest_provider.wire._qpy import encode_qpy

    params = {"circuits": [encode_qpy(bell)], "options": {"simulator": {"noise_model": {}}}}
    response = _submit(reference_server, params)
    assert response.status_code == 400 and "params.options.simulator.noise_model" in response.text
    response = _submit(reference_server, {"circuits": [encode_qpy(bell)], "bogus": 1})
    assert response.status_code == 400 and "params.bogus" in response.text
    response = _submit(reference_server, {"schema_version": "v9.9", "instructions": {}})
    assert response.status_code == 400 and "schema_version" in response.text
