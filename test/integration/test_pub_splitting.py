"""A lone job uses every worker: its PUBs (and a big PUB's shots) are split and merged.

User story: on the default two-worker server, one user submits one 8-PUB job while nothing else
runs. Both workers run parts of it at the same time, and the seeded result is exactly the one a
single-worker server (no split) gives. Cancelling a split job frees every worker; another
instance's Bell job submitted meanwhile gets a worker after at most one part, not after the whole
job.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from workloads import slow_qasm

from qiskit_rest_provider.wire.results import decode_result

pytest.importorskip("fastapi")

OTHER = "other/split/project"
BELL = (
    'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] c; h q[0]; cx q[0], q[1]; '
    "c = measure q;"
)
# ISA on rest_line_5q (sx, rz, cz, measure); each job here is estimated above the least work
# worth splitting (split.SPLIT_MIN_SECONDS)
LINE_ISA = (
    "OPENQASM 3.0; bit[2] c; sx $0; rz({a}) $0; sx $0; cz $0, $1; sx $1; rz({b}) $1; "
    "c[0] = measure $0; c[1] = measure $1;"
)


def _ansatz(seed: int, n: int = 16, layers: int = 6) -> str:
    rng = np.random.default_rng(seed)
    lines = ['OPENQASM 3.0; include "stdgates.inc";', f"qubit[{n}] q; bit[{n}] c;"]
    for _ in range(layers):
        lines += [f"ry({a:.6f}) q[{i}];" for i, a in enumerate(rng.uniform(0, 3, n))]
        lines += [f"cx q[{i}], q[{i + 1}];" for i in range(n - 1)]
    lines.append("c = measure q;")
    return " ".join(lines)


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


@pytest.fixture(scope="module")
def servers(_session_factory):
    other = "other-" + secrets.token_hex(8)
    args = ["--cancel-grace", "1", "--rate-limit", "1000"]
    two = _session_factory.start(workers=2, extra_tokens={other: OTHER}, args=args)
    one = _session_factory.start(workers=1, args=args)
    yield two, one, other
    _session_factory.stop(two)
    _session_factory.stop(one)


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"apikey {token}"}


def _submit(server, program, backend, params, token=None) -> str:
    body = {"program_id": program, "backend": backend, "params": {**params, "version": 2}}
    r = requests.post(
        f"{server.runtime_url}/jobs", headers=_headers(token or server.token), json=body, timeout=60
    )
    assert r.status_code == 200, r.text
    return r.json()["id"]


def _run(server, program, backend, params, token=None):
    job_id = _submit(server, program, backend, params, token)
    headers = _headers(token or server.token)
    job = server.wait_job(server.runtime_url, job_id, headers, timeout=120)
    assert job["state"]["status"] == "Completed", job
    r = requests.get(f"{server.runtime_url}/jobs/{job_id}/results", headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    metrics = requests.get(
        f"{server.runtime_url}/jobs/{job_id}/metrics", headers=headers, timeout=30
    ).json()
    return decode_result(r.content), metrics


def _assert_parallel(metrics: dict, parts: int) -> None:
    split = metrics["split"]
    assert split["parts"] == parts
    assert len(set(split["worker_pids"])) == 2, split  # both workers ran parts
    windows = split["part_windows"]
    first, second = windows[0], windows[1]  # handed out together, to the two idle workers
    assert max(first[0], second[0]) < min(first[1], second[1]), windows  # overlapping


def test_lone_sampler_job_is_spread_over_both_workers_with_the_unsplit_bits(servers):
    two, one, _ = servers
    params = {
        "pubs": [[_ansatz(j), None, 512] for j in range(8)],
        "options": {"simulator": {"seed_simulator": 1234}},
    }
    split, metrics = _run(two, "sampler", "rest_simulator", params)
    whole, whole_metrics = _run(one, "sampler", "rest_simulator", params)
    _assert_parallel(metrics, 4)
    assert [j for part in metrics["split"]["pub_indices"] for j in part] == list(range(8))
    assert "split" not in whole_metrics
    assert metrics["num_circuits"] == 8 and metrics["num_qubits"] == whole_metrics["num_qubits"]
    assert metrics["usage"]["quantum_seconds"] > 0
    for a, b in zip(split, whole, strict=True):
        assert np.array_equal(a.data.c.array, b.data.c.array)
    assert len(split[0].data.c.get_counts()) > 100  # real samples, not a constant


def test_lone_estimator_job_split_gives_the_unsplit_values(servers):
    two, one, _ = servers
    circuits = [_ansatz(j, n=17).replace("c = measure q;", "") for j in range(4)]
    pubs = [[circuit, ["Z" * 17, "X" * 17], None, 0.01] for circuit in circuits]
    params = {"pubs": pubs, "options": {"seed_estimator": 17}}
    split, metrics = _run(two, "estimator", "rest_simulator", params)
    whole, _ = _run(one, "estimator", "rest_simulator", params)
    assert metrics["split"]["parts"] == 4
    assert len(set(metrics["split"]["worker_pids"])) == 2
    # the same seeded noise on every value; the exact values themselves may differ in the last
    # bits here only because the one-worker server gives Aer two OpenMP threads (another
    # summation order), not because of the split (in one process they are equal bit for bit:
    # test/unit/test_split.py)
    for a, b in zip(split, whole, strict=True):
        np.testing.assert_allclose(a.data.evs, b.data.evs, rtol=0, atol=1e-12)
        assert np.array_equal(a.data.stds, b.data.stds)


def test_big_shots_pub_splits_by_shots_with_the_unsplit_counts(servers):
    two, one, _ = servers
    shots = 90_000  # six shot chunks of 16,384 (the last one smaller), in four parts
    params = {
        "pubs": [[LINE_ISA.format(a=0.7, b=0.3), None, shots]],
        "options": {"simulator": {"seed_simulator": 99}},
    }
    split, metrics = _run(two, "sampler", "rest_line_5q", params)
    whole, _ = _run(one, "sampler", "rest_line_5q", params)
    assert metrics["split"]["parts"] == 4
    assert metrics["split"]["pub_indices"] == [[0], [0], [0], [0]]
    assert split[0].data.c.num_shots == shots
    assert np.array_equal(split[0].data.c.array, whole[0].data.c.array)
    assert split[0].data.c.get_counts() == whole[0].data.c.get_counts()


def test_cancel_of_a_split_job_frees_every_worker(servers):
    two, _, _ = servers
    base, headers = two.runtime_url, _headers(two.token)
    long_job = _submit(
        two, "sampler", "rest_simulator", {"pubs": [[slow_qasm(), None, 60_000]] * 4}
    )
    deadline = time.monotonic() + 30
    while (
        requests.get(f"{base}/jobs/{long_job}", headers=headers, timeout=30).json()["state"][
            "status"
        ]
        != "Running"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)  # both parts are on their workers
    r = requests.post(f"{base}/jobs/{long_job}/cancel", headers=headers, timeout=30)
    assert r.status_code == 204, r.text
    state = requests.get(f"{base}/jobs/{long_job}", headers=headers, timeout=30).json()["state"]
    assert state["status"] == "Cancelled"
    # a new lone job gets both workers again, once the killed ones are replaced
    params = {"pubs": [[_ansatz(j, n=17), None, 100] for j in range(4)]}
    pids: set[int] = set()
    deadline = time.monotonic() + 60
    while len(pids) < 2:
        assert time.monotonic() < deadline, pids
        _, metrics = _run(two, "sampler", "rest_simulator", params)
        pids = set(metrics.get("split", {}).get("worker_pids", []))  # whole while a kill lags
    state = requests.get(f"{base}/jobs/{long_job}", headers=headers, timeout=30).json()["state"]
    assert state["status"] == "Cancelled"


def test_another_instance_is_served_while_a_split_job_runs(servers):
    two, _, other = servers
    base = two.runtime_url
    a, b = _headers(two.token), _headers(other)
    # four parts of ~1 s each (two PUBs of 3000 slow shots), two per worker
    big = _submit(two, "sampler", "rest_simulator", {"pubs": [[slow_qasm(), None, 3000]] * 8})
    deadline = time.monotonic() + 30
    while (
        requests.get(f"{base}/jobs/{big}", headers=a, timeout=30).json()["state"]["status"]
        != "Running"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    bell = _submit(two, "sampler", "rest_simulator", {"pubs": [[BELL, None, 100]]}, other)
    done = two.wait_job(base, bell, b, timeout=60)
    assert done["state"]["status"] == "Completed"
    # B ran while A's job was still running: it waited for one part, not for the whole job
    assert (
        requests.get(f"{base}/jobs/{big}", headers=a, timeout=30).json()["state"]["status"]
        == "Running"
    )
    finished = two.wait_job(base, big, a, timeout=120)
    assert finished["state"]["status"] == "Completed"
    metrics = requests.get(f"{base}/jobs/{big}/metrics", headers=a, timeout=30).json()
    assert metrics["split"]["parts"] == 4


def test_a_split_job_reports_its_finished_parts_as_progress(servers):
    from qiskit_rest_provider.client.events import parse_event_stream

    two, _, _ = servers
    base, headers = two.runtime_url, _headers(two.token)
    job_id = _submit(two, "sampler", "rest_simulator", {"pubs": [[slow_qasm(), None, 2000]] * 8})
    h = dict(headers, Accept="text/event-stream")
    with requests.get(f"{base}/jobs/{job_id}/events", headers=h, stream=True, timeout=120) as r:
        assert r.status_code == 200, r.text
        events = list(parse_event_stream(r.iter_content(chunk_size=None)))
    assert events[-1]["data"]["state"] == "Completed" and events[-1]["data"]["pubs_done"] == 8
    running = [e["data"]["pubs_done"] for e in events if e["data"]["state"] == "Running"]
    assert running == sorted(running)
    assert any(0 < done < 8 for done in running), events  # parts finished before the job


def test_a_part_whose_worker_dies_requeues_the_whole_job(servers):
    import os
    import signal

    two, _, _ = servers
    base, headers = two.runtime_url, _headers(two.token)
    job_id = _submit(two, "sampler", "rest_simulator", {"pubs": [[slow_qasm(), None, 6000]] * 4})
    while (
        requests.get(f"{base}/jobs/{job_id}", headers=headers, timeout=30).json()["state"]["status"]
        != "Running"
    ):
        time.sleep(0.05)
    time.sleep(0.3)  # both workers run a part now
    workers = [w for child in _children(two.process.pid) for w in _children(child)]
    assert workers, "no worker processes found"  # the forkserver's children
    os.kill(workers[0], signal.SIGTERM)  # a crash, not the OOM killer's SIGKILL
    done = two.wait_job(base, job_id, headers, timeout=120)
    assert done["state"]["status"] == "Completed", done
    logs = requests.get(f"{base}/jobs/{job_id}/logs", headers=headers, timeout=30).text
    assert "re-queued" in logs and logs.count("completed") == 1, logs
    metrics = requests.get(f"{base}/jobs/{job_id}/metrics", headers=headers, timeout=30).json()
    assert metrics["num_circuits"] == 4


def _busy_estimator_params(sets: int) -> dict:
    """One estimator PUB (never split) of ``sets`` parameter sets on 18 qubits: about a second."""
    from qiskit import QuantumCircuit, qasm3
    from qiskit.circuit import Parameter
    from qiskit.primitives.containers.estimator_pub import EstimatorPub
    from qiskit.quantum_info import SparsePauliOp

    from qiskit_rest_provider.wire.pubs import encode_estimator_params

    theta = Parameter("theta")
    circuit = qasm3.loads(_ansatz(5, n=18, layers=12).replace("c = measure q;", ""))
    circuit.remove_final_measurements()
    bound = QuantumCircuit(circuit.num_qubits)
    bound.ry(theta, 0)
    bound.compose(circuit, inplace=True)
    values = np.linspace(0, 1, sets).reshape(sets, 1)
    pub = EstimatorPub.coerce((bound, SparsePauliOp("Z" * 18), values))
    return encode_estimator_params([pub])


def test_a_job_started_beside_a_busy_worker_takes_it_too_once_free(servers):
    """The last job of a burst: one worker is free, the other still runs another job. It starts
    on the free one, split, and its later parts go to the other worker once that finishes —
    not the whole job on one worker while the other idles — with the unsplit seeded bits."""
    two, one, _ = servers
    base, headers = two.runtime_url, _headers(two.token)
    busy = _submit(two, "estimator", "rest_simulator", _busy_estimator_params(8))
    while (
        requests.get(f"{base}/jobs/{busy}", headers=headers, timeout=30).json()["state"]["status"]
        != "Running"
    ):
        time.sleep(0.02)
    params = {
        "pubs": [[_ansatz(j, n=19, layers=12), None, 256] for j in range(8)],
        "options": {"simulator": {"seed_simulator": 4321}},
    }
    split, metrics = _run(two, "sampler", "rest_simulator", params)
    busy_job = two.wait_job(base, busy, headers, timeout=120)
    assert busy_job["state"]["status"] == "Completed"
    busy_metrics = requests.get(f"{base}/jobs/{busy}/metrics", headers=headers, timeout=30).json()
    assert "split" not in busy_metrics  # it held one worker throughout
    windows = metrics["split"]["part_windows"]
    assert metrics["split"]["parts"] == 4, metrics["split"]
    assert len(set(metrics["split"]["worker_pids"])) == 2, metrics["split"]
    # the first part ran alone (the other worker was busy), a later one on the freed worker
    assert windows[0][0] < windows[1][0] or windows[0][0] < windows[2][0], windows
    whole, _ = _run(one, "sampler", "rest_simulator", params)
    for a, b in zip(split, whole, strict=True):
        assert np.array_equal(a.data.c.array, b.data.c.array)
