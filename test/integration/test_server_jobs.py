"""Job, session, backend and usage endpoints of the reference server over HTTP."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

pytest.importorskip("fastapi")

BELL = (
    'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] meas; h q[0]; cx q[0], q[1]; '
    "meas[0] = measure q[0]; meas[1] = measure q[1];"
)


@pytest.fixture(scope="module")
def api(reference_server):
    """(base URL, headers) on the platform channel."""
    return reference_server.runtime_url, reference_server.platform_headers()


def _submit(base, headers, *, shots=16, tags=None, program="sampler", extra=None, key=None):
    body = {
        "program_id": program,
        "backend": "rest_simulator",
        "params": {"pubs": [[BELL, None, shots]], "version": 2},
        "log_level": "WARNING",
    }
    if tags is not None:
        body["tags"] = tags
    body.update(extra or {})
    h = dict(headers, **({"Idempotency-Key": key} if key else {}))
    r = requests.post(f"{base}/jobs", headers=h, json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["id"]


def test_backend_endpoints(reference_server, api):
    base, headers = api
    names = requests.get(
        f"{base}/backends",
        headers={k: v for k, v in headers.items() if k != "IBM-API-Version"},
        timeout=30,
    )
    assert set(names.json()["devices"]) >= {
        "rest_simulator",
        "rest_line_5q",
        "rest_hex_27q",
        "rest_hex_127q",
    }
    objects = requests.get(f"{base}/backends", headers=headers, timeout=30).json()["devices"]
    by_name = {d["name"]: d for d in objects}
    assert by_name["rest_hex_127q"]["qubits"] == 127
    assert by_name["rest_simulator"]["is_simulator"] is True
    conf = requests.get(f"{base}/backends/rest_hex_27q/configuration", headers=headers, timeout=30)
    assert (
        conf.status_code == 200 and conf.json()["n_qubits"] == 27 and "online_date" in conf.json()
    )
    props = requests.get(f"{base}/backends/rest_hex_27q/properties", headers=headers, timeout=30)
    assert props.status_code == 200 and len(props.json()["qubits"]) == 27
    status = requests.get(
        f"{base}/backends/rest_line_5q/status", headers=headers, timeout=30
    ).json()
    assert status["state"] is True and "length_queue" in status
    missing = requests.get(f"{base}/backends/nope/configuration", headers=headers, timeout=30)
    assert missing.status_code == 404 and "nope" in missing.json()["errors"][0]["message"]
    ideal = requests.get(f"{base}/backends/rest_simulator/properties", headers=headers, timeout=30)
    assert ideal.status_code == 404


def test_job_details_logs_metrics_tags_delete(reference_server, api):
    base, headers = api
    job_id = _submit(base, headers, tags=["alpha", "beta"])
    job = reference_server.wait_job(base, job_id, headers)
    assert job["state"]["status"] == "Completed"
    assert job["program"]["id"] == "sampler" and job["tags"] == ["alpha", "beta"]
    assert job["created"].endswith("Z") and job["log_level"] == "warning"
    full = requests.get(f"{base}/jobs/{job_id}", headers=headers, timeout=30).json()
    assert full["params"]["pubs"][0][0] == BELL
    slim = requests.get(f"{base}/jobs/{job_id}?exclude_params=true", headers=headers, timeout=30)
    assert "params" not in slim.json()

    logs = requests.get(f"{base}/jobs/{job_id}/logs", headers=headers, timeout=30)
    assert logs.status_code == 200 and "completed" in logs.text
    metrics = requests.get(f"{base}/jobs/{job_id}/metrics", headers=headers, timeout=30).json()
    assert metrics["timestamps"]["created"] <= metrics["timestamps"]["running"]
    assert metrics["timestamps"]["running"] <= metrics["timestamps"]["finished"]
    assert metrics["usage"]["status"] == "completed" and metrics["num_circuits"] == 1
    assert set(metrics["stage_seconds"]) >= {"parse", "simulate", "encode"}

    put = requests.put(
        f"{base}/jobs/{job_id}/tags", headers=headers, json={"tags": ["gamma"]}, timeout=30
    )
    assert put.status_code == 204
    assert requests.get(f"{base}/jobs/{job_id}", headers=headers, timeout=30).json()["tags"] == [
        "gamma"
    ]
    bad = requests.put(
        f"{base}/jobs/{job_id}/tags", headers=headers, json={"tags": "x"}, timeout=30
    )
    assert bad.status_code == 400 and "tags" in bad.json()["errors"][0]["message"]

    again = requests.post(f"{base}/jobs/{job_id}/cancel", headers=headers, timeout=30)
    assert again.status_code == 409
    assert requests.delete(f"{base}/jobs/{job_id}", headers=headers, timeout=30).status_code == 204
    assert requests.get(f"{base}/jobs/{job_id}", headers=headers, timeout=30).status_code == 404
    assert requests.delete(f"{base}/jobs/{job_id}", headers=headers, timeout=30).status_code == 404


def test_list_filters_and_pagination(reference_server, api):
    base, headers = api
    tag = f"list-{uuid.uuid4().hex[:8]}"
    before = time.time()
    ids = [_submit(base, headers, tags=[tag, f"n{i}"]) for i in range(5)]
    for job_id in ids:
        reference_server.wait_job(base, job_id, headers)
    page = requests.get(
        f"{base}/jobs", headers=headers, params={"tags": tag, "limit": 2}, timeout=30
    )
    body = page.json()
    assert body["count"] == 5 and [j["id"] for j in body["jobs"]] == ids[::-1][:2]
    seen = []
    offset = 0
    while True:
        chunk = requests.get(
            f"{base}/jobs",
            headers=headers,
            timeout=30,
            params={"tags": tag, "limit": 2, "offset": offset, "sort": "ASC"},
        ).json()
        seen += [j["id"] for j in chunk["jobs"]]
        offset += len(chunk["jobs"])
        if offset >= chunk["count"]:
            break
    assert seen == ids
    both = requests.get(
        f"{base}/jobs", headers=headers, timeout=30, params=[("tags", tag), ("tags", "n3")]
    ).json()
    assert [j["id"] for j in both["jobs"]] == [ids[3]]
    done = requests.get(
        f"{base}/jobs",
        headers=headers,
        timeout=30,
        params={"tags": tag, "pending": "false", "program": "sampler", "backend": "rest_simulator"},
    ).json()
    assert done["count"] == 5
    pending = requests.get(
        f"{base}/jobs", headers=headers, timeout=30, params={"tags": tag, "pending": "true"}
    ).json()
    assert pending["count"] == 0
    after = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(before - 1))
    window = requests.get(
        f"{base}/jobs", headers=headers, timeout=30, params={"tags": tag, "created_after": after}
    ).json()
    assert window["count"] == 5
    future = requests.get(
        f"{base}/jobs",
        headers=headers,
        timeout=30,
        params={"tags": tag, "created_before": "2000-01-01T00:00:00Z"},
    ).json()
    assert future["count"] == 0
    bad = requests.get(
        f"{base}/jobs", headers=headers, params={"created_after": "yesterday"}, timeout=30
    )
    assert bad.status_code == 400 and "created_after" in bad.text


def test_idempotency_key_gives_one_job(reference_server, api):
    base, headers = api
    key = str(uuid.uuid4())
    tag = f"idem-{key[:8]}"
    first = _submit(base, headers, tags=[tag], key=key)
    second = _submit(base, headers, tags=[tag], key=key)
    assert first == second
    listing = requests.get(f"{base}/jobs", headers=headers, params={"tags": tag}, timeout=30).json()
    assert listing["count"] == 1


def test_sessions_lifecycle(reference_server, api):
    base, headers = api
    created = requests.post(
        f"{base}/sessions",
        headers=headers,
        timeout=30,
        json={
            "mode": "batch",
            "backend": "rest_simulator",
            "max_ttl": 600,
            "instance": reference_server.instance_crn,
        },
    )
    assert created.status_code == 200, created.text
    session = created.json()
    assert session["mode"] == "batch" and session["state"] == "open" and session["max_ttl"] == 600
    sid = session["id"]
    job_id = _submit(base, headers, extra={"session_id": sid})
    job = reference_server.wait_job(base, job_id, headers)
    assert job["session_id"] == sid
    details = requests.get(f"{base}/sessions/{sid}", headers=headers, timeout=30).json()
    assert details["state"] == "active" and details["activated_at"]
    in_session = requests.get(
        f"{base}/jobs", headers=headers, params={"session_id": sid}, timeout=30
    ).json()
    assert [j["id"] for j in in_session["jobs"]] == [job_id]
    patched = requests.patch(
        f"{base}/sessions/{sid}", headers=headers, json={"accepting_jobs": False}, timeout=30
    )
    assert patched.status_code == 204
    details = requests.get(f"{base}/sessions/{sid}", headers=headers, timeout=30).json()
    assert details["accepting_jobs"] is False and details["state"] == "closed"
    refused = requests.post(
        f"{base}/jobs",
        headers=headers,
        timeout=30,
        json={
            "program_id": "sampler",
            "backend": "rest_simulator",
            "session_id": sid,
            "params": {"pubs": [[BELL]], "version": 2},
        },
    )
    assert refused.status_code == 400 and sid in refused.json()["errors"][0]["message"]
    unknown = requests.get(f"{base}/sessions/nope", headers=headers, timeout=30)
    assert unknown.status_code == 404
    wrong_mode = requests.post(
        f"{base}/sessions",
        headers=headers,
        timeout=30,
        json={"mode": "solo", "backend": "rest_simulator"},
    )
    assert wrong_mode.status_code == 400 and "mode" in wrong_mode.text


def test_usage_and_classic_extras(reference_server, api):
    base, headers = api
    usage = requests.get(f"{base}/instances/usage", headers=headers, timeout=30).json()
    assert usage["instance_id"] == reference_server.instance_crn
    assert usage["usage_consumed_seconds"] >= 0 and usage["usage_limit_reached"] is False
    url = reference_server.url
    assert "api-auth" in requests.get(f"{url}/api/version", timeout=30).json()
    classic = reference_server.classic_headers()
    me = requests.get(f"{url}/api/users/me", headers=classic, timeout=30).json()
    assert me["urls"]["services"]["runtime"] == f"{url}/runtime"
    apikey = {"Authorization": f"apikey {reference_server.token}"}
    assert requests.get(f"{base}/jobs?limit=1", headers=apikey, timeout=30).status_code == 200


def test_cross_instance_isolation(reference_server, api):
    base, headers = api
    job_id = _submit(base, headers)
    reference_server.wait_job(base, job_id, headers)
    session = requests.post(
        f"{base}/sessions",
        headers=headers,
        timeout=30,
        json={"mode": "dedicated", "backend": "rest_simulator"},
    ).json()
    other = {"Authorization": f"Bearer {reference_server.iam_token(reference_server.other_token)}"}
    for method, path in [
        ("get", f"/jobs/{job_id}"),
        ("get", f"/jobs/{job_id}/results"),
        ("get", f"/jobs/{job_id}/logs"),
        ("get", f"/jobs/{job_id}/metrics"),
        ("post", f"/jobs/{job_id}/cancel"),
        ("delete", f"/jobs/{job_id}"),
        ("get", f"/sessions/{session['id']}"),
        ("delete", f"/sessions/{session['id']}/close"),
    ]:
        r = requests.request(method, f"{base}{path}", headers=other, timeout=30)
        assert r.status_code == 404, (method, path, r.status_code)
    listing = requests.get(f"{base}/jobs", headers=other, timeout=30).json()
    assert job_id not in [j["id"] for j in listing["jobs"]]
    usage = requests.get(f"{base}/instances/usage", headers=other, timeout=30).json()
    assert usage["instance_id"] != reference_server.instance_crn
    wrong_crn = dict(other, **{"Service-CRN": reference_server.instance_crn})
    assert requests.get(f"{base}/jobs", headers=wrong_crn, timeout=30).status_code == 403
    foreign = requests.post(
        f"{base}/jobs",
        headers=other,
        timeout=30,
        json={
            "program_id": "sampler",
            "backend": "rest_simulator",
            "session_id": session["id"],
            "params": {"pubs": [[BELL]], "version": 2},
        },
    )
    assert foreign.status_code == 404
