"""Error suppression and mitigation in the legacy programs, on the noisy 5-qubit device.

User stories against the real reference server (seeded): readout-dominated states get their
error cut by TREX (level 1), gate-dominated mirror circuits by ZNE (level 2), dynamical
decoupling inserts pulses and changes what an idle qubit keeps, twirled sampler jobs run
``num_randomizations x shots_per_randomization`` shots, PEC removes a bias with the device's layer
noise or with the noise our noise-learner program learned, and what the server cannot perform is a
400 naming the option. Expected values come from Qiskit's reference ``StatevectorEstimator``.
"""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.primitives import StatevectorEstimator
from qiskit.quantum_info import SparsePauliOp, random_clifford

from qiskit_rest_provider import EstimatorV2, SamplerV2

pytestmark = pytest.mark.timeout(300)


def _z_each(num_qubits: int) -> list[SparsePauliOp]:
    return [
        SparsePauliOp.from_sparse_list([("Z", [q], 1.0)], num_qubits) for q in range(num_qubits)
    ]


def _reference(circuit: QuantumCircuit, observables: list[SparsePauliOp]) -> np.ndarray:
    return StatevectorEstimator().run([(circuit, observables)]).result()[0].data.evs


def _estimate(backend, circuit, observables, level, **options):
    estimator = EstimatorV2(mode=backend, options={"seed_estimator": 11, **options})
    estimator.options.resilience_level = level
    return estimator.run([(circuit, observables)]).result()


def test_level1_trex_cuts_readout_error_three_times(noisy):
    """X on every qubit, <Z> per qubit: TREX (level 1) at least 3x closer to -1 than level 0."""
    circuit = QuantumCircuit(5)
    circuit.x(range(5))
    observables = _z_each(5)
    exact = _reference(circuit, observables)
    level0 = _estimate(noisy, circuit, observables, 0)
    level1 = _estimate(noisy, circuit, observables, 1)
    error0 = np.mean(np.abs(level0[0].data.evs - exact))
    error1 = np.mean(np.abs(level1[0].data.evs - exact))
    assert error0 >= 3 * error1, (error0, error1)
    assert level1.metadata["resilience"]["measure_mitigation"] is True
    assert level0.metadata["resilience"]["measure_mitigation"] is False
    assert level1.metadata["twirling"]["enable_measure"] is True
    # metadata shots: what ran (IBM's rule: 4096 shots -> 32 randomizations x 128)
    assert level1[0].metadata["shots"] == 4096
    assert level1[0].metadata["num_randomizations"] == 32
    assert set(level1[0].data.keys()) >= {"evs", "stds", "ensemble_standard_error"}


def _mirror(num_qubits: int, depth: int, seed: int) -> QuantumCircuit:
    """Random Clifford layers and CZs, then their inverse: ideally |0...0>."""
    half = QuantumCircuit(num_qubits)
    rng = np.random.default_rng(seed)
    for _ in range(depth):
        for q in range(num_qubits):
            half.compose(random_clifford(1, seed=int(rng.integers(1 << 30))).to_circuit(), [q],
                         inplace=True)  # fmt: skip
        for q in range(0, num_qubits - 1):
            half.cz(q, q + 1)
    return half.compose(half.inverse())


