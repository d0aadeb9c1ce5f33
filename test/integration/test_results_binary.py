"""The binary result container against the real reference server (negotiated by ``Accept``)."""

from __future__ import annotations

import numpy as np
import pytest
import requests
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Parameter
from qiskit.primitives import BitArray
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit.quantum_info import SparsePauliOp
from workloads import bell_circuit

from qiskit_rest_provider import EstimatorV2, SamplerV2
from qiskit_rest_provider.wire import binary, decode_result, encode_sampler_params

pytestmark = pytest.mark.timeout(300)

BINARY_ACCEPT = "application/x-qiskit-rest-result, application/json;q=0.9"


def _assert_equal(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert type(x) is type(y) and x.data.shape == y.data.shape
        assert list(x.data.keys()) == list(y.data.keys())
        for name in x.data.keys():
            if isinstance(x.data[name], BitArray):
                assert x.data[name] == y.data[name], name
            else:
                np.testing.assert_array_equal(x.data[name], y.data[name])
        assert x.metadata == y.metadata
    assert a.metadata == b.metadata


def _get(reference_server, job_id, accept):
    headers = reference_server.platform_headers()
    headers.pop("Content-Type")
    if accept is not None:
        headers["Accept"] = accept
    url = f"{reference_server.runtime_url}/jobs/{job_id}/results"
    response = requests.get(url, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return response


def test_sampler_results_with_and_without_the_binary_type(reference_server, service, ideal):
    q = QuantumRegister(2, "q")
    regs = [ClassicalRegister(1, "a"), ClassicalRegister(9, "wide"), ClassicalRegister(2, "b")]
    qc = QuantumCircuit(q, *regs)
    theta = Parameter("theta")
    qc.rx(theta, 0)
    qc.h(1)
    qc.measure(0, regs[0][0])
    qc.measure(1, regs[1][8])
    qc.measure([0, 1], regs[2])
    job = SamplerV2(mode=ideal).run([(qc, [[0.0], [np.pi], [1.0]])], shots=2000)
    via_client = job.result()  # our client asks for the container
    assert via_client[0].data.wide.shape == (3,) and via_client[0].data.wide.num_shots == 2000
    assert via_client[0].data.a.get_int_counts(1) == {1: 2000}

    default = _get(reference_server, job.job_id(), None)  # requests sends Accept: */*
    json_only = _get(reference_server, job.job_id(), "application/json")
    packed = _get(reference_server, job.job_id(), BINARY_ACCEPT)
    prefers_json = _get(reference_server, job.job_id(), f"{binary.MEDIA_TYPE};q=0.5, */*")
    for response in (default, json_only, prefers_json):
        assert response.headers["content-type"].startswith("application/json")
        assert response.content.startswith(b"{") and response.content == default.content
    assert packed.headers["content-type"] == binary.MEDIA_TYPE
    assert "accept" in packed.headers["vary"].lower()
    assert binary.is_container(packed.content) and len(packed.content) < len(default.content)

    from_json = decode_result(default.content)
    _assert_equal(from_json, decode_result(packed.content))
    _assert_equal(from_json, via_client)
    assert service.client.job_results(job.job_id(), binary=False) == default.content
    assert service.client.job_results(job.job_id()) == packed.content


def test_estimator_results_decode_alike(reference_server, ideal):
    qc = QuantumCircuit(2)
    theta = Parameter("t")
    qc.ry(theta, 0)
    qc.cx(0, 1)
    observables = [[SparsePauliOp("ZZ")], [SparsePauliOp("XI")]]
    values = np.linspace(0, np.pi, 300).reshape(1, 300, 1)
    job = EstimatorV2(mode=ideal).run([(qc, observables, values)], precision=0.05)
    via_client = job.result()
    assert via_client[0].data.evs.shape == (2, 300)
    default = _get(reference_server, job.job_id(), None)
    packed = _get(reference_server, job.job_id(), BINARY_ACCEPT)
    assert packed.headers["content-type"] == binary.MEDIA_TYPE
    _assert_equal(decode_result(default.content), decode_result(packed.content))
    _assert_equal(decode_result(default.content), via_client)


def test_a_small_result_answers_json_to_a_client_that_prefers_the_container(
    reference_server, ideal
):
    """Under 4 KiB the container would save the client microseconds and cost the server a parse
    and a re-pack: the stored body is the answer, and decodes to the same result."""
    job = SamplerV2(mode=ideal).run([bell_circuit()], shots=1024)
    via_client = job.result()
    default = _get(reference_server, job.job_id(), None)
    packed = _get(reference_server, job.job_id(), BINARY_ACCEPT)
    assert len(default.content) < 4096 and packed.content == default.content
    assert packed.headers["content-type"].startswith("application/json")
    _assert_equal(decode_result(packed.content), via_client)
    counts = via_client[0].data.meas.get_counts()
    assert set(counts) <= {"00", "11"} and sum(counts.values()) == 1024


def test_plain_results_stay_json(reference_server):
    """A job submitted without ``support_qiskit`` has plain results: no container form."""
    base = reference_server.runtime_url
    headers = reference_server.platform_headers()
    qc = QuantumCircuit(1, 1)
    qc.x(0)
    qc.measure(0, 0)
    params = encode_sampler_params([SamplerPub.coerce(qc)], shots=16)
    params["support_qiskit"] = False
    body = {"program_id": "sampler", "backend": "rest_simulator", "params": params}
    created = requests.post(f"{base}/jobs", headers=headers, json=body, timeout=60)
    assert created.status_code == 200, created.text
    job = reference_server.wait_job(base, created.json()["id"], headers)
    assert job["state"]["status"] == "Completed", job
    response = _get(reference_server, job["id"], BINARY_ACCEPT)
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["results"][0]["data"]["c"]["samples"] == ["0x1"] * 16
    assert decode_result(response.content)[0].data.c.get_counts() == {"1": 16}
