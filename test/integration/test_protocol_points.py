"""Protocol points the official client's own integration suite hits (issue 10).

* a ``private`` job: params never shown, result readable once (the official client's
  ``job.result()`` is truthy the first time and falsy the second, as in qiskit-ibm-runtime's
  ``test_private_option``); two concurrent readers cannot both get it;
* ``calibration_id``: configuration/properties carry the current one and accept it; an unknown one
  is a 404 naming ``calibration_id`` (``service.backend(name, calibration_id=...)`` too);
* ``GET /version`` at the root and under both runtime prefixes (no auth);
* ``GET /instances/usage`` in whole seconds, with the remaining seconds (``service.usage()``).

Plain HTTP against the shared ``reference_server``, and through qiskit-ibm-runtime where it
exercises the point.
"""

from __future__ import annotations

import concurrent.futures as cf

import pytest
import requests

pytest.importorskip("fastapi")

BELL = (
    'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] meas; h q[0]; cx q[0], q[1]; '
    "meas[0] = measure q[0]; meas[1] = measure q[1];"
)


def _check_d10(r: requests.Response, status: int, *words: str) -> None:
    assert r.status_code == status, (r.status_code, r.text[:500])
    body = r.json()
    assert set(body) == {"errors", "trace", "status_code"} and body["status_code"] == status
    message = body["errors"][0]["message"]
    for word in words:
        assert word in message, (word, message)


@pytest.fixture(scope="module")
def headers(reference_server) -> dict[str, str]:
    return reference_server.platform_headers()


def _private_job(server, headers, shots: int = 50) -> str:
    body = {
        "program_id": "sampler",
        "backend": "rest_simulator",
        "params": {"pubs": [[BELL, None, shots]], "version": 2},
        "private": True,
    }
    r = requests.post(f"{server.runtime_url}/jobs", headers=headers, json=body, timeout=60)
    assert r.status_code == 200, r.text
    job_id = r.json()["id"]
    assert server.wait_job(server.runtime_url, job_id, headers)["state"]["status"] == "Completed"
    return job_id


# ---------------------------------------------------------------------------- private jobs
def test_private_job_result_is_readable_once_and_params_are_hidden(reference_server, headers):
    base = reference_server.runtime_url
    job_id = _private_job(reference_server, headers, shots=64)
    details = requests.get(f"{base}/jobs/{job_id}", headers=headers, timeout=30).json()
    assert details["private"] is True and "params" not in details
    listed = requests.get(
        f"{base}/jobs", headers=headers, params={"exclude_params": "false"}, timeout=30
    ).json()["jobs"]
    assert [j for j in listed if j["id"] == job_id][0].get("params") is None

    first = requests.get(f"{base}/jobs/{job_id}/results", headers=headers, timeout=30)
    assert first.status_code == 200
    samples = first.json()["results"][0]["data"]["meas"]["samples"]
    assert len(samples) == 64 and set(samples) <= {"0x0", "0x3"}
    for _ in range(2):
        again = requests.get(f"{base}/jobs/{job_id}/results", headers=headers, timeout=30)
        assert again.status_code == 204 and again.content == b""
    # The job itself is still there, and still says it is private.
    assert requests.get(f"{base}/jobs/{job_id}", headers=headers, timeout=30).json()["private"]


def test_two_concurrent_reads_of_a_private_result_get_it_once(reference_server, headers):
    base = reference_server.runtime_url
    for _ in range(3):
        job_id = _private_job(reference_server, headers)
        url = f"{base}/jobs/{job_id}/results"
        with cf.ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(requests.get, url, headers=headers, timeout=30) for _ in "abcd"]
            answers = [f.result().status_code for f in futures]
        assert sorted(answers) == [200, 204, 204, 204], answers


def test_public_job_result_is_readable_again(reference_server, headers):
    base = reference_server.runtime_url
    body = {
        "program_id": "sampler",
        "backend": "rest_simulator",
        "params": {"pubs": [[BELL, None, 20]], "version": 2},
    }
    job_id = requests.post(f"{base}/jobs", headers=headers, json=body, timeout=60).json()["id"]
    reference_server.wait_job(base, job_id, headers)
    for _ in range(2):
        r = requests.get(f"{base}/jobs/{job_id}/results", headers=headers, timeout=30)
        assert r.status_code == 200 and len(r.json()["results"][0]["data"]["meas"]["samples"]) == 20


# ---------------------------------------------------------------------------- calibration id
def test_calibration_id_is_exposed_and_checked(reference_server, headers):
    base = reference_server.runtime_url
    conf = requests.get(f"{base}/backends/rest_hex_27q/configuration", headers=headers, timeout=30)
    props = requests.get(f"{base}/backends/rest_hex_27q/properties", headers=headers, timeout=30)
    current = conf.json()["calibration_id"]
    assert current and props.json()["calibration_id"] == current
    assert conf.json()["backend_name"] == "rest_hex_27q" and props.json()["qubits"]
    other = requests.get(
        f"{base}/backends/rest_line_5q/configuration", headers=headers, timeout=30
    ).json()["calibration_id"]
    assert other != current  # one id per backend calibration

    for kind in ("configuration", "properties"):
        ok = requests.get(
            f"{base}/backends/rest_hex_27q/{kind}",
            headers=headers,
            params={"calibration_id": current},
            timeout=30,
        )
        assert ok.status_code == 200 and ok.json()["calibration_id"] == current
        _check_d10(
            requests.get(
                f"{base}/backends/rest_hex_27q/{kind}",
                headers=headers,
                params={"calibration_id": "no-such-calibration"},
                timeout=30,
            ),
            404,
            "calibration_id",
            "no-such-calibration",
        )
    # The same id is stable across requests (a restart derives it from the same documents).
    again = requests.get(f"{base}/backends/rest_hex_27q/configuration", headers=headers, timeout=30)
    assert again.json()["calibration_id"] == current


