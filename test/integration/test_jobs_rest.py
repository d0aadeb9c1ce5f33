"""RestPrimitiveJob against the real reference server: refetch, cancel, timeout, failure."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.providers import JobStatus
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import generate_preset_pass_manager

from qiskit_rest_provider import EstimatorV2, SamplerV2
from qiskit_rest_provider.exceptions import (
    JobCancelledError,
    JobTimeoutError,
    RequestError,
)

pytestmark = pytest.mark.timeout(300)


def _bell(backend):
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return generate_preset_pass_manager(optimization_level=1, backend=backend).run(qc)


def _long_job(backend):
    """A sampler job that keeps a worker busy for seconds; it stops itself after 30 s.

    Many parameter sets, since one 16-qubit set takes the server only milliseconds (ideal
    end-measured circuits are sampled from exact probabilities).
    """
    n, layers = 16, 30
    p = ParameterVector("p", n)
    qc = QuantumCircuit(n)
    for _ in range(layers):
        for q in range(n):
            qc.rx(p[q], q)
        for q in range(n - 1):
            qc.cz(q, q + 1)
    qc.measure_all()  # rx and cz on any pair are native on the all-to-all ideal simulator
    values = np.random.default_rng(0).uniform(0, np.pi, (400, n))
    sampler = SamplerV2(mode=backend, options={"max_execution_time": 30})
    return sampler.run([(qc, values)], shots=100)


def test_result_is_identical_when_refetched_in_a_fresh_process(reference_server, ideal):
    sampler_job = SamplerV2(mode=ideal).run([_bell(ideal)], shots=300)
    qc = QuantumCircuit(2)
    qc.ry(0.4, 0)
    qc.cx(0, 1)
    isa = generate_preset_pass_manager(optimization_level=1, backend=ideal).run(qc)
    obs = [
        SparsePauliOp("ZZ").apply_layout(isa.layout),
        SparsePauliOp("XI").apply_layout(isa.layout),
    ]
    estimator_job = EstimatorV2(mode=ideal).run([(isa, obs)], precision=0.05)
    here_counts = sampler_job.result()[0].data.meas.array.tobytes()
    here_evs = estimator_job.result()[0].data.evs.tolist()
    code = (
        "import hashlib, json, os, sys\n"
        "from qiskit_rest_provider import ProviderService\n"
        "s = ProviderService(channel='ibm_quantum_platform', url=os.environ['T_URL'],\n"
        "                    token=os.environ['T_TOKEN'], instance=os.environ['T_INST'])\n"
        "sj, ej = s.job(sys.argv[1]), s.job(sys.argv[2])\n"
        "arr = sj.result()[0].data.meas.array.tobytes()\n"
        "print(json.dumps({'sampler': hashlib.sha256(arr).hexdigest(),\n"
        "                  'evs': ej.result()[0].data.evs.tolist(),\n"
        "                  'programs': [sj.program_id, ej.program_id],\n"
        "                  'status': [sj.status().name, ej.status().name]}))\n"
    )
    env = dict(
        os.environ,
        T_URL=reference_server.url,
        T_TOKEN=reference_server.token,
        T_INST=reference_server.instance_crn,
    )
    out = subprocess.run(
        [sys.executable, "-c", code, sampler_job.job_id(), estimator_job.job_id()],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    there = json.loads(out.stdout.strip().splitlines()[-1])
    assert there["sampler"] == hashlib.sha256(here_counts).hexdigest()
    assert there["evs"] == here_evs
    assert there["programs"] == ["sampler", "estimator"]
    assert there["status"] == ["DONE", "DONE"]


def test_job_details_tags_logs_metrics(service, ideal):
    sampler = SamplerV2(mode=ideal, options={"environment": {"job_tags": ["prim-test"]}})
    job = sampler.run([_bell(ideal)], shots=10)
    job.result()
    assert job.tags == ["prim-test"]
    assert job.backend().name == "rest_simulator"
    assert job.creation_date is not None
    assert job.program_id == "sampler"
    job.update_tags(["prim-test", "second"])
    again = service.job(job.job_id())
    assert sorted(again.tags) == ["prim-test", "second"]
    assert isinstance(job.logs(), str)
    metrics = job.metrics()
    assert isinstance(metrics, dict) and "timestamps" in metrics
    assert job.usage() >= 0
    assert job.status() is JobStatus.DONE and job.done() and job.in_final_state()


def test_timeout_then_cancel_queued_job(ideal):
    """result(timeout=0.01) raises JobTimeoutError; a job cancelled while queued is CANCELLED."""
    busy = [_long_job(ideal)]
    with pytest.raises(JobTimeoutError):
        busy[0].result(timeout=0.01)
    try:
        victim = None
        for _ in range(5):  # fill every worker until a new job stays queued
            candidate = _long_job(ideal)
            if candidate.status() is JobStatus.QUEUED:
                time.sleep(0.3)
                if candidate.status() is JobStatus.QUEUED:
                    victim = candidate
                    break
            busy.append(candidate)
        assert victim is not None, "the server never queued a job"
        victim.cancel()
        with pytest.raises(JobCancelledError):
            victim.result(timeout=30)
        assert victim.status() is JobStatus.CANCELLED
        assert victim.cancelled() and victim.in_final_state()
    finally:
        for job in busy:
            try:
                job.cancel()
            except Exception:  # already final
                pass
    for job in busy:
        assert job.wait_for_final_state(timeout=120) in (JobStatus.CANCELLED, JobStatus.DONE)


def test_oversized_job_is_refused_with_servers_reason(ideal):
    """A 32-qubit non-Clifford circuit needs a 64 GiB statevector: refused at submission.

    Before admission sized jobs (issue 11), it was accepted and failed in Aer; now the server
    answers 400 ``job_too_large`` naming the estimate and the limit (D13), and nothing runs.
    """
    n = ideal.num_qubits
    qc = QuantumCircuit(n)
    qc.h(range(n))
    qc.t(range(n))
    for q in range(n - 1):
        qc.cx(q, q + 1)
    for q in range(n // 2):  # entangle across every cut: no matrix product state fits either
        qc.cx(q, n - 1 - q)
        qc.t(q)
        qc.cx(n - 1 - q, q)
    qc.measure_all()
    with pytest.raises(RequestError) as info:
        SamplerV2(mode=ideal).run([qc], shots=10)  # h, t, cx are native there
    assert info.value.status_code == 400 and info.value.code == "job_too_large"
    assert "32-qubit statevector needs ~64 GiB" in str(info.value)
    assert "--max-job-memory" in str(info.value)


def test_plain_json_results_are_decoded_too(service, ideal):
    """A service that answers in the plain REST form (no ``support_qiskit``) still decodes."""
    from qiskit import ClassicalRegister, QuantumRegister
    from qiskit.circuit import Parameter
    from qiskit.primitives.containers.estimator_pub import EstimatorPub
    from qiskit.primitives.containers.sampler_pub import SamplerPub

    from qiskit_rest_provider.primitives import RestPrimitiveJob
    from qiskit_rest_provider.wire.pubs import encode_estimator_params, encode_sampler_params

    theta = Parameter("theta")
    qc = QuantumCircuit(
        QuantumRegister(2, "q"), ClassicalRegister(1, "output"), ClassicalRegister(9, "wide")
    )
    qc.rx(theta, 0)
    qc.x(1)
    qc.measure(0, 0)
    qc.measure(1, 9)
    grid = np.array([[0.0, np.pi, 0.0], [np.pi, 0.0, np.pi]])[..., None]
    params = encode_sampler_params([SamplerPub.coerce((qc, grid), 20)])
    params["support_qiskit"] = False
    created = service.client.create_job(program_id="sampler", backend=ideal.name, params=params)
    data = RestPrimitiveJob(service.client, created["id"]).result(timeout=60)[0].data
    assert data.output.shape == (2, 3) and data.wide.num_bits == 9
    for idx in np.ndindex(2, 3):
        assert data.output.get_int_counts(idx) == {int(grid[idx][0] > 1): 20}
        assert data.wide.get_int_counts(idx) == {256: 20}

    est = QuantumCircuit(1)
    est.rx(theta, 0)
    pub = EstimatorPub.coerce((est, [["Z"], ["X"]], [[0.0], [np.pi]]), 0.01)
    params = encode_estimator_params([pub])
    params["support_qiskit"] = False
    created = service.client.create_job(program_id="estimator", backend=ideal.name, params=params)
    result = RestPrimitiveJob(service.client, created["id"]).result(timeout=60)[0].data
    assert result.evs.shape == (2, 2)
    expected = np.array([[1.0, -1.0], [0.0, 0.0]])
    assert np.all(np.abs(result.evs - expected) <= 5 * result.stds + 1e-9)
