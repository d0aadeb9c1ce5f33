"""Estimator execution through ``runner``: exact values, honest stds, broadcasting, noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.quantum_info import SparsePauliOp, Statevector

from qiskit_rest_provider.server.backends.catalog import BackendCatalog
from qiskit_rest_provider.server.execution.runner import execute_job
from qiskit_rest_provider.server.jobs.admission import prepare_job
from qiskit_rest_provider.wire import encode_qpy, loads
from qiskit_rest_provider.wire.results import decode_result


def run_job(program_id, params, backend):
    """Admission then execution, in this process (what a worker does with stored params)."""
    return execute_job(prepare_job(program_id, params, backend), backend)


@pytest.fixture(scope="module")
def catalog():
    return BackendCatalog.load()


@pytest.fixture(scope="module")
def sim(catalog):
    return catalog.get("rest_simulator")


def _estimate(params, backend):
    params = {"support_qiskit": True, **params}
    return decode_result(run_job("estimator", params, backend).result_body)


def _ry_circuit(width: int = 2) -> tuple[QuantumCircuit, Parameter]:
    theta = Parameter("theta")
    qc = QuantumCircuit(width)
    qc.ry(theta, 0)
    qc.cx(0, 1)
    return qc, theta


def _assert_honest(z: np.ndarray) -> None:
    """z-scores of N(0, 1) draws: mean and std within 5 standard errors."""
    n = z.size
    assert abs(z.mean()) < 5 / math.sqrt(n)
    assert abs(z.std(ddof=1) - 1.0) < 5 / math.sqrt(2 * (n - 1))


def test_exact_values_on_the_ideal_simulator(sim):
    qc, _ = _ry_circuit()
    angles = np.linspace(0, np.pi, 7)
    # observables shape (3, 1) x parameter sets shape (7,) -> (3, 7)
    pub = [encode_qpy(qc), [["ZZ"], ["IZ"], ["XX"]], angles[:, None].tolist(), 0.01]
    result = _estimate({"pubs": [pub]}, sim)
    evs = result[0].data.evs
    assert evs.shape == (3, 7)
    expected = np.array([np.ones(7), np.cos(angles), np.sin(angles)])
    assert np.all(np.abs(evs - expected) < 5 * 0.01)
    assert np.all(result[0].data.stds == 0.01)
    assert np.all(result[0].data.ensemble_standard_error == 0.01)
    assert result[0].metadata["target_precision"] == 0.01


def test_stds_are_honest_on_the_ideal_simulator(sim):
    qc, _ = _ry_circuit()
    angle = 1.1
    draws = 400
    precision = 0.02
    values = np.full((draws, 1), angle)
    result = _estimate(
        {
            "pubs": [[encode_qpy(qc), "ZI", values.tolist(), precision]],
            "options": {"seed_estimator": 3},
        },
        sim,
    )
    exact = math.cos(angle)  # <Z1> = <Z0> after the CX
    z = (result[0].data.evs - exact) / result[0].data.stds
    _assert_honest(z)


def test_seed_estimator_reproducible(sim):
    qc, _ = _ry_circuit()
    params = {"pubs": [[encode_qpy(qc), "ZZ", [0.3], None]], "options": {"seed_estimator": 9}}
    first = _estimate(params, sim)[0].data.evs
    second = _estimate(params, sim)[0].data.evs
    assert first == second
    params["options"]["seed_estimator"] = 10
    assert _estimate(params, sim)[0].data.evs != first


def test_seed_simulator_alone_makes_estimates_reproducible(sim):
    """A user who seeds only the simulator (the VQE example) gets the same values each run."""
    qc, _ = _ry_circuit()
    options = {"simulator": {"seed_simulator": 7}}
    params = {"pubs": [[encode_qpy(qc), "ZZ", [0.3], 0.01]], "options": options}
    first = _estimate(params, sim)[0].data.evs
    assert _estimate(params, sim)[0].data.evs == first
    options["simulator"]["seed_simulator"] = 8
    assert _estimate(params, sim)[0].data.evs != first


def test_broadcasting_parameters_and_observables(sim):
    qc, theta = _ry_circuit()
    values = np.linspace(0, 2 * np.pi, 30).reshape(10, 3, 1)
    labels = ["ZZ", "IZ", "XX", "YY", "ZI"]
    observables = [[{labels[i % 5]: 1.0, "II": 0.5 * i}] for i in range(10)]
    result = _estimate(
        {"pubs": [[encode_qpy(qc), observables, values.tolist(), 0.001]]},
        sim,
    )
    evs = result[0].data.evs
    assert evs.shape == (10, 3)
    assert result[0].data.stds.shape == (10, 3)
    for i in range(10):
        for j in range(3):
            state = Statevector(qc.assign_parameters({theta: values[i, j, 0]}))
            exact = state.expectation_value(SparsePauliOp.from_list(observables[i][0].items()))
            assert abs(evs[i, j] - exact.real) < 5 * 0.001


def test_plain_json_form(sim):
    qc, _ = _ry_circuit()
    body = loads(
        run_job("estimator", {"pubs": [[encode_qpy(qc), "ZZ", [0.0], 0.5]]}, sim).result_body
    )
    data = body["results"][0]["data"]
    assert isinstance(data["evs"], float)
    assert data["stds"] == 0.5 and data["ensemble_standard_error"] == 0.5


def test_untouched_qubits_are_evaluated_analytically(sim):
    qc = QuantumCircuit(5)
    qc.x(0)
    # Z on untouched qubit 4 -> +1, X on it -> 0
    result = _estimate(
        {"pubs": [[encode_qpy(qc), [{"ZIIII": 1.0}, {"XIIIZ": 1.0}, {"ZIIIZ": 2.0}], None, 1e-4]]},
        sim,
    )
    assert np.allclose(result[0].data.evs, [1.0, 0.0, -2.0], atol=1e-3)


def test_default_shots_and_resilience_level_are_recorded(sim):
    qc, _ = _ry_circuit()
    result = _estimate(
        {
            "pubs": [[encode_qpy(qc), "ZZ", [0.0]]],
            "options": {"default_shots": 10_000},
            "resilience_level": 2,
        },
        sim,
    )
    assert result[0].metadata["target_precision"] == pytest.approx(0.01)
    assert result[0].metadata["shots"] == 10_000
    assert result[0].data.stds == pytest.approx(0.01)
    assert result.metadata["resilience_level"] == 2
    assert result.metadata["version"] == 2


def test_noisy_device_is_exact_noisy_value_plus_honest_noise(catalog):
    backend = catalog.get("rest_line_5q")
    qc = QuantumCircuit(5)
    for _ in range(10):
        qc.sx(0)
        qc.sx(0)
        qc.cz(0, 1)
    draws = 300
    precision = 0.01
    result = _estimate(
        {
            "pubs": [[encode_qpy(qc), "IIIZZ", np.zeros((draws, 0)).tolist(), precision]],
            "options": {"seed_estimator": 21},
            # level 0: the exact path (levels 1-2 sample a TREX/ZNE program, see mitigation)
            "resilience_level": 0,
        },
        backend,
    )
    evs = result[0].data.evs
    assert evs.shape == (draws,)
    assert result[0].metadata["simulation"]["method"] == "density_matrix"
    # Ideal value is +1 (20 sx = identity up to phase); the noise pulls it visibly below 1.
    mean = evs.mean()
    assert 0.5 < mean < 1 - 5 * precision / math.sqrt(draws)
    z = (evs - mean) / result[0].data.stds
    assert abs(z.std(ddof=1) - 1.0) < 5 / math.sqrt(2 * (draws - 1))


def test_trajectory_fallback_for_dynamic_circuits_is_honest(sim):
    theta = Parameter("theta")
    qc = QuantumCircuit(2, 1)
    qc.ry(theta, 0)
    qc.measure(0, 0)  # mid-circuit: collapses, so <X0> after H equals <Z0> before
    qc.h(0)
    angle = 1.0
    draws = 40
    precision = 0.05
    result = _estimate(
        {
            "pubs": [[encode_qpy(qc), "IX", np.full((draws, 1), angle).tolist(), precision]],
            "options": {"seed_estimator": 5, "simulator": {"seed_simulator": 8}},
        },
        sim,
    )
    meta = result[0].metadata["simulation"]
    assert meta["method"] == "trajectories" and meta["trajectories"] >= 128
    z = (result[0].data.evs - math.cos(angle)) / result[0].data.stds
    assert np.all(result[0].data.stds >= precision - 1e-12)
    _assert_honest(z)


def _noisy_pub(draws: int, precision: float) -> list:
    theta = Parameter("theta")
    qc = QuantumCircuit(5)
    qc.rz(theta, 0)
    for _ in range(6):
        qc.sx(0)
        qc.cz(0, 1)
    return [encode_qpy(qc), "IIIZZ", np.full((draws, 1), 0.3).tolist(), precision]


def test_noisy_trajectory_fallback_matches_the_density_matrix(catalog):
    backend = catalog.get("rest_line_5q")
    # level 0: the exact paths (levels 1-2 sample a TREX/ZNE program, see mitigation)
    exact = _estimate({"pubs": [_noisy_pub(1, 1e-6)], "resilience_level": 0}, backend)[0]
    exact = exact.data.evs[0]
    draws, precision = 40, 0.02
    # statevector forced (options.simulator.method): trajectories instead of the density matrix
    result = _estimate(
        {
            "pubs": [_noisy_pub(draws, precision)],
            "options": {
                "seed_estimator": 1,
                "simulator": {"seed_simulator": 2, "method": "statevector"},
            },
            "resilience_level": 0,
        },
        backend,
    )
    assert result[0].metadata["simulation"]["method"] == "trajectories"
    assert result.metadata["simulator"]["method"] == "statevector"
    _assert_honest((result[0].data.evs - exact) / result[0].data.stds)


def test_trajectory_budget_reports_the_larger_honest_error(sim, monkeypatch):
    from qiskit_rest_provider.server.execution import estimator as estimator_exec

    monkeypatch.setattr(estimator_exec, "MAX_TRAJECTORY_WORK", 40 * 16)
    theta = Parameter("theta")
    qc = QuantumCircuit(1, 1)
    qc.ry(theta, 0)
    qc.measure(0, 0)
    qc.h(0)
    draws, precision = 40, 0.001  # would need ~700k trajectories per set
    result = _estimate(
        {
            "pubs": [[encode_qpy(qc), "X", np.full((draws, 1), 1.0).tolist(), precision]],
            "options": {"seed_estimator": 3, "simulator": {"seed_simulator": 4}},
        },
        sim,
    )
    stds = result[0].data.stds
    assert result[0].metadata["simulation"]["trajectories"] == 16
    assert np.all(stds > 10 * precision)
    _assert_honest((result[0].data.evs - math.cos(1.0)) / stds)


def test_level_0_includes_readout_error_and_agrees_with_the_sampler(catalog):
    """Two independent paths (exact estimator, sampled bits) must agree on a noisy device."""
    backend = catalog.get("rest_line_5q")
    qc = QuantumCircuit(5)
    qc.x(0)
    qc.sx(1)
    qc.cz(0, 1)
    qc.sx(1)
    labels = ["IIIIZ", "IIIZI", "IIIZZ"]
    level0 = _estimate(
        {"pubs": [[encode_qpy(qc), labels, None, 1e-6]], "resilience_level": 0}, backend
    )
    # level 1 is sampled (TREX), so it cannot have precision 1e-6
    level1 = _estimate(
        {
            "pubs": [[encode_qpy(qc), labels, None, 0.004]],
            "resilience_level": 1,
            "options": {"seed_estimator": 2},
        },
        backend,
    )
    assert level0[0].metadata["simulation"]["readout_error"] is True
    assert level1.metadata["resilience"]["measure_mitigation"] is True
    # readout error pulls |<Z>| further from 1 than gate noise alone (TREX removes it)
    gap = abs(level1[0].data.evs[0]) - abs(level0[0].data.evs[0])
    assert gap > 3 * level1[0].data.stds[0], (gap, level1[0].data.stds[0])
    measured = qc.copy()
    measured.measure_all()
    shots = 40_000
    sampled = decode_result(
        run_job(
            "sampler",
            {
                "pubs": [[encode_qpy(measured), None, shots]],
                "support_qiskit": True,
                "options": {"simulator": {"seed_simulator": 3}},
            },
            backend,
        ).result_body
    )
    z = 1.0 - 2.0 * sampled[0].data.meas.to_bool_array(order="little").astype(float)
    estimates = [z[:, 0].mean(), z[:, 1].mean(), (z[:, 0] * z[:, 1]).mean()]
    for exact, estimate in zip(level0[0].data.evs, estimates):
        assert abs(exact - estimate) < 5 / math.sqrt(shots)
