"""Noise models from calibration data: same channels as Aer's, asymmetric readout, real effects.

Statistical checks use fixed seeds and tolerances of 5 standard errors of the shot count.
"""

from __future__ import annotations

import math
import pickle
import warnings

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import SuperOp
from qiskit_aer import AerSimulator
from qiskit_aer.noise.device.models import basic_device_gate_errors

from qiskit_rest_provider.server.backends.catalog import BackendCatalog
from qiskit_rest_provider.server.backends.noise import (
    noise_model_from_spec,
    noise_model_from_target,
    readout_matrices,
)

SHOTS = 20_000


@pytest.fixture(scope="module")
def line5():
    return BackendCatalog.load().get("rest_line_5q")


def _qubit(spec, q: int) -> dict:
    return {n["name"]: n["value"] for n in spec.properties["qubits"][q]}


def _gate(spec, gate: str, qubits: list[int]) -> dict:
    entry = next(g for g in spec.properties["gates"] if g["gate"] == gate and g["qubits"] == qubits)
    return {p["name"]: p["value"] for p in entry["parameters"]}


def _run(circuit: QuantumCircuit, noise_model, *, seed: int = 11, shots: int = SHOTS) -> dict:
    sim = AerSimulator(noise_model=noise_model, seed_simulator=seed)
    return sim.run(circuit, shots=shots).result().get_counts()


def test_gate_channels_equal_aers_construction(line5):
    target = line5.target
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = {(n, q): e for n, q, e in basic_device_gate_errors(None, target=target)}
    model = line5.noise_model
    ours = model._local_quantum_errors
    assert {(n, q) for n, qs in ours.items() for q in qs} == set(reference)
    for (name, qubits), error in reference.items():
        diff = np.abs(SuperOp(error).data - SuperOp(ours[name][qubits]).data).max()
        assert diff < 1e-12, (name, qubits)


def test_readout_matrices_are_asymmetric(line5):
    matrices = readout_matrices(line5.target, line5.properties)
    assert sorted(matrices) == list(range(5))
    for q, matrix in matrices.items():
        values = _qubit(line5, q)
        assert matrix[0][1] == pytest.approx(values["prob_meas1_prep0"])
        assert matrix[1][0] == pytest.approx(values["prob_meas0_prep1"])
    # Without the asymmetric values, the symmetric readout_error is used.
    symmetric = readout_matrices(line5.target, None)
    assert (
        symmetric[0][0][1] == symmetric[0][1][0] == pytest.approx(_qubit(line5, 0)["readout_error"])
    )


def test_ideal_backend_has_no_noise_model():
    spec = BackendCatalog.load().get("rest_simulator")
    assert spec.noise_model is None and noise_model_from_spec(spec) is None


def test_bell_state_errors_follow_the_calibration(line5):
    # H on 0 and CX(0, 1) written in the device basis: sx/rz on 1, cz(0, 1).
    bell = QuantumCircuit(5, 2)
    bell.rz(math.pi / 2, 0)
    bell.sx(0)
    bell.rz(math.pi / 2, 0)
    bell.rz(math.pi / 2, 1)
    bell.sx(1)
    bell.rz(math.pi / 2, 1)
    bell.cz(0, 1)
    bell.rz(math.pi / 2, 1)
    bell.sx(1)
    bell.rz(math.pi / 2, 1)
    bell.measure([0, 1], [0, 1])

    ideal = _run(bell, None)
    assert set(ideal) == {"00", "11"}
    noisy = _run(bell, line5.noise_model)
    odd = (noisy.get("01", 0) + noisy.get("10", 0)) / SHOTS

    readout = sum(_qubit(line5, q)["readout_error"] for q in (0, 1))
    gates = _gate(line5, "cz", [0, 1])["gate_error"] + sum(
        2 * _gate(line5, "sx", [q])["gate_error"] for q in (0, 1)
    )
    sigma = math.sqrt(max(odd, 1e-3) * (1 - odd) / SHOTS)
    # Readout flips one bit with probability ~ the sum of the two readout errors; depolarizing
    # gate errors add at most their total (relaxation over ~150 ns is negligible at T1 ~ 200 us).
    assert 0.8 * readout - 5 * sigma <= odd <= readout + gates + 5 * sigma
    assert odd > 0.5 * readout  # noisy is not ideal


def test_asymmetric_readout_seen_in_counts(line5):
    prep1 = QuantumCircuit(5, 1)
    prep1.x(2)
    prep1.measure(2, 0)
    prep0 = QuantumCircuit(5, 1)
    prep0.measure(2, 0)
    values = _qubit(line5, 2)
    p01 = _run(prep1, line5.noise_model).get("0", 0) / SHOTS
    p10 = _run(prep0, line5.noise_model).get("1", 0) / SHOTS
    x_error = _gate(line5, "x", [2])["gate_error"]
    for measured, expected, extra in (
        (p01, values["prob_meas0_prep1"], x_error),
        (p10, values["prob_meas1_prep0"], 0),
    ):
        sigma = math.sqrt(expected * (1 - expected) / SHOTS)
        assert abs(measured - expected) <= 5 * sigma + extra


def test_delay_relaxes_toward_ground(line5):
    t1 = _qubit(line5, 1)["T1"] * 1e-6
    wait = 0.5 * t1
    circuit = QuantumCircuit(5, 1)
    circuit.x(1)
    circuit.delay(wait, 1, unit="s")
    circuit.measure(1, 0)
    p0 = _run(circuit, line5.noise_model).get("0", 0) / SHOTS
    decay = 1 - math.exp(-wait / t1)
    readout = _qubit(line5, 1)
    expected = decay * (1 - readout["prob_meas1_prep0"]) + (1 - decay) * readout["prob_meas0_prep1"]
    sigma = math.sqrt(expected * (1 - expected) / SHOTS)
    assert abs(p0 - expected) <= 5 * sigma + 0.01


def test_noise_model_pickles_and_gives_the_same_counts(line5):
    circuit = QuantumCircuit(5, 5)
    circuit.sx(range(5))
    circuit.cz(1, 2)
    circuit.measure(range(5), range(5))
    model = line5.noise_model
    clone = pickle.loads(pickle.dumps(model))
    assert _run(circuit, model, shots=2000) == _run(circuit, clone, shots=2000)


def test_switches_and_temperature_path(line5):
    target = line5.target
    no_readout = noise_model_from_target(target, line5.properties, readout_error=False)
    assert not no_readout._local_readout_errors
    only_readout = noise_model_from_target(
        target, line5.properties, gate_error=False, thermal_relaxation=False
    )
    assert not only_readout._local_quantum_errors
    warm = noise_model_from_target(target, line5.properties, temperature=20.0)
    assert "cz" in warm._local_quantum_errors
