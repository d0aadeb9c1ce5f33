"""The seeds' REST workflow and the platform flow, verbatim over HTTP against ``serve``."""

from __future__ import annotations

import numpy as np
import pytest
import requests

pytest.importorskip("fastapi")

from qiskit.circuit import ClassicalRegister, Parameter, QuantumCircuit, QuantumRegister

from qiskit_rest_provider import wire

X_MEASURE = (
    'OPENQASM 3.0; include "stdgates.inc"; qubit[1] q; bit[1] c; x q[0]; c[0] = measure q[0];'
)


def test_seed_classic_workflow(reference_server):
    """Seeds 001/002: login → backends → job → Completed → samples 0x1 → session → logout → 401."""
    url = reference_server.url
    login = requests.post(
        f"{url}/api/users/loginWithToken", json={"apiToken": reference_server.token}, timeout=30
    )
    assert login.status_code == 200
    auth = login.json()
    assert {"id", "ttl", "created", "userId"} <= set(auth)
    headers = {"Content-Type": "application/json", "x-access-token": auth["id"]}

    backends = requests.get(f"{url}/runtime/backends", headers=headers, timeout=30)
    assert backends.status_code == 200
    assert "rest_simulator" in backends.json()["devices"]  # names without IBM-API-Version (D9)

    hub, group, project = reference_server.instance_hgp.split("/")
    job_input = {
        "program_id": "sampler",
        "backend": "rest_simulator",
        "hub": hub,
        "group": group,
        "project": project,
        "start_session": "False",
        "params": {"pubs": [[X_MEASURE]], "version": 2},
    }
    created = requests.post(f"{url}/runtime/jobs", headers=headers, json=job_input, timeout=60)
    assert created.status_code == 200, created.text
    job_id = created.json()["id"]
    assert created.json()["backend"] == "rest_simulator"

    job = reference_server.wait_job(f"{url}/runtime", job_id, headers)
    assert job["state"]["status"] == "Completed"
    assert job["status"] == "Completed"
    results = requests.get(f"{url}/runtime/jobs/{job_id}/results", headers=headers, timeout=30)
    assert results.status_code == 200
    samples = results.json()["results"][0]["data"]["c"]["samples"]
    assert len(samples) == 4096 and set(samples) == {"0x1"}

    session = requests.post(
        f"{url}/runtime/sessions",
        headers=headers,
        json={"backend": "rest_simulator", "instance": reference_server.instance_hgp},
        timeout=30,
    )
    assert session.status_code == 200, session.text
    session_id = session.json()["id"]
    in_session = dict(job_input, session_id=session_id)
    created = requests.post(f"{url}/runtime/jobs", headers=headers, json=in_session, timeout=60)
    assert created.status_code == 200, created.text
    job = reference_server.wait_job(f"{url}/runtime", created.json()["id"], headers)
    assert job["state"]["status"] == "Completed" and job["session_id"] == session_id
    closed = requests.delete(
        f"{url}/runtime/sessions/{session_id}/close", headers=headers, timeout=30
    )
    assert closed.status_code == 204
    details = requests.get(f"{url}/runtime/sessions/{session_id}", headers=headers, timeout=30)
    assert details.json()["state"] == "closed" and details.json()["accepting_jobs"] is False
    refused = requests.post(f"{url}/runtime/jobs", headers=headers, json=in_session, timeout=60)
    assert refused.status_code == 400 and session_id in refused.text

    logout = requests.post(f"{url}/api/users/logout", headers=headers, timeout=30)
    assert logout.status_code == 200
    after = requests.get(f"{url}/runtime/backends", headers=headers, timeout=30)
    assert after.status_code == 401
    assert after.json()["status_code"] == 401 and after.json()["errors"][0]["message"]


def _bell_params_circuit() -> QuantumCircuit:
    theta = Parameter("theta")
    qr = QuantumRegister(2, "q")
    a, b = ClassicalRegister(1, "alpha"), ClassicalRegister(1, "output")
    qc = QuantumCircuit(qr, a, b)
    qc.rx(theta, 0)
    qc.cx(0, 1)
    qc.measure(0, a[0])
    qc.measure(1, b[0])
    return qc


def test_platform_flow_qpy_params_and_qiskit_results(reference_server):
    """IAM JWT + Service-CRN; QPY circuit wrapper; Qiskit-encoded result; registers by name."""
    base = reference_server.runtime_url
    headers = reference_server.platform_headers()
    listing = requests.get(f"{base}/backends", headers=headers, timeout=30).json()["devices"]
    assert {"name", "status", "qubits", "queue_length"} <= set(listing[0])
    qc = _bell_params_circuit()
    values = np.array([[[0.0], [np.pi]], [[np.pi / 2], [np.pi]]])  # PUB shape (2, 2)
    params = {
        "pubs": [[wire.encode_qpy(qc), wire.encode_ndarray(values), 400]],
        "version": "2",
        "support_qiskit": True,
    }
    body = {"program_id": "sampler", "backend": "rest_simulator", "params": params}
    created = requests.post(f"{base}/jobs", headers=headers, json=body, timeout=60)
    assert created.status_code == 200, created.text
    job = reference_server.wait_job(base, created.json()["id"], headers)
    assert job["state"]["status"] == "Completed", job
    raw = requests.get(f"{base}/jobs/{job['id']}/results", headers=headers, timeout=30).content
    result = wire.decode_result(raw)
    data = result[0].data
    assert data.alpha.shape == (2, 2) and data.output.shape == (2, 2)
    assert data.alpha.num_shots == 400
    counts00 = data.alpha[0, 0].get_counts()
    assert counts00 == {"0": 400}
    counts01 = data.output[0, 1].get_counts()
    assert counts01 == {"1": 400}  # rx(pi) then cx: both bits 1
    p_half = data.alpha[1, 0].get_counts().get("1", 0) / 400
    assert abs(p_half - 0.5) < 5 * np.sqrt(0.25 / 400)

    logout = requests.post(f"{reference_server.url}/api/users/logout", headers=headers, timeout=30)
    assert logout.status_code == 200
    assert requests.get(f"{base}/jobs", headers=headers, timeout=30).status_code == 401