def test_level2_zne_cuts_gate_error_on_a_mirror_circuit(noisy):
    """A mirror circuit dominated by CZ error: ZNE (level 2) closer to the ideal than level 1."""
    from qiskit.transpiler import generate_preset_pass_manager

    logical = _mirror(3, 6, seed=4)
    isa = generate_preset_pass_manager(
        optimization_level=0, backend=noisy, initial_layout=[1, 2, 3], seed_transpiler=1
    ).run(logical)
    observables = [o.apply_layout(isa.layout) for o in _z_each(3)]
    exact = _reference(logical, _z_each(3))
    level1 = _estimate(noisy, isa, observables, 1, default_precision=0.01)
    level2 = _estimate(noisy, isa, observables, 2, default_precision=0.01)
    error1 = np.mean(np.abs(level1[0].data.evs - exact))
    error2 = np.mean(np.abs(level2[0].data.evs - exact))
    assert error1 > 0.04, error1  # the gate error is visible at level 1
    assert error2 < 0.6 * error1, (error1, error2)
    data = level2[0].data
    assert data.evs_noise_factors.shape == (3, 3)
    assert data.stds_noise_factors.shape == (3, 3)
    assert data.ensemble_stds_noise_factors.shape == (3, 3)
    assert data.evs_extrapolated.shape == (3, 2, 4)  # 2 extrapolators x [0, 1, 3, 5]
    assert data.stds_extrapolated.shape == (3, 2, 4)
    # noise amplification is real: the values fall with the noise factor
    assert np.all(data.evs_noise_factors[:, 0] > data.evs_noise_factors[:, 2])
    zne = level2.metadata["resilience"]["zne"]
    assert zne["noise_factors"] == [1, 3, 5]
    assert zne["extrapolator"] == ["exponential", "linear"]


def test_zne_extrapolator_and_noise_factors_options(noisy):
    circuit = QuantumCircuit(5)
    circuit.x(0)
    circuit.cz(0, 1)
    observables = _z_each(5)[:2]
    result = _estimate(
        noisy,
        circuit,
        observables,
        1,
        resilience={
            "zne_mitigation": True,
            "zne": {"noise_factors": [1, 2, 3, 4], "extrapolator": "polynomial_degree_2"},
        },
    )
    data = result[0].data
    assert data.evs_noise_factors.shape == (2, 4)
    assert data.evs_extrapolated.shape == (2, 1, 5)
    assert result[0].metadata["resilience"]["zne"]["extrapolator"] == ["polynomial_degree_2"] * 2


def _idle_one(delay_dt: int = 100_000) -> QuantumCircuit:
    circuit = QuantumCircuit(5, 1)
    circuit.x(0)
    circuit.delay(delay_dt, 0, unit="dt")
    circuit.measure(0, 0)
    return circuit


def test_dynamical_decoupling_inserts_pulses_and_protects_an_idle_qubit(noisy):
    """|1> idling 50 us decays (T1 on delays); XX decoupling spends half of it in |0>."""
    circuit = _idle_one()
    shots = 4000
    ones = {}
    for enable in (False, True):
        sampler = SamplerV2(
            mode=noisy,
            options={
                "dynamical_decoupling": {"enable": enable, "sequence_type": "XX"},
                "simulator": {"seed_simulator": 3},
            },
        )
        result = sampler.run([(circuit, None, shots)]).result()
        ones[enable] = float(np.mean(result[0].data.c.array[:, 0] & 1))
        if enable:
            assert result[0].metadata["dynamical_decoupling"]["num_pulses"] >= 2
            assert result.metadata["dynamical_decoupling"]["num_pulses"] >= 2
    sigma = np.sqrt(0.25 / shots)
    assert ones[True] - ones[False] > 5 * sigma, ones


def test_dynamical_decoupling_in_the_estimator_reports_pulses(noisy):
    circuit = _idle_one().remove_final_measurements(inplace=False)
    observables = _z_each(5)[:1]
    for sequence in ("XpXm", "XY4"):
        result = _estimate(
            noisy,
            circuit,
            observables,
            1,
            dynamical_decoupling={"enable": True, "sequence_type": sequence},
        )
        assert result[0].metadata["dynamical_decoupling"]["num_pulses"] > 0
        assert result.metadata["dynamical_decoupling"]["sequence_type"] == sequence


