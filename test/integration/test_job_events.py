"""Live job events (D14) against the real reference server: order, replay, many jobs, isolation,
our client's callback, and its fallback to the long-poll where the service lacks the endpoint."""

from __future__ import annotations

import time

import pytest
import requests

pytest.importorskip("fastapi")

from qiskit_rest_provider.client import events as client_events  # noqa: E402
from qiskit_rest_provider.client.events import parse_event_stream  # noqa: E402

pytestmark = pytest.mark.timeout(300)

BELL = (
    'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] meas; h q[0]; cx q[0], q[1]; '
    "meas[0] = measure q[0]; meas[1] = measure q[1];"
)


def _bell(backend):
    from qiskit import QuantumCircuit
    from qiskit.transpiler import generate_preset_pass_manager

    qc = QuantumCircuit(2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure_all()
    return generate_preset_pass_manager(optimization_level=1, backend=backend).run(qc)


@pytest.fixture(scope="module")
def api(reference_server):
    """(runtime URL, platform headers of the main instance)."""
    return reference_server.runtime_url, reference_server.platform_headers()


def _submit(base, headers, *, pubs=1, shots=16):
    body = {
        "program_id": "sampler",
        "backend": "rest_simulator",
        "params": {"pubs": [[BELL, None, shots]] * pubs, "version": 2},
    }
    r = requests.post(f"{base}/jobs", headers=headers, json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["id"]


def _events(url, headers, *, last=None, timeout=60):
    h = dict(headers, Accept="text/event-stream")
    if last is not None:
        h["Last-Event-ID"] = str(last)
    with requests.get(url, headers=h, stream=True, timeout=timeout) as r:
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/event-stream")
        return list(parse_event_stream(r.iter_content(chunk_size=None)))


def test_one_job_streams_queued_running_completed_with_final_last(reference_server, api):
    base, headers = api
    job_id = _submit(base, headers, pubs=3)
    events = _events(f"{base}/jobs/{job_id}/events", headers)
    states = [e["data"]["state"] for e in events if e["event"] != "progress"]
    assert states[0] == "Queued"
    assert states[-1] == "Completed"
    assert states == [s for s in ("Queued", "Running", "Completed") if s in states]
    assert events[-1]["event"] == "final" and sum(e["event"] == "final" for e in events) == 1
    ids = [e["id"] for e in events]
    assert all(isinstance(i, int) for i in ids) and ids == sorted(ids) and len(set(ids)) == len(ids)
    for e in events:
        assert set(e["data"]) >= {"state", "reason", "queue_position", "pubs_done", "pubs_total"}
        assert e["data"]["job_id"] == job_id and e["data"]["pubs_total"] == 3
    assert events[-1]["data"]["pubs_done"] == 3
    # a job split across the workers reports the PUBs its finished parts hold while Running
    done = [e["data"]["pubs_done"] for e in events[:-1]]
    assert done == sorted(done) and all(0 <= d < 3 for d in done)
    assert all(e["data"]["pubs_done"] == 0 for e in events[:-1] if e["data"]["state"] != "Running")
    # Only known while the stream saw it Queued (a history filled in later has no position).
    assert events[0]["data"]["queue_position"] is None or events[0]["data"]["queue_position"] >= 0
    assert all(e["data"]["queue_position"] is None for e in events[1:] if e["event"] != "progress")
    # A stream opened after the fact tells the same story with the same ids (shared history).
    again = _events(f"{reference_server.url}/runtime/jobs/{job_id}/events", headers)
    assert [e["id"] for e in again] == ids


def test_last_event_id_replays_only_later_events(api):
    base, headers = api
    job_id = _submit(base, headers)
    events = _events(f"{base}/jobs/{job_id}/events", headers)
    assert len(events) >= 2
    first = events[0]["id"]
    replay = _events(f"{base}/jobs/{job_id}/events", headers, last=first)
    assert replay == events[1:]
    # The query parameter stands in for the header (browsers' EventSource cannot set it).
    with requests.get(
        f"{base}/jobs/{job_id}/events",
        params={"last_event_id": events[-2]["id"]},
        headers=headers,
        stream=True,
        timeout=60,
    ) as r:
        assert list(parse_event_stream(r.iter_content(chunk_size=None))) == events[-1:]
    # An id from an earlier server process (below this one's) gets the current state first.
    stale = _events(f"{base}/jobs/{job_id}/events", headers, last=1)
    assert stale == events[-1:]
    bad = requests.get(
        f"{base}/jobs/{job_id}/events",
        headers=dict(headers, **{"Last-Event-ID": "nope"}),
        timeout=30,
    )
    assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["errors"][0]["message"]


def test_stream_of_several_jobs_ends_after_every_final(api):
    base, headers = api
    ids = [_submit(base, headers) for _ in range(3)]
    events = _events(f"{base}/jobs/events?ids={','.join(ids)}", headers)
    finals = {e["data"]["job_id"]: e for e in events if e["event"] == "final"}
    assert set(finals) == set(ids)
    assert {e["data"]["job_id"] for e in events} == set(ids)
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    for job_id in ids:
        mine = [e for e in events if e["data"]["job_id"] == job_id]
        assert mine[0]["data"]["state"] == "Queued" and mine[-1]["event"] == "final"
    # Replay across the jobs from one id: only the later events.
    middle = events[len(events) // 2]["id"]
    replay = _events(f"{base}/jobs/events?ids={','.join(ids)}", headers, last=middle)
    assert replay == [e for e in events if e["id"] > middle]
    missing = requests.get(f"{base}/jobs/events", headers=headers, timeout=30)
    assert missing.status_code == 400 and "ids" in missing.json()["errors"][0]["message"]


def test_session_stream_follows_its_jobs(api):
    base, headers = api
    r = requests.post(
        f"{base}/sessions",
        headers=headers,
        json={"backend": "rest_simulator", "mode": "batch"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    session_id = r.json()["id"]
    body = {
        "program_id": "sampler",
        "backend": "rest_simulator",
        "session_id": session_id,
        "params": {"pubs": [[BELL, None, 16]], "version": 2},
    }
    ids = [
        requests.post(f"{base}/jobs", headers=headers, json=body, timeout=60).json()["id"]
        for _ in range(2)
    ]
    closed = requests.patch(
        f"{base}/sessions/{session_id}",
        headers=headers,
        json={"accepting_jobs": False},
        timeout=30,
    )
    assert closed.status_code in (200, 204), closed.text
    events = _events(f"{base}/jobs/events?session_id={session_id}", headers)
    assert {e["data"]["job_id"] for e in events if e["event"] == "final"} == set(ids)


def test_no_events_of_another_instances_job(reference_server, api):
    base, headers = api
    other = reference_server.platform_headers(reference_server.other_token)
    theirs = _submit(base, other)
    mine = _submit(base, headers)
    single = requests.get(f"{base}/jobs/{theirs}/events", headers=headers, timeout=30)
    plain = requests.get(f"{base}/jobs/{theirs}", headers=headers, timeout=30)
    assert single.status_code == plain.status_code == 404
    assert single.json()["errors"][0]["code"] == "job_not_found"
    events = _events(f"{base}/jobs/events?ids={theirs},{mine}", headers)
    assert {e["data"]["job_id"] for e in events} == {mine}
    assert _events(f"{base}/jobs/events?ids={theirs}", headers) == []
    # The owner does see them.
    assert _events(f"{base}/jobs/{theirs}/events", other)[-1]["event"] == "final"


def test_client_callback_sees_the_states_in_order(service, ideal):
    from qiskit_rest_provider import SamplerV2

    job = SamplerV2(mode=ideal).run([_bell(ideal)] * 2, shots=100)
    seen: list[dict] = []
    result = job.result(timeout=120, callback=seen.append)
    assert sum(result[0].data.meas.get_counts().values()) == 100
    states = [d["state"] for d in seen]
    assert states[0] == "Queued" and states[-1] == "Completed"
    assert states == sorted(states, key=["Queued", "Running", "Completed"].index)
    assert job._events_supported is True  # it followed the stream, not the long-poll
    assert job.progress()["state"] == "Completed"
    assert job.progress()["pubs_done"] == job.progress()["pubs_total"] == 2
    # Plain client method: parsed dicts, ending with the final event.
    events = list(service._client.job_events(job.job_id()))
    assert events[-1]["event"] == "final" and events[-1]["data"]["state"] == "Completed"
    # progress=True on a non-terminal does nothing visible and still waits correctly.
    assert job.wait_for_final_state(timeout=30, progress=True).name == "DONE"


def test_client_falls_back_to_long_poll_where_the_endpoint_is_missing(service, ideal, monkeypatch):
    from qiskit_rest_provider import SamplerV2

    # The real server, but the client asks a path the service does not have (answers 404):
    # exactly what a service without the extension answers.
    monkeypatch.setattr(client_events, "EVENTS_SUFFIX", "no-such-events-route")
    job = SamplerV2(mode=ideal).run([_bell(ideal)], shots=50)
    seen: list[dict] = []
    result = job.result(timeout=120, callback=seen.append)
    assert sum(result[0].data.meas.get_counts().values()) == 50
    assert seen and seen[-1]["state"] == "Completed"
    assert job._events_supported is False


def test_stream_is_bounded_and_sends_keep_alives(server_factory):
    server = server_factory.start(
        workers=1, args=["--event-stream-seconds", "2", "--event-heartbeat", "0.5"]
    )
    base, headers = server.runtime_url, server.platform_headers()
    # A session that stays open keeps a stream alive until its lifetime ends.
    r = requests.post(
        f"{base}/sessions",
        headers=headers,
        json={"backend": "rest_simulator", "mode": "batch"},
        timeout=30,
    )
    session_id = r.json()["id"]
    start = time.monotonic()
    with requests.get(
        f"{base}/jobs/events?session_id={session_id}",
        headers=headers,
        stream=True,
        timeout=30,
    ) as resp:
        raw = b"".join(resp.iter_content(chunk_size=None))
    elapsed = time.monotonic() - start
    assert 1.5 <= elapsed < 10
    assert raw.count(b": keep-alive") >= 2