def test_plain_params_shapes_and_registers(reference_server):
    """QASM text with `input` parameters, PUB shape (2, 3), two registers, plain hex (D1)."""
    base = reference_server.runtime_url
    headers = reference_server.platform_headers()
    qasm = (
        'OPENQASM 3.0; include "stdgates.inc"; input float[64] theta; qubit[2] q; '
        "bit[1] first; bit[1] second; rx(theta) q[0]; x q[1]; "
        "first[0] = measure q[0]; second[0] = measure q[1];"
    )
    values = [[[0.0], [np.pi], [0.0]], [[np.pi], [0.0], [np.pi]]]
    params = {"pubs": [[qasm, values, 64]], "version": 2}
    body = {"program_id": "sampler", "backend": "rest_simulator", "params": params}
    created = requests.post(f"{base}/jobs", headers=headers, json=body, timeout=60)
    assert created.status_code == 200, created.text
    job = reference_server.wait_job(base, created.json()["id"], headers)
    assert job["state"]["status"] == "Completed", job
    plain = requests.get(f"{base}/jobs/{job['id']}/results", headers=headers, timeout=30).json()
    data = plain["results"][0]["data"]
    assert set(data) == {"first", "second"}
    first = np.array(data["first"]["samples"])
    assert first.shape == (2, 3, 64)
    expected = np.array([[0, 1, 0], [1, 0, 1]])
    for idx in np.ndindex(2, 3):
        assert set(first[idx]) == {hex(expected[idx])}
    assert set(np.array(data["second"]["samples"]).ravel()) == {"0x1"}


def test_estimator_plain_and_encoded(reference_server):
    """Estimator with observables as strings/dicts; plain numbers and Qiskit-encoded arrays."""
    base = reference_server.runtime_url
    headers = reference_server.platform_headers()
    qasm = 'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; x q[0];'
    plain_params = {
        "pubs": [[qasm, ["ZI", {"IZ": 1.0}, "ZZ"], None, 0.01]],
        "version": 2,
        "options": {"seed_estimator": 7},
    }
    body = {"program_id": "estimator", "backend": "rest_simulator", "params": plain_params}
    created = requests.post(f"{base}/jobs", headers=headers, json=body, timeout=60)
    assert created.status_code == 200, created.text
    job = reference_server.wait_job(base, created.json()["id"], headers)
    assert job["state"]["status"] == "Completed", job
    plain = requests.get(f"{base}/jobs/{job['id']}/results", headers=headers, timeout=30).json()
    evs = np.array(plain["results"][0]["data"]["evs"])
    assert evs.shape == (3,)
    assert np.allclose(evs, [1.0, -1.0, -1.0], atol=5 * 0.01 + 1e-9)

    encoded = dict(plain_params, support_qiskit=True)
    body["params"] = encoded
    created = requests.post(f"{base}/jobs", headers=headers, json=body, timeout=60)
    job = reference_server.wait_job(base, created.json()["id"], headers)
    raw = requests.get(f"{base}/jobs/{job['id']}/results", headers=headers, timeout=30).content
    result = wire.decode_result(raw)
    assert result[0].data.evs.shape == (3,)
    assert np.allclose(result[0].data.evs, [1.0, -1.0, -1.0], atol=0.05 + 1e-9)


def test_noisy_device_differs_from_ideal_within_error_scale(reference_server):
    """On the 5-qubit noisy line, `x; measure` gives mostly 1 with a few-percent error."""
    base = reference_server.runtime_url
    headers = reference_server.platform_headers()
    qasm = 'OPENQASM 3.0; include "stdgates.inc"; bit[1] c; x $0; c[0] = measure $0;'
    params = {
        "pubs": [[qasm, None, 4000]],
        "version": 2,
        "options": {"simulator": {"seed_simulator": 11}},
    }
    body = {"program_id": "sampler", "backend": "rest_line_5q", "params": params}
    created = requests.post(f"{base}/jobs", headers=headers, json=body, timeout=60)
    assert created.status_code == 200, created.text
    job = reference_server.wait_job(base, created.json()["id"], headers)
    assert job["state"]["status"] == "Completed", job
    samples = requests.get(f"{base}/jobs/{job['id']}/results", headers=headers, timeout=30).json()
    ones = sum(s == "0x1" for s in samples["results"][0]["data"]["c"]["samples"])
    error = 1 - ones / 4000
    assert 0 < error < 0.2  # noisy, but nowhere near random