@pytest.mark.parametrize(
    ("twirling", "expected"),
    [
        ({"num_randomizations": 10, "shots_per_randomization": 50}, (10, 500)),
        ({}, (16, 1024)),  # auto: max(64, ceil(1000/32)) = 64 per randomization, 16 of them
        ({"num_randomizations": 7}, (7, 1001)),  # ceil(1000/7) = 143 each
    ],
)
def test_twirled_sampler_reports_the_shots_it_ran(noisy, twirling, expected):
    circuit = QuantumCircuit(5)
    circuit.x(range(5))
    circuit.cz(0, 1)
    circuit.measure_all()
    options = {
        "twirling": {"enable_gates": True, "enable_measure": True, **twirling},
        "simulator": {"seed_simulator": 8},
    }
    result = SamplerV2(mode=noisy, options=options).run([(circuit, None, 1000)]).result()
    randomizations, shots = expected
    assert result[0].metadata["shots"] == shots
    assert result[0].metadata["num_randomizations"] == randomizations
    bits = result[0].data.meas
    assert bits.num_shots == shots
    # measurement twirls are undone: X on every qubit still reads mostly 11111
    assert bits.get_counts().get("11111", 0) > 0.85 * shots


def _measured_then_touched() -> QuantumCircuit:
    circuit = QuantumCircuit(5, 1)
    circuit.x(0)
    circuit.measure(0, 0)
    circuit.x(0)
    return circuit


