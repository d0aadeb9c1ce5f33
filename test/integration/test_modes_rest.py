"""Session and Batch lifecycles against the real reference server."""

from __future__ import annotations

import time

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.providers import JobStatus
from qiskit.transpiler import generate_preset_pass_manager

from qiskit_rest_provider import Batch, SamplerV2, Session
from qiskit_rest_provider.exceptions import InvalidInputError, JobCancelledError, RequestError

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def bell(ideal):
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return generate_preset_pass_manager(optimization_level=1, backend=ideal).run(qc)


def test_session_lifecycle(service, ideal, bell):
    with Session(ideal, max_time="10m") as session:
        assert session.session_id and session.id == session.session_id
        details = session.details()
        assert details["mode"] == "dedicated"
        assert details["backend_name"] == "rest_simulator"
        assert session.status().startswith(("Pending", "In progress"))
        sampler = SamplerV2()  # no mode inside the block: the enclosing session
        assert sampler.mode is session
        job = sampler.run([bell], shots=20)
        assert job.session_id == session.session_id
        assert job.result()[0].data.meas.num_shots == 20
        assert service.job(job.job_id()).session_id == session.session_id
        again = Session.from_id(session.session_id, service=service)
        assert again.session_id == session.session_id
        with pytest.raises(InvalidInputError, match="mode"):
            Batch.from_id(session.session_id, service=service)
    # Leaving the block closed the session: it takes no new jobs.
    assert session.details()["accepting_jobs"] is False
    with pytest.raises(RequestError):
        SamplerV2(mode=session).run([bell], shots=5)


def test_batch_close_lets_queued_jobs_finish(ideal, bell):
    with Batch(ideal) as batch:
        sampler = SamplerV2(mode=batch)
        jobs = [sampler.run([bell], shots=10 + i) for i in range(4)]
        assert batch.details()["mode"] == "batch"
    for i, job in enumerate(jobs):
        assert job.result(timeout=120)[0].data.meas.num_shots == 10 + i
        assert job.session_id == batch.session_id


def test_batch_cancel_cancels_queued_jobs(ideal, reference_server):
    n = 16
    p = ParameterVector("p", n)
    qc = QuantumCircuit(n)
    for _ in range(30):
        for q in range(n):
            qc.rx(p[q], q)
        for q in range(n - 1):
            qc.cz(q, q + 1)
    qc.measure_all()  # native on the all-to-all ideal simulator
    values = np.random.default_rng(1).uniform(0, np.pi, (2, n))
    batch = Batch(ideal)
    sampler = SamplerV2(mode=batch, options={"max_execution_time": 30})
    jobs = [sampler.run([(qc, values)], shots=50) for _ in range(4)]
    try:
        batch.cancel()
        time.sleep(1.0)
        cancelled = [job for job in jobs if job.status() is JobStatus.CANCELLED]
        # Every job still queued was cancelled; at most one per worker (2) had started.
        assert len(cancelled) >= len(jobs) - 2
        for job in cancelled:
            with pytest.raises(JobCancelledError):
                job.result(timeout=10)
        assert batch.details()["accepting_jobs"] is False
        with pytest.raises(RequestError):
            sampler.run([(qc, values[0])], shots=5)
    finally:
        for job in jobs:
            try:
                job.cancel()
            except RequestError:  # already final
                pass