def test_job_with_an_unknown_calibration_id_is_refused(reference_server, headers):
    base = reference_server.runtime_url
    body = {
        "program_id": "sampler",
        "backend": "rest_simulator",
        "params": {"pubs": [[BELL, None, 10]], "version": 2},
        "calibration_id": "cal-stale",
    }
    _check_d10(
        requests.post(f"{base}/jobs", headers=headers, json=body, timeout=60),
        400,
        "calibration_id",
        "cal-stale",
    )
    current = requests.get(
        f"{base}/backends/rest_simulator/configuration", headers=headers, timeout=30
    ).json()["calibration_id"]
    ok = requests.post(
        f"{base}/jobs", headers=headers, json={**body, "calibration_id": current}, timeout=60
    )
    assert ok.status_code == 200, ok.text
    assert reference_server.wait_job(base, ok.json()["id"], headers)["state"]["status"] == (
        "Completed"
    )


# ---------------------------------------------------------------------------- version, usage
@pytest.mark.parametrize("path", ["/version", "/api/v1/version", "/runtime/version"])
def test_version_without_credentials(reference_server, path):
    from qiskit_rest_provider.version import __version__

    r = requests.get(reference_server.url + path, timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["version"] == __version__
    assert body["qiskit"] and body["qiskit_aer"] and "2026-04-15" in body["api_versions"]


def test_usage_is_in_whole_seconds(reference_server, headers):
    usage = requests.get(
        f"{reference_server.runtime_url}/instances/usage", headers=headers, timeout=30
    ).json()
    for key in (
        "usage_consumed_seconds",
        "usage_limit_seconds",
        "usage_allocation_seconds",
        "usage_remaining_seconds",
    ):
        assert type(usage[key]) is int and usage[key] >= 0, (key, usage)
    assert usage["usage_limit_seconds"] >= 28 * 24 * 3600  # the month's length
    assert usage["usage_remaining_seconds"] == (
        usage["usage_limit_seconds"] - usage["usage_consumed_seconds"]
    )
    assert usage["usage_limit_reached"] is False
    assert usage["instance_id"] == reference_server.instance_crn
    classic = requests.get(
        f"{reference_server.classic_runtime_url}/usage", headers=headers, timeout=30
    ).json()
    assert classic["usage_limit_seconds"] == usage["usage_limit_seconds"]


# ---------------------------------------------------------------------------- official client
@pytest.fixture
def service(official_service):
    return official_service


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_official_client_private_job_result_once(service):
    """qiskit-ibm-runtime's own ``test_private_option``, against this server."""
    from qiskit import QuantumCircuit, transpile
    from qiskit_ibm_runtime import SamplerV2

    backend = service.backend("rest_line_5q")
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    sampler = SamplerV2(mode=backend)
    sampler.options.environment.private = True
    job = sampler.run([transpile(bell, backend, optimization_level=1, seed_transpiler=1)])
    assert not job.inputs
    first = job.result()
    assert first and sum(first[0].data.meas.get_counts().values()) == 4096
    assert not job.result()  # private job results can only be retrieved once
    assert job.private
    assert service.job(job.job_id()).private is True


def test_official_client_calibration_id_and_usage(service, caplog):
    from qiskit.providers.exceptions import QiskitBackendNotFoundError

    backend = service.backend("rest_hex_27q")
    current = backend.configuration().calibration_id
    assert current
    pinned = service.backend("rest_hex_27q", calibration_id=current)
    assert pinned.calibration_id == current and pinned.num_qubits == 27
    assert pinned.properties().backend_name == "rest_hex_27q"
    # The client drops a backend whose configuration answers 4xx, and says why in its log.
    with pytest.raises(QiskitBackendNotFoundError):
        service.backend("rest_hex_27q", calibration_id="no-such-calibration")
    assert "404" in caplog.text and "calibration_id: no calibration" in caplog.text

    usage = service.usage()
    assert isinstance(usage["usage_remaining_seconds"], int)
    assert usage["usage_remaining_seconds"] == (
        usage["usage_limit_seconds"] - usage["usage_consumed_seconds"]
    )


def test_our_client_reads_a_private_result_once_and_then_says_why(reference_server):
    from qiskit import QuantumCircuit

    from qiskit_rest_provider import ProviderService, SamplerV2
    from qiskit_rest_provider.exceptions import QiskitRestProviderError

    ours = ProviderService(
        channel="ibm_quantum_platform",
        url=reference_server.url,
        token=reference_server.token,
        instance=reference_server.instance_crn,
    )
    ideal = ours.backend("rest_simulator")
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    sampler = SamplerV2(mode=ideal)
    sampler.options.environment.private = True
    job = sampler.run([bell], shots=32)
    counts = job.result()[0].data.meas.get_counts()
    assert sum(counts.values()) == 32 and set(counts) <= {"00", "11"}
    assert job.result()[0].data.meas.num_shots == 32  # the first read is cached by the job
    again = ours.job(job.job_id())
    with pytest.raises(QiskitRestProviderError, match="private and its results were already"):
        again.result()