@pytest.mark.parametrize(
    ("program", "options", "field"),
    [
        (
            "estimator",
            {"resilience": {"layer_noise_learning": {"layer_pair_depths": [0, 2]}}},
            "params.options.resilience.layer_noise_learning.layer_pair_depths",
        ),
        (
            "estimator",
            {"resilience": {"measure_noise_learning": {"shots_per_randomization": 64}}},
            "params.options.resilience.measure_noise_learning.shots_per_randomization",
        ),
        (
            "sampler",
            {"twirling": {"enable_measure": True}},
            "params.options.twirling.enable_measure",
        ),
    ],
)
def test_what_is_not_performed_is_a_400_naming_the_option(
    reference_server, program, options, field
):
    """Sent as a careless client would (ours refuses the first two before sending)."""
    import requests
    from qiskit.primitives.containers.estimator_pub import EstimatorPub
    from qiskit.primitives.containers.sampler_pub import SamplerPub

    from qiskit_rest_provider.wire.pubs import encode_estimator_params, encode_sampler_params

    circuit = _measured_then_touched()
    if program == "sampler":
        params = encode_sampler_params([SamplerPub.coerce(circuit, 100)])
    else:
        params = encode_estimator_params([EstimatorPub.coerce((circuit, _z_each(5)[0]))])
    params["options"] = options
    response = requests.post(
        f"{reference_server.runtime_url}/jobs",
        headers={"Authorization": f"apikey {reference_server.token}"},
        json={"program_id": program, "backend": "rest_line_5q", "params": params},
        timeout=60,
    )
    assert response.status_code == 400, response.text[:300]
    assert field in response.json()["errors"][0]["message"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_official_client_reads_every_mitigation_field(official_service):
    """qiskit-ibm-runtime's own legacy EstimatorV2/SamplerV2 decode the ZNE fields and metadata."""
    runtime = pytest.importorskip("qiskit_ibm_runtime")
    backend = official_service.backend("rest_line_5q")
    circuit = QuantumCircuit(5)
    circuit.x(range(2))
    circuit.cz(0, 1)
    observables = _z_each(5)[:2]
    estimator = runtime.EstimatorV2(mode=backend)
    estimator.options.resilience_level = 2
    estimator.options.seed_estimator = 4
    result = estimator.run([(circuit, observables)]).result()
    data = result[0].data
    assert data.evs.shape == (2,)
    assert data.evs_noise_factors.shape == (2, 3)
    assert data.stds_noise_factors.shape == (2, 3)
    assert data.ensemble_stds_noise_factors.shape == (2, 3)
    assert data.evs_extrapolated.shape == (2, 2, 4)
    assert data.stds_extrapolated.shape == (2, 2, 4)
    assert np.all(np.abs(data.evs + 1) < 0.1)
    assert result.metadata["resilience"]["zne_mitigation"] is True
    assert result[0].metadata["num_randomizations"] == 32

    measured = circuit.measure_all(inplace=False)
    sampler = runtime.SamplerV2(mode=backend)
    sampler.options.twirling.enable_gates = True
    sampler.options.twirling.num_randomizations = 4
    sampler.options.twirling.shots_per_randomization = 25
    sampled = sampler.run([measured]).result()[0]
    assert sampled.data.meas.num_shots == 100
    assert sampled.metadata["shots"] == 100


def _cz_mirror(pairs: int = 10) -> QuantumCircuit:
    """|00> through CZ/SX layers and back: ideally <Z> = +1, the error mostly from the CZs."""
    half = QuantumCircuit(2)
    for _ in range(pairs):
        half.cz(0, 1)
        half.sx([0, 1])
    return half.compose(half.inverse())


def test_pec_removes_the_bias_within_its_reported_error(noisy):
    """PEC with the device's twirled layer noise: the bias of level 1 goes, within PEC's stds."""
    from qiskit.transpiler import generate_preset_pass_manager

    logical = _cz_mirror()
    isa = generate_preset_pass_manager(
        optimization_level=0, backend=noisy, initial_layout=[1, 2], seed_transpiler=1
    ).run(logical)
    observables = [o.apply_layout(isa.layout) for o in _z_each(2)]
    exact = _reference(logical, _z_each(2))
    level1 = _estimate(noisy, isa, observables, 1)
    pec = _estimate(noisy, isa, observables, 1, resilience={"pec_mitigation": True})
    bias1 = level1[0].data.evs - exact
    bias_pec = pec[0].data.evs - exact
    stds = pec[0].data.stds
    assert np.all(bias1 < -0.05), bias1  # the CZ error is visible without PEC
    assert np.all(np.abs(bias_pec) < 3 * stds), (bias_pec, stds)
    assert np.mean(np.abs(bias_pec)) < 0.5 * np.mean(np.abs(bias1))
    assert pec.metadata["resilience"]["pec_mitigation"] is True
    assert pec[0].metadata["resilience"]["layer_noise"]["unique_mitigated_layers"] >= 1
    # PEC samples more randomizations than plain twirling (its sampling overhead)
    assert pec[0].metadata["shots"] > level1[0].metadata["shots"]


def test_pea_amplifies_with_the_device_layer_noise(noisy):
    """ZNE by probabilistic error amplification: runs, reports its fields, honest stds."""
    from qiskit.transpiler import generate_preset_pass_manager

    logical = _cz_mirror(6)
    isa = generate_preset_pass_manager(
        optimization_level=0, backend=noisy, initial_layout=[1, 2], seed_transpiler=1
    ).run(logical)
    observables = [o.apply_layout(isa.layout) for o in _z_each(2)]
    exact = _reference(logical, _z_each(2))
    result = _estimate(noisy, isa, observables, 2, resilience={"zne": {"amplifier": "pea"}})
    data = result[0].data
    assert data.evs_noise_factors.shape == (2, 3)
    assert data.evs_extrapolated.shape == (2, 2, 4)
    assert np.all(np.abs(data.evs - exact) < 4 * data.stds + 0.02)
    assert result.metadata["resilience"]["zne"]["amplifier"] == "pea"
    assert result[0].metadata["num_randomizations"] == 32


def test_a_small_job_on_a_wide_device_simulates_only_its_qubits(service):
    """Level 2 on the 127-qubit device takes seconds: only the 2 relevant qubits are simulated."""
    import time

    backend = service.backend("rest_hex_127q")
    circuit = QuantumCircuit(backend.num_qubits)
    circuit.x(0)
    circuit.cz(0, 1)
    observables = _z_each(backend.num_qubits)[:2]
    start = time.perf_counter()
    result = _estimate(backend, circuit, observables, 2)
    assert time.perf_counter() - start < 60
    assert np.all(np.abs(result[0].data.evs - np.array([-1.0, 1.0])) < 0.05)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_pec_with_the_noise_our_noise_learner_learned(official_service):
    """NoiseLearner (our noise-learner program) -> EstimatorV2 PEC with that layer noise model.

    Through qiskit-ibm-runtime's own legacy clients: the learned model is what PEC uses (metadata
    echoes it, as IBM's service does), and the bias of level 1 goes, within PEC's reported stds.
    """
    runtime = pytest.importorskip("qiskit_ibm_runtime")
    pytest.importorskip("qiskit_noise_learning")
    from qiskit.transpiler import generate_preset_pass_manager
    from qiskit_ibm_runtime.noise_learner import NoiseLearner
    from qiskit_ibm_runtime.options import NoiseLearnerOptions

    backend = official_service.backend("rest_line_5q")
    logical = _cz_mirror()
    isa = generate_preset_pass_manager(
        optimization_level=0, backend=backend, initial_layout=[1, 2], seed_transpiler=1
    ).run(logical)
    observables = [o.apply_layout(isa.layout) for o in _z_each(2)]
    exact = _reference(logical, _z_each(2))

    learning = NoiseLearnerOptions()
    learning.layer_pair_depths = [0, 1, 2, 4, 8]
    learning.num_randomizations = 16
    learning.shots_per_randomization = 256
    learning.simulator.seed_simulator = 5
    learned = NoiseLearner(mode=backend, options=learning).run([isa]).result()
    assert len(learned) == 1  # one unique CZ layer on qubits 1, 2

    def estimate(**resilience):
        estimator = runtime.EstimatorV2(mode=backend)
        estimator.options.seed_estimator = 11
        estimator.options.default_precision = 0.008  # PEC's stds well below the bias it removes
        for key, value in resilience.items():
            setattr(estimator.options.resilience, key, value)
        return estimator.run([(isa, observables)]).result()

    level1 = estimate()
    pec = estimate(pec_mitigation=True, layer_noise_model=learned.data)
    bias1 = level1[0].data.evs - exact
    bias_pec = pec[0].data.evs - exact
    stds = pec[0].data.stds
    assert np.all(bias1 < -0.05), bias1  # the CZ error is visible without PEC
    assert np.all(np.abs(bias_pec) < 3 * stds), (bias_pec, stds)
    assert np.mean(np.abs(bias_pec)) < 0.5 * np.mean(np.abs(bias1))
    assert pec.metadata["resilience"]["pec_mitigation"] is True
    layer_noise = pec[0].metadata["resilience"]["layer_noise"]
    assert layer_noise["unique_mitigated_layers"] == 1
    assert "given" in layer_noise["source"]
    echoed = pec.metadata["resilience"]["layer_noise_model"]
    assert [e.qubits for e in echoed] == [d.qubits for d in learned.data]
    assert echoed[0].error.rates.tolist() == learned.data[0].error.rates.tolist()


def test_a_layer_noise_model_learned_elsewhere_is_a_400(reference_server):
    """Noise learned on qubits 3, 4 for a circuit on 1, 2: the entry is named, nothing runs."""
    import json

    import requests
    from qiskit.primitives.containers.estimator_pub import EstimatorPub
    from qiskit.quantum_info import PauliList

    runtime = pytest.importorskip("qiskit_ibm_runtime")
    from qiskit_ibm_runtime.results.noise_learner import LayerError, PauliLindbladError

    from qiskit_rest_provider.wire.pubs import encode_estimator_params

    circuit = QuantumCircuit(5)
    circuit.x(1)
    circuit.cz(1, 2)
    layer = QuantumCircuit(2)
    layer.cz(0, 1)
    elsewhere = LayerError(layer, [3, 4], PauliLindbladError(PauliList(["XX"]), np.array([0.01])))
    params = encode_estimator_params([EstimatorPub.coerce((circuit, _z_each(5)[1]))])
    params["options"] = {
        "resilience": {
            "pec_mitigation": True,
            "layer_noise_model": json.loads(json.dumps([elsewhere], cls=runtime.RuntimeEncoder)),
        }
    }
    response = requests.post(
        f"{reference_server.runtime_url}/jobs",
        headers={"Authorization": f"apikey {reference_server.token}"},
        json={"program_id": "estimator", "backend": "rest_line_5q", "params": params},
        timeout=60,
    )
    assert response.status_code == 400, response.text[:300]
    message = response.json()["errors"][0]["message"]
    assert "params.options.resilience.layer_noise_model[0]" in message
    assert "cz[3, 4] on qubits [3, 4]" in message and "cz[1, 2]" in message
