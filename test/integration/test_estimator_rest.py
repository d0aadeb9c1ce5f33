"""EstimatorV2 against the real reference server: broadcasting, exactness vs Statevector."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.quantum_info import SparsePauliOp, Statevector
from qiskit.transpiler import generate_preset_pass_manager

from qiskit_rest_provider import EstimatorV2

pytestmark = pytest.mark.timeout(300)


def _ansatz():
    p = ParameterVector("p", 3)
    qc = QuantumCircuit(3)
    qc.ry(p[0], 0)
    qc.ry(p[1], 1)
    qc.cx(0, 1)
    qc.rx(p[2], 2)
    qc.cx(1, 2)
    qc.rz(p[0] + p[2], 2)
    return qc


def test_broadcast_10x3_parameters_with_10x1_observables(ideal):
    """(10, 3) values x (10, 1) observables -> (10, 10) results, each within 5 sigma."""
    ansatz = _ansatz()
    isa = generate_preset_pass_manager(optimization_level=1, backend=ideal, seed_transpiler=3).run(
        ansatz
    )
    rng = np.random.default_rng(42)
    values = rng.uniform(-np.pi, np.pi, (10, 3))
    labels = ["ZZI", "IXX", "ZIZ", "YYI", "XIZ", "ZZZ", "IIZ", "XYZ", "IZI", "XXX"]
    observables = [[SparsePauliOp(label)] for label in labels]
    isa_obs = [[o[0].apply_layout(isa.layout)] for o in observables]
    estimator = EstimatorV2(mode=ideal, options={"default_precision": 0.02, "seed_estimator": 5})
    result = estimator.run([(isa, isa_obs, values)]).result()
    data = result[0].data
    assert data.evs.shape == (10, 10)
    assert data.stds.shape == (10, 10)
    assert data.ensemble_standard_error.shape == (10, 10)
    exact = np.empty((10, 10))
    for j, row in enumerate(values):
        state = Statevector(ansatz.assign_parameters(row))
        for i, label in enumerate(labels):
            exact[i, j] = state.expectation_value(SparsePauliOp(label)).real
    assert np.all(data.stds > 0)
    assert np.all(np.abs(data.evs - exact) <= 5 * data.stds + 1e-9), np.max(
        np.abs(data.evs - exact) / data.stds
    )
    assert result[0].metadata.get("target_precision", 0.02) == pytest.approx(0.02)


def test_precision_per_pub_and_run(ideal):
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    isa = generate_preset_pass_manager(optimization_level=1, backend=ideal).run(qc)
    obs = SparsePauliOp("ZZ").apply_layout(isa.layout)
    estimator = EstimatorV2(mode=ideal)
    result = estimator.run([(isa, obs), (isa, obs, None, 0.1)], precision=0.01).result()
    assert result[0].data.evs.shape == ()
    assert abs(result[0].data.evs - 1.0) <= 5 * result[0].data.stds + 1e-9
    # A coarser requested precision gives larger reported errors (or exact values).
    assert result[1].data.stds >= result[0].data.stds - 1e-12


def test_resilience_level_is_accepted(service):
    backend = service.backend("rest_line_5q")
    qc = QuantumCircuit(2)
    qc.x(0)
    isa = generate_preset_pass_manager(optimization_level=1, backend=backend).run(qc)
    obs = SparsePauliOp("IZ").apply_layout(isa.layout)
    estimator = EstimatorV2(mode=backend, options={"resilience_level": 0})
    result = estimator.run([(isa, obs)], precision=0.05).result()
    # <Z> on |1> is -1; readout noise pulls it a little towards 0.
    assert -1.0 - 5 * result[0].data.stds <= result[0].data.evs < -0.7
