"""What SamplerV2/EstimatorV2 send, captured by a recording transport (no server needed).

The integration tests run the same primitives against the real reference server; here we pin
the request body: only options the user set, client-only options as job fields, one job per
``run``, nothing sent for an invalid PUB, and no re-export of a circuit resubmitted in a loop.
"""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.primitives import BaseEstimatorV2, BaseSamplerV2
from qiskit.providers.fake_provider import GenericBackendV2
from qiskit.quantum_info import SparsePauliOp

from qiskit_rest_provider.exceptions import InvalidInputError
from qiskit_rest_provider.primitives import (
    EstimatorImplementation,
    EstimatorV2,
    RestPrimitiveJob,
    SamplerImplementation,
    SamplerV2,
)
from qiskit_rest_provider.wire import circuits as wire_circuits
from qiskit_rest_provider.wire.arrays import decode_ndarray


class RecordingClient:
    """Stands in for RuntimeClient: records create_job calls, answers with an id."""

    def __init__(self):
        self.jobs = []

    def create_job(self, **kwargs):
        self.jobs.append(kwargs)
        return {"id": f"job-{len(self.jobs)}", "backend": kwargs["backend"]}


class FakeService:
    def __init__(self):
        self.client = RecordingClient()


class FakeBackend:
    """What the primitives use from a RestBackend: its client and target (service for tests)."""

    name = "fake_line_3q"

    def __init__(self):
        self.service = FakeService()
        self.client = self.service.client
        self.target = GenericBackendV2(
            num_qubits=3, basis_gates=["cz", "rz", "sx", "x", "id"], seed=3
        ).target


@pytest.fixture
def backend():
    return FakeBackend()


def _pqc():
    theta = Parameter("theta")
    qc = QuantumCircuit(2, 2)
    qc.rz(theta, 0)
    qc.sx(0)
    qc.cz(0, 1)
    qc.measure([0, 1], [0, 1])
    return qc


def test_classes_and_aliases():
    assert issubclass(SamplerV2, BaseSamplerV2)
    assert issubclass(EstimatorV2, BaseEstimatorV2)
    assert SamplerImplementation is SamplerV2
    assert EstimatorImplementation is EstimatorV2


def test_sampler_sends_one_job_with_only_set_options(backend):
    sampler = SamplerV2(mode=backend, options={"default_shots": 10})
    sampler.options.environment.job_tags = ["exp"]
    sampler.options.simulator.seed_simulator = 7
    job = sampler.run([(_pqc(), [0.1]), (_pqc(), [[0.2], [0.3]], 5)])
    assert isinstance(job, RestPrimitiveJob)
    assert job.job_id() == "job-1"
    (sent,) = backend.service.client.jobs
    assert sent["program_id"] == "sampler"
    assert sent["backend"] == "fake_line_3q"
    assert sent["tags"] == ["exp"]
    assert sent["session_id"] is None
    params = sent["params"]
    assert params["support_qiskit"] is True
    assert params["version"] == 2
    assert params["options"] == {"default_shots": 10, "simulator": {"seed_simulator": 7}}
    assert len(params["pubs"]) == 2
    assert params["pubs"][0][2] == 10  # options.default_shots, filled in: the model wants int > 0
    assert params["pubs"][1][2] == 5
    assert params["pubs"][0][0].startswith("OPENQASM 3")


def test_sampler_without_options_sends_no_options(backend):
    SamplerV2(mode=backend).run([_pqc().assign_parameters([0.5])], shots=3)
    params = backend.service.client.jobs[0]["params"]
    assert "options" not in params
    # no parameters: an empty ndarray of shape (0,), as the input model and qiskit-ibm-runtime have
    assert decode_ndarray(params["pubs"][0][1]).shape == (0,) and params["pubs"][0][2] == 3


def test_estimator_params_and_job_fields(backend):
    estimator = EstimatorV2(
        mode=backend,
        options={
            "resilience_level": 0,
            "default_precision": 0.05,
            "max_execution_time": 60,
            "environment": {"log_level": "debug", "private": False},
        },
    )
    qc = _pqc().remove_final_measurements(inplace=False)
    estimator.run([(qc, [SparsePauliOp("ZZ"), SparsePauliOp("XI")], np.zeros((3, 1, 1)))])
    sent = backend.service.client.jobs[0]
    assert sent["program_id"] == "estimator"
    assert sent["cost"] == 60
    assert sent["log_level"] == "DEBUG"
    assert sent["private"] is False
    assert sent["params"]["resilience_level"] == 0
    assert sent["params"]["options"] == {"default_precision": 0.05}
    assert sent["params"]["pubs"][0][1] == [{"ZZ": 1.0}, {"XI": 1.0}]


def test_invalid_pub_sends_nothing(backend):
    sampler = SamplerV2(mode=backend)
    bad = QuantumCircuit(2, 2)
    bad.h(0)  # not in the basis
    bad.measure([0, 1], [0, 1])
    with pytest.raises(InvalidInputError, match=r"pubs\[1\].*'h'"):
        sampler.run([_pqc().assign_parameters([0.0]), bad])
    with pytest.raises(ValueError, match="at least one"):
        sampler.run([])
    assert backend.service.client.jobs == []


def test_loop_resubmitting_a_circuit_exports_it_once(backend, monkeypatch):
    calls = []
    original = wire_circuits._export_uncached

    def counting(circuit):
        calls.append(circuit)
        return original(circuit)

    monkeypatch.setattr(wire_circuits, "_export_uncached", counting)
    sampler = SamplerV2(mode=backend)
    qc = _pqc()
    for value in np.linspace(0, 1, 5):
        sampler.run([(qc, [value])])
    assert len(calls) == 1
    assert len(backend.service.client.jobs) == 5
    values = [job["params"]["pubs"][0][1] for job in backend.service.client.jobs]
    assert len({str(v) for v in values}) == 5  # new values each time, same text


def test_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        SamplerV2(mode="rest_simulator")
    with pytest.raises(ValueError, match="mode"):
        EstimatorV2()


def test_options_replaced_from_dict(backend):
    sampler = SamplerV2(mode=backend)
    sampler.options = {"default_shots": 3}
    assert sampler.options.default_shots == 3
    with pytest.raises(AttributeError, match="shots"):
        sampler.options = {"shots": 3}
