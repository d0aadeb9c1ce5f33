"""The client commands of ``qiskit-rest-provider``, run for real against the session's server.

Every command runs as a subprocess (``python -m qiskit_rest_provider ...``) with ``HOME`` and
``QISKIT_REST_CONFIG_FILE`` in a temp dir, so saved accounts never leak in or out of the test.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import stat
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests
from workloads import slow_qasm

from qiskit_rest_provider.version import __version__

SLOW_SHOTS = 100_000


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QISKIT_REST_")}
    env.update(HOME=str(home), QISKIT_REST_CONFIG_FILE=str(home / "accounts.json"))
    env.update(extra)
    return env


def cli(home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120):
    """Run the command; returns the CompletedProcess (text)."""
    return subprocess.run(
        [sys.executable, "-m", "qiskit_rest_provider", *args],
        capture_output=True,
        text=True,
        env=env or _env(home),
        timeout=timeout,
    )


def _conn(server) -> list[str]:
    return ["--url", server.url, "--token", server.token]


def _one_line_error(proc, *needles: str) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: "), err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture(scope="module")
def finished_jobs(service, ideal):
    """A completed sampler job and estimator job (ideal simulator) with a unique tag."""
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import SparsePauliOp

    from qiskit_rest_provider import EstimatorV2, SamplerV2

    tag = "cli-" + secrets.token_hex(4)
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    measured = bell.measure_all(inplace=False)
    sampler = SamplerV2(mode=ideal)
    sampler.options.environment.job_tags = [tag]
    sjob = sampler.run([measured], shots=400)
    estimator = EstimatorV2(mode=ideal)
    estimator.options.environment.job_tags = [tag]
    ejob = estimator.run([(bell, [SparsePauliOp("ZZ"), SparsePauliOp("ZI")])])
    sjob.result(timeout=120)
    ejob.result(timeout=120)
    return {"tag": tag, "sampler": sjob.job_id(), "estimator": ejob.job_id()}


# ------------------------------------------------------------------------------ basics
def test_version(home):
    proc = cli(home, "--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"qiskit-rest-provider {__version__}"


def test_save_account_then_every_command_uses_it(home, reference_server):
    proc = cli(
        home,
        "save-account",
        "--url", reference_server.url,
        "--token", reference_server.token,
        "--instance", reference_server.instance_crn,
        "--set-as-default",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    path = home / "accounts.json"
    assert str(path) in proc.stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = json.loads(path.read_text())
    assert saved["default"] == "default"
    assert saved["accounts"]["default"]["url"] == reference_server.url
    # no --url/--token: the saved default account answers
    proc = cli(home, "backends", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "rest_simulator" in {b["name"] for b in json.loads(proc.stdout)}
    # a saved account of another name, picked with --account
    proc = cli(
        home, "save-account", "--url", "http://127.0.0.1:9", "--token", "t", "--name", "dead"
    )
    assert proc.returncode == 0, proc.stderr
    _one_line_error(cli(home, "backends", "--account", "dead"), "http://127.0.0.1:9")


def test_save_account_without_url_is_refused(home):
    proc = cli(home, "save-account", "--token", "t")
    _one_line_error(proc, "--url", "--channel")
    assert not (home / "accounts.json").exists()


def test_environment_variables_and_overrides(home, reference_server):
    env = _env(home, QISKIT_REST_URL=reference_server.url, QISKIT_REST_TOKEN=reference_server.token)
    proc = cli(home, "backends", env=env)
    assert proc.returncode == 0 and "rest_line_5q" in proc.stdout, proc.stderr
    # --url wins over QISKIT_REST_URL
    _one_line_error(cli(home, "backends", "--url", "http://127.0.0.1:9", env=env), "127.0.0.1:9")
    # nothing anywhere: the account error, not a traceback
    _one_line_error(cli(home, "backends"), "No API token")


# ---------------------------------------------------------------------------- backends
def test_backends_table_filters_and_json(home, reference_server, service):
    conn = _conn(reference_server)
    listed = {b.name: b for b in service.backends()}
    proc = cli(home, "backends", *conn)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["NAME", "QUBITS", "SIMULATOR", "STATUS", "QUEUE"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == set(listed)
    for name, row in rows.items():
        assert int(row[1]) == listed[name].num_qubits
        assert row[2] == ("yes" if listed[name].simulator else "no")
        assert row[3] == "online"

    def names(*flags: str) -> set[str]:
        out = cli(home, "backends", *conn, "--json", *flags)
        assert out.returncode == 0, out.stderr
        return {b["name"] for b in json.loads(out.stdout)}

    assert names("--simulator") == {"rest_simulator"}
    assert names("--no-simulator") == set(listed) - {"rest_simulator"}
    assert names("--no-simulator", "--min-qubits", "20") == {"rest_hex_27q", "rest_hex_127q"}
    assert names("--operational") == set(listed)
    assert names("--no-operational") == set()
    assert cli(home, "backends", *conn, "--min-qubits", "0").returncode == 2  # argparse


def test_backend_summary_matches_the_target(home, reference_server, service):
    target = service.backend("rest_line_5q").target
    proc = cli(home, "backend", "rest_line_5q", *_conn(reference_server), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["num_qubits"] == target.num_qubits == 5
    assert {"cz", "sx", "rz", "x"} <= set(summary["basis_gates"])
    assert "measure" not in summary["basis_gates"]
    assert summary["coupled_pairs"] == 4  # a line of 5
    errors_2q = [target["cz"][q].error for q in target["cz"]]  # both directions of each edge
    assert summary["median_2q_error"] == pytest.approx(statistics.median(errors_2q))
    assert "if_else" not in summary["basis_gates"]  # control flow is listed apart
    assert "if_else" in summary["control_flow"]
    t1 = sorted(target.qubit_properties[q].t1 for q in range(5))
    assert summary["median_t1_s"] == pytest.approx(t1[2])
    assert 0 < summary["median_readout_error"] < 0.5
    text = cli(home, "backend", "rest_line_5q", *_conn(reference_server))
    assert text.returncode == 0, text.stderr
    assert "Qubits:" in text.stdout and "Median 2q error:" in text.stdout
    assert " us" in text.stdout  # T1/T2 in microseconds
    # a simulator has no calibration: dashes, not a crash
    sim = cli(home, "backend", "rest_simulator", *_conn(reference_server))
    assert sim.returncode == 0, sim.stderr
    assert "Simulator:" in sim.stdout and "yes" in sim.stdout


def test_unknown_backend_is_one_line(home, reference_server):
    proc = cli(home, "backend", "no_such_backend", *_conn(reference_server))
    _one_line_error(proc, "no_such_backend", "rest_simulator")


# -------------------------------------------------------------------------------- jobs
def test_jobs_filters(home, reference_server, finished_jobs):
    conn, tag = _conn(reference_server), finished_jobs["tag"]
    both = {finished_jobs["sampler"], finished_jobs["estimator"]}

    def ids(*flags: str) -> list[str]:
        out = cli(home, "jobs", *conn, "--tag", tag, "--json", *flags)
        assert out.returncode == 0, out.stderr
        return [j["id"] for j in json.loads(out.stdout)]

    assert set(ids()) == both
    assert ids() == [finished_jobs["estimator"], finished_jobs["sampler"]]  # newest first
    assert set(ids("--state", "completed")) == both
    assert ids("--state", "Queued", "--state", "Running") == []
    assert set(ids("--backend", "rest_simulator")) == both
    assert ids("--backend", "rest_line_5q") == []
    assert ids("--program", "estimator") == [finished_jobs["estimator"]]
    assert len(ids("--limit", "1")) == 1
    tomorrow = (datetime.now() + timedelta(days=1)).date().isoformat()
    yesterday = (datetime.now() - timedelta(days=1)).date().isoformat()
    today = datetime.now().date().isoformat()
    assert ids("--since", tomorrow) == []
    assert ids("--until", yesterday) == []
    assert set(ids("--since", today, "--until", today)) == both  # a bare date: the whole day
    assert ids("--session", "no-such-session") == []
    assert cli(home, "jobs", *conn, "--since", "last tuesday").returncode == 2
    table = cli(home, "jobs", *conn, "--tag", tag)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["ID", "STATE", "BACKEND", "PROGRAM", "CREATED", "SESSION", "TAGS"]
    assert {line.split()[0] for line in lines[1:]} == both
    assert all(line.split()[1] == "Completed" and tag in line for line in lines[1:])


def test_jobs_of_a_session(home, reference_server, ideal):
    from qiskit import QuantumCircuit

    from qiskit_rest_provider import Batch, SamplerV2

    qc = QuantumCircuit(1)
    qc.x(0)
    qc.measure_all()
    with Batch(backend=ideal) as batch:
        job = SamplerV2(mode=batch).run([qc], shots=10)
        job.result(timeout=120)
        session_id = batch.session_id
    out = cli(home, "jobs", *_conn(reference_server), "--session", session_id, "--json")
    assert out.returncode == 0, out.stderr
    assert [j["id"] for j in json.loads(out.stdout)] == [job.job_id()]


def test_job_details_result_and_logs(home, reference_server, finished_jobs):
    conn = _conn(reference_server)
    sid, eid = finished_jobs["sampler"], finished_jobs["estimator"]
    proc = cli(home, "job", sid, *conn)
    assert proc.returncode == 0, proc.stderr
    fields = dict(line.split(":", 1) for line in proc.stdout.splitlines())
    assert fields["Job"].strip() == sid and fields["State"].strip() == "Completed"
    assert fields["Backend"].strip() == "rest_simulator" and fields["Program"].strip() == "sampler"
    for key in ("Created", "Running since", "Finished"):
        assert datetime.fromisoformat(fields[key].strip().replace("Z", "+00:00")).tzinfo
    assert fields["Usage"].strip().endswith(" s")
    assert finished_jobs["tag"] in fields["Tags"]
    data = json.loads(cli(home, "job", sid, *conn, "--json").stdout)
    assert data["job"]["id"] == sid and data["metrics"]["timestamps"]["finished"]

    # result: the Bell state's counts (ideal simulator: only 00 and 11, 400 shots)
    proc = cli(home, "result", sid, *conn)
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.strip()
    assert line.startswith("PUB 0: meas: 400 shots, 2 bits; ")
    counts = dict(item.split(": ") for item in line.split("; ", 1)[1].split(", "))
    assert set(counts) <= {"00", "11"} and sum(int(v) for v in counts.values()) == 400
    assert abs(int(counts.get("00", 0)) - 200) < 5 * 10  # 5 sigma of a fair coin over 400
    proc = cli(home, "result", eid, *conn)
    assert proc.returncode == 0, proc.stderr
    evs_line = proc.stdout.splitlines()[0]
    assert evs_line.startswith("PUB 0: evs [")
    zz, zi = (float(v) for v in evs_line.split("[", 1)[1].rstrip("]").split(","))
    assert zz == pytest.approx(1.0, abs=0.1) and zi == pytest.approx(0.0, abs=0.1)
    # --json: the raw result document, exactly what GET /results serves as JSON
    raw = cli(home, "result", sid, *conn, "--json")
    assert raw.returncode == 0, raw.stderr
    served = requests.get(
        f"{reference_server.runtime_url}/jobs/{sid}/results",
        headers={"Authorization": f"apikey {reference_server.token}", "Accept": "application/json"},
        timeout=30,
    )
    assert json.loads(raw.stdout) == served.json()

    logs = cli(home, "logs", sid, *conn)
    assert logs.returncode == 0, logs.stderr
    assert "completed" in logs.stdout.lower()
    # a final job cannot be cancelled: one line, exit 1
    _one_line_error(cli(home, "cancel", sid, *conn), sid, "Completed")


@pytest.mark.parametrize("command", ["job", "result", "logs", "cancel"])
def test_unknown_job_id_is_one_line(home, reference_server, command):
    missing = "nojob" + secrets.token_hex(6)
    _one_line_error(cli(home, command, missing, *_conn(reference_server)), missing)


def test_other_instance_jobs_are_unknown(home, reference_server, finished_jobs):
    other = ["--url", reference_server.url, "--token", reference_server.other_token]
    _one_line_error(cli(home, "job", finished_jobs["sampler"], *other), finished_jobs["sampler"])
    out = cli(home, "jobs", *other, "--tag", finished_jobs["tag"], "--json")
    assert out.returncode == 0 and json.loads(out.stdout) == []


def test_wait_progress_queue_position_and_cancel(home, reference_server):
    """Two slow jobs fill both workers; a third waits in the queue, then is cancelled."""
    conn = _conn(reference_server)
    base = reference_server.runtime_url
    headers = {"Authorization": f"apikey {reference_server.token}"}
    body = {
        "program_id": "sampler",
        "backend": "rest_simulator",
        "params": {"pubs": [[slow_qasm(), None, SLOW_SHOTS]] * 4, "version": 2},
    }
    blockers = []
    try:
        for _ in range(2):
            r = requests.post(f"{base}/jobs", headers=headers, json=body, timeout=60)
            assert r.status_code == 200, r.text
            blockers.append(r.json()["id"])
        r = requests.post(f"{base}/jobs", headers=headers, json=body, timeout=60)
        queued = r.json()["id"]
        blockers.append(queued)

        started = time.monotonic()
        proc = cli(home, "job", queued, *conn, "--wait", "--timeout", "3")
        elapsed = time.monotonic() - started
        _one_line_error(proc, queued, "still Queued after 3 s")
        assert proc.stdout.startswith("Queued (position ")
        assert elapsed < 60
        details = cli(home, "job", queued, *conn)
        assert "Queue position:" in details.stdout

        cancelled = cli(home, "cancel", queued, *conn)
        assert cancelled.returncode == 0 and f"Cancelled job {queued}" in cancelled.stdout
        _one_line_error(cli(home, "cancel", queued, *conn), "already Cancelled")
        _one_line_error(cli(home, "result", queued, *conn), "Cancelled", "no result")
        final = cli(home, "job", queued, *conn, "--wait")
        assert final.returncode == 1  # final, but not Completed
        assert "State:" in final.stdout and "Cancelled" in final.stdout
        running = cli(home, "result", blockers[0], *conn)
        _one_line_error(running, "no result yet", "--wait")
    finally:
        for job_id in blockers:
            requests.post(f"{base}/jobs/{job_id}/cancel", headers=headers, timeout=30)


def test_wait_follows_a_job_to_completion(home, reference_server):
    conn = _conn(reference_server)
    headers = {"Authorization": f"apikey {reference_server.token}"}
    qasm = slow_qasm(n=8, layers=10)
    body = {
        "program_id": "sampler",
        "backend": "rest_simulator",
        "params": {"pubs": [[qasm, None, 20_000]], "version": 2},
    }
    r = requests.post(
        f"{reference_server.runtime_url}/jobs", headers=headers, json=body, timeout=60
    )
    job_id = r.json()["id"]
    proc = cli(home, "job", job_id, *conn, "--wait", timeout=300)
    assert proc.returncode == 0, proc.stderr
    progress = [line for line in proc.stdout.splitlines() if " after " in line]
    assert progress and progress[-1].startswith("Completed after ")
    assert "State:" in proc.stdout and "Completed" in proc.stdout


# ----------------------------------------------------------------------------- failures
def _free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# serial: each command's time is compared with one measured start-up of Python; a test beside it
# that takes a core for a while makes the two incomparable
@pytest.mark.serial
def test_server_down_names_the_url_within_3_s(home):
    """Connection refused by a server that never answered fails fast (it used to take ~12 s)."""
    url = f"http://127.0.0.1:{_free_port()}"
    # what starting Python and importing the client costs here (a loaded CI machine is slow)
    t0 = time.monotonic()
    subprocess.run(
        [sys.executable, "-c", "import qiskit_rest_provider.cli, qiskit_rest_provider.service"],
        check=True,
        env=_env(home),
        timeout=120,
    )
    startup = time.monotonic() - t0
    for command in (["backends"], ["jobs"], ["job", "abc"], ["result", "abc"], ["cancel", "abc"]):
        t0 = time.monotonic()
        proc = cli(home, *command, "--url", url, "--token", "t")
        elapsed = time.monotonic() - t0
        _one_line_error(proc, url, "refused")
        assert elapsed - startup < 3.0, (command, elapsed, startup)


def test_serve_prints_a_paste_ready_save_account_line(home, reference_server):
    deadline = time.monotonic() + 10
    lines = reference_server.extra["stdout"]
    while time.monotonic() < deadline and not any("save_account(" in x for x in lines):
        time.sleep(0.1)
    line = next(x.strip() for x in lines if "ProviderService.save_account(" in x)
    assert f"url={reference_server.url!r}" in line and f"token={reference_server.token!r}" in line
    assert f"instance={reference_server.instance_crn!r}" in line and "set_as_default=True" in line
    code = f"from qiskit_rest_provider import ProviderService\n{line}\n"
    subprocess.run([sys.executable, "-c", code], check=True, env=_env(home), timeout=120)
    proc = cli(home, "backends")  # the pasted account is now the default
    assert proc.returncode == 0 and "rest_simulator" in proc.stdout, proc.stderr
