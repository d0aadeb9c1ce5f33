"""Drop-in check: IBM's own client (qiskit-ibm-runtime, a test-only dependency) against our server.

The official client resolves IBM URLs; we point it at the reference server with its documented
hooks (``url_resolver``, ``IAM_URL``) and skip IBM Cloud's instance search
(``QISKIT_FUNCTIONS_EXPERIMENTAL``), as protocol §1.2/§2.2 describe.
"""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
runtime = pytest.importorskip("qiskit_ibm_runtime")

from qiskit import QuantumCircuit, transpile  # noqa: E402
from qiskit.quantum_info import SparsePauliOp  # noqa: E402


@pytest.fixture
def service(official_service):
    return official_service


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_official_client_sampler_estimator_batch(service):
    assert "rest_line_5q" in [b.name for b in service.backends()]
    backend = service.backend("rest_line_5q")
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    measured = transpile(
        bell.measure_all(inplace=False), backend, optimization_level=1, seed_transpiler=1
    )
    job = runtime.SamplerV2(mode=backend).run([measured], shots=400)
    counts = job.result()[0].data.meas.get_counts()
    assert sum(counts.values()) == 400
    assert counts.get("00", 0) + counts.get("11", 0) > 0.8 * 400  # noisy, mostly correlated
    assert job.usage() >= 0 and "completed" in job.logs()

    isa = transpile(bell, backend, optimization_level=1, seed_transpiler=1)
    observable = SparsePauliOp("ZZ").apply_layout(isa.layout)
    evs = runtime.EstimatorV2(mode=backend).run([(isa, observable)]).result()[0].data.evs
    assert 0.7 < float(evs) <= 1.0 + 0.1

    with runtime.Batch(backend=backend) as batch:
        in_batch = runtime.SamplerV2(mode=batch).run([measured], shots=50)
        assert sum(in_batch.result()[0].data.meas.get_counts().values()) == 50
    in_batch.update_tags(["official"])
    assert in_batch.tags == ["official"]
    assert in_batch.job_id() in [j.job_id() for j in service.jobs(limit=10)]
    service.delete_job(in_batch.job_id())
