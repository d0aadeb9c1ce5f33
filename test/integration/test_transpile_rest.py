"""Remote transpilation through the real reference server (protocol §8).

User stories: "user transpiles on the service and runs the result", "user sends a broken circuit
and is told why", "an old transpiler-service client (seeds 001/002) still works".
"""

from __future__ import annotations

import base64
import io
import math
import re
import secrets
import time
import zlib

import numpy as np
import pytest
import requests
from qiskit import QuantumCircuit, qpy
from qiskit.circuit import Parameter
from qiskit.circuit.random import random_circuit
from qiskit.quantum_info import Operator, Statevector

from qiskit_rest_provider import SamplerV2
from qiskit_rest_provider.exceptions import InvalidInputError, NotFoundError, RequestError
from qiskit_rest_provider.transpiler import RemotePassManager, transpile_remote
from qiskit_rest_provider.transpiler.passes import unsupported_instructions
from qiskit_rest_provider.transpiler.remote import RemoteTranspileError

QASM2_H = 'OPENQASM 2.0; include "qelib1.inc"; qreg q[1]; h q[0];'


def _bearer(server, token=None) -> dict[str, str]:
    """Transpiler-service auth (protocol §8): the API token itself as a bearer token."""
    return {"Authorization": f"Bearer {token or server.token}", "Accept": "application/json"}


def _wait_task(server, task_id: str, token=None, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = requests.get(
            f"{server.url}/transpile/{task_id}",
            params={"wait": 10},
            headers=_bearer(server, token),
            timeout=60,
        )
        r.raise_for_status()
        body = r.json()
        if body["state"] in ("SUCCESS", "FAILURE"):
            return body
        assert body["state"] in ("PENDING", "STARTED")
        assert time.monotonic() < deadline, body


def _measured_probabilities(circuit: QuantumCircuit) -> dict[str, float]:
    """Exact outcome probabilities of a circuit whose measurements all come last.

    Only the qubits the circuit touches are simulated, so 127-qubit ISA circuits stay cheap.
    """
    active = sorted({circuit.find_bit(q).index for inst in circuit.data for q in inst.qubits})
    position = {q: i for i, q in enumerate(active)}
    body = QuantumCircuit(len(active))
    measured: dict[int, int] = {}
    for inst in circuit.data:
        qubits = [position[circuit.find_bit(q).index] for q in inst.qubits]
        if inst.operation.name == "measure":
            measured[circuit.find_bit(inst.clbits[0]).index] = qubits[0]
        elif inst.operation.name != "barrier":
            assert not measured or not set(qubits) & set(measured.values()), "mid-circuit measure"
            body.append(inst.operation, qubits)
    clbits = sorted(measured)
    probs = Statevector(body).probabilities([measured[c] for c in clbits])
    return {format(i, f"0{len(clbits)}b"): float(p) for i, p in enumerate(probs) if p > 1e-12}


def _small_circuits() -> list[QuantumCircuit]:
    bell = QuantumCircuit(2, name="bell")
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    ghz = QuantumCircuit(4, name="ghz_skew")
    ghz.ry(1.1, 0)
    for q in range(3):
        ghz.cx(q, q + 1)
    ghz.rz(0.4, 3)
    ghz.sx(2)
    ghz.cx(3, 0)  # a non-neighbour pair: needs routing on the line and the heavy-hex
    ghz.measure_all()
    rand = random_circuit(3, 4, max_operands=2, seed=42)
    rand.measure_all()
    return [bell, ghz, rand]


# ----------------------------------------------------------------------------------- stories


@pytest.mark.parametrize("device", ["rest_line_5q", "rest_hex_27q"])
def test_user_transpiles_remotely_and_the_server_accepts_the_result(service, device):
    backend = service.backend(device)
    circuits = _small_circuits()
    outs = transpile_remote(service, circuits, backend, optimization_level=2, seed_transpiler=5)
    assert len(outs) == len(circuits)
    for circuit, out in zip(circuits, outs):
        assert out.num_qubits == backend.num_qubits
        assert unsupported_instructions(backend.target, out) == []
        assert out.layout is not None
        assert len(out.layout.initial_index_layout(filter_ancillas=True)) == circuit.num_qubits
        # same ideal distribution as the input (exact, not sampled)
        want = _measured_probabilities(circuit)
        got = _measured_probabilities(out)
        for key in set(want) | set(got):
            assert got.get(key, 0.0) == pytest.approx(want.get(key, 0.0), abs=1e-9), key
    # the server takes them as ISA circuits
    result = SamplerV2(mode=backend).run(outs, shots=200).result()
    for circuit, pub_result in zip(circuits, result):
        counts = pub_result.data.meas.get_counts()
        assert sum(counts.values()) == 200
        assert all(len(key) == circuit.num_qubits for key in counts)


def test_remote_result_samples_the_input_distribution_on_the_ideal_simulator(service):
    backend = service.backend("rest_simulator")
    circuit = QuantumCircuit(3)
    circuit.ry(2 * math.acos(math.sqrt(0.3)), 0)  # P(q0 = 0) = 0.3
    circuit.cx(0, 1)
    circuit.h(2)
    circuit.measure_all()
    out = transpile_remote(service, circuit, "rest_simulator", optimization_level=3)
    assert unsupported_instructions(backend.target, out) == []
    shots = 4000
    counts = SamplerV2(mode=backend).run([out], shots=shots).result()[0].data.meas.get_counts()
    for key, p in _measured_probabilities(circuit).items():
        sigma = math.sqrt(p * (1 - p) / shots)
        assert abs(counts.get(key, 0) / shots - p) <= 5 * sigma + 1e-9, (key, counts)


def test_layout_matches_a_local_transpile_and_operator_is_kept(service):
    backend = service.backend("rest_line_5q")
    circuit = QuantumCircuit(3)
    circuit.h(0)
    circuit.cx(0, 2)
    circuit.cx(2, 1)
    circuit.rz(0.3, 1)
    circuit.cx(1, 0)
    for form in ("qpy", "qasm3"):
        out = transpile_remote(service, circuit, backend, 1, circuit_form=form, seed_transpiler=3)
        padded = QuantumCircuit(out.num_qubits)
        padded.compose(circuit, range(3), inplace=True)
        assert Operator.from_circuit(out).equiv(Operator(padded)), form
        assert out.layout.routing_permutation() is not None


def test_parameters_survive_the_round_trip(service):
    theta = Parameter("theta")
    circuit = QuantumCircuit(2)
    circuit.rx(theta, 0)
    circuit.cx(0, 1)
    circuit.measure_all()
    for form in ("qpy", "qasm3"):
        out = transpile_remote(service, circuit, "rest_line_5q", 1, circuit_form=form)
        assert out.parameters == {theta}, form
        bound = out.assign_parameters({theta: 0.7})
        assert _measured_probabilities(bound) == pytest.approx(
            _measured_probabilities(circuit.assign_parameters({theta: 0.7}))
        )


def test_remote_pass_manager_runs_like_a_pass_manager(service):
    pm = RemotePassManager(service, "rest_hex_27q", optimization_level=1, seed_transpiler=2)
    single = pm.run(_small_circuits()[0])
    assert isinstance(single, QuantumCircuit)
    many = pm.run(_small_circuits(), output_name="isa")
    assert [c.name for c in many] == ["isa"] * 3
    assert service.transpile(_small_circuits()[0], "rest_hex_27q").num_qubits == 27


# ----------------------------------------------------------------------------------- failures


def test_broken_qasm_gives_failure_with_a_message(reference_server, service):
    r = requests.post(
        f"{reference_server.url}/transpile",
        params={"backend": "rest_line_5q", "optimization_level": 1},
        json={"qasm_circuits": ["OPENQASM 3.0; qubit[2] q; h q[0]; cx q[0] q[7];"]},
        headers=_bearer(reference_server),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    body = _wait_task(reference_server, r.json()["task_id"])
    assert body["state"] == "FAILURE"
    assert isinstance(body["result"], str) and "qasm_circuits[0]" in body["result"]


def test_circuit_too_wide_fails_with_a_message(service):
    wide = QuantumCircuit(6)
    wide.h(range(6))
    with pytest.raises(RemoteTranspileError, match="failed") as info:
        transpile_remote(service, wide, "rest_line_5q", 1)
    assert info.value.task_id
    assert "6" in info.value.message or "qubits" in info.value.message


def test_unknown_backend_is_404_before_queuing(service):
    with pytest.raises(NotFoundError, match="nope"):
        transpile_remote(service, _small_circuits()[0], "nope")


@pytest.mark.parametrize(
    ("params", "body", "field"),
    [
        ({"backend": "rest_line_5q", "optimization_level": 7}, None, "optimization_level"),
        ({"backend": "rest_line_5q", "optimization_level": "x"}, None, "optimization_level"),
        ({"backend": "rest_line_5q"}, {"qasm_circuits": 5}, "qasm_circuits"),
        ({"backend": "rest_line_5q"}, {}, "qasm_circuits"),
        ({}, None, "backend"),
        (
            {"backend": "rest_line_5q"},
            {"qasm_circuits": "OPENQASM 2.0; qreg q[1];", "qiskit_transpile_options": {"foo": 1}},
            "foo",
        ),
        ({"backend": "rest_line_5q", "coupling_map": "[[0, 9]]"}, None, "coupling_map"),
        ({"backend": "rest_line_5q", "ai": "maybe"}, None, "ai"),
        (
            {"backend": "rest_line_5q"},
            {"qasm_circuits": QASM2_H, "qiskit_transpile_options": {"layout_method": "bogus"}},
            "layout_method",
        ),
        (
            {"backend": "rest_line_5q"},
            {"qasm_circuits": QASM2_H, "qiskit_transpile_options": {"initial_layout": [0, 0]}},
            "initial_layout",
        ),
        (
            {"backend": "rest_line_5q", "qiskit_transpile_options": '{"seed_transpiler": "x"}'},
            None,
            "seed_transpiler",
        ),
        ({"backend": "rest_line_5q", "max_execution_time": "soon"}, None, "max_execution_time"),
        ({"backend": "rest_line_5q", "max_execution_time": "-1"}, None, "max_execution_time"),
        (
            {"backend": "rest_line_5q"},
            {"qasm_circuits": QASM2_H, "max_execution_time": 1e9},
            r"max_execution_time: .*\(1800 s, --max-transpile-time\)",
        ),
        ({"backend": "rest_line_5q"}, {"qpy_circuits": "bm90IHFweQ=="}, "qpy_circuits"),
    ],
)
def test_bad_requests_are_400_naming_the_field(reference_server, params, body, field):
    payload = {"qasm_circuits": "OPENQASM 2.0; qreg q[1]; h q[0];"} if body is None else body
    r = requests.post(
        f"{reference_server.url}/transpile",
        params=params,
        json=payload,
        headers=_bearer(reference_server),
        timeout=30,
    )
    assert r.status_code == 400, r.text
    error = r.json()["errors"][0]
    assert re.search(field, error["message"]), error


def test_client_rejects_bad_level_locally(service):
    with pytest.raises(InvalidInputError, match="optimization_level"):
        transpile_remote(service, _small_circuits()[0], "rest_line_5q", 4)


def test_tasks_need_auth_and_are_private(reference_server):
    r = requests.post(
        f"{reference_server.url}/transpile",
        params={"backend": "rest_line_5q"},
        json={"qasm_circuits": QASM2_H},
        timeout=30,
    )
    assert r.status_code == 401
    r = requests.post(
        f"{reference_server.url}/transpile",
        params={"backend": "rest_line_5q"},
        json={"qasm_circuits": QASM2_H},
        headers=_bearer(reference_server),
        timeout=30,
    )
    task_id = r.json()["task_id"]
    assert _wait_task(reference_server, task_id)["state"] == "SUCCESS"
    if reference_server.other_token:
        other = requests.get(
            f"{reference_server.url}/transpile/{task_id}",
            headers=_bearer(reference_server, reference_server.other_token),
            timeout=30,
        )
        assert other.status_code == 404
    missing = requests.get(
        f"{reference_server.url}/transpile/00000000-0000-0000-0000-000000000000",
        headers=_bearer(reference_server),
        timeout=30,
    )
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["message"]


# ----------------------------------------------------------------------------------- old clients


def test_seed_001_style_body_parameters_and_use_ai(reference_server):
    """Seed 001 sends backend, optimization_level and use_ai in the JSON body."""
    qasm = (
        'OPENQASM 3.0; include "stdgates.inc"; qubit[3] q; bit[3] c;'
        " h q[0]; cx q[0], q[2]; c = measure q;"
    )
    r = requests.post(
        f"{reference_server.url}/transpile",
        json={
            "qasm_circuits": qasm,
            "backend": "rest_hex_27q",
            "optimization_level": 1,
            "use_ai": True,
        },
        headers=_bearer(reference_server),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    body = _wait_task(reference_server, r.json()["task_id"])
    assert body["state"] == "SUCCESS"
    assert any("AI" in w for w in body["warnings"])
    [item] = body["result"]
    assert item["qasm"].startswith("OPENQASM 3")
    assert "$" in item["qasm"]  # hardware qubits
    assert len(item["layout"]["initial"]) == 27
    assert sorted(item["layout"]["final"]) == list(range(27))


def test_seed_002_style_query_parameters(reference_server):
    """Seed 002 passes coupling_map=[] and qiskit_transpile_options=[] as query parameters."""
    r = requests.post(
        f"{reference_server.url}/transpile",
        params={
            "backend": "rest_line_5q",
            "optimization_level": 3,
            "use_ai": "false",
            "coupling_map": "[]",
            "qiskit_transpile_options": "[]",
        },
        json={
            "qasm_circuits": 'OPENQASM 2.0; include "qelib1.inc"; qreg q[2]; creg c[2];'
            " h q[0]; cx q[0],q[1]; measure q -> c;"
        },
        headers=_bearer(reference_server),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    body = _wait_task(reference_server, r.json()["task_id"])
    assert body["state"] == "SUCCESS", body
    assert "warnings" not in body
    assert body["result"][0]["qasm"].count("cz") >= 1


def test_coupling_map_without_backend(reference_server):
    r = requests.post(
        f"{reference_server.url}/transpile",
        json={
            "qasm_circuits": ['OPENQASM 2.0; include "qelib1.inc"; qreg q[3]; cx q[0],q[2];'],
            "backend_coupling_map": [[0, 1], [1, 0], [1, 2], [2, 1]],
            "optimization_level": 1,
        },
        headers=_bearer(reference_server),
        timeout=30,
    )
    assert r.status_code == 200, r.text
    body = _wait_task(reference_server, r.json()["task_id"])
    assert body["state"] == "SUCCESS", body
    qasm = body["result"][0]["qasm"]
    assert "cz" in qasm and "cx" not in qasm


def test_bad_option_values_are_rejected_before_queuing(service):
    with pytest.raises(RequestError, match="layout_method") as info:
        transpile_remote(service, _small_circuits()[0], "rest_line_5q", 1, layout_method="bogus")
    assert info.value.status_code == 400


def test_initial_layout_outside_the_device_fails_the_task_with_a_message(service):
    with pytest.raises(RemoteTranspileError, match="failed"):
        transpile_remote(service, _small_circuits()[0], "rest_line_5q", 1, initial_layout=[0, 9])


def test_large_batch_round_trip_is_consistent(service):
    rng = np.random.default_rng(3)
    circuits = []
    for i in range(12):
        c = random_circuit(3, 3, max_operands=2, seed=int(rng.integers(1 << 30)))
        c.measure_all()
        c.name = f"c{i}"
        circuits.append(c)
    outs = transpile_remote(service, circuits, "rest_hex_127q", 3)
    assert [o.name for o in outs] == [c.name for c in circuits]
    target = service.backend("rest_hex_127q").target
    assert all(unsupported_instructions(target, o) == [] for o in outs)


@pytest.mark.parametrize("level", [0, 1, 2, 3])
def test_local_preset_pass_manager_for_a_rest_backend_uses_our_plugin(service, level):
    from qiskit.transpiler import generate_preset_pass_manager

    from qiskit_rest_provider.transpiler.passes import ReportUnsupportedInstructions

    backend = service.backend("rest_line_5q")
    assert backend.get_translation_stage_plugin() == "rest_provider"
    pm = generate_preset_pass_manager(level, backend=backend, seed_transpiler=1)
    tasks = pm.translation.to_flow_controller().tasks
    assert any(isinstance(task, ReportUnsupportedInstructions) for task in tasks)
    circuits = _small_circuits()
    outs = pm.run(circuits)
    assert all(unsupported_instructions(backend.target, out) == [] for out in outs)
    result = SamplerV2(mode=backend).run(outs, shots=50).result()
    assert [sum(r.data.meas.get_counts().values()) for r in result] == [50, 50, 50]


# ------------------------------------------------ the queue: restart, cancel, limits, fairness
OTHER_INSTANCE = "other/team/project"
BELL_JOB = {
    "program_id": "sampler",
    "backend": "rest_simulator",
    "params": {
        "pubs": [
            [
                'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] c; h q[0]; '
                "cx q[0], q[1]; c = measure q;",
                None,
                256,
            ]
        ],
        "version": 2,
    },
}


def _slow_qasm() -> list[str]:
    """Ninety distinct 20-qubit random circuits: level 3 on rest_hex_27q takes ~34 s on an idle
    machine, four times the 8 s limit the tests set.

    (Ten copies of one circuit took only ~7 s on a warm worker, and thirty circuits ~8 s on an
    idle CI machine: both times the 8 s limit missed it.)
    """
    from qiskit.qasm2 import dumps

    return [dumps(random_circuit(20, 60, max_operands=2, seed=3 + k)) for k in range(90)]


def _post_task(server, qasm, token=None, backend="rest_hex_27q", level=3, **extra) -> str:
    r = requests.post(
        f"{server.url}/transpile",
        params={"backend": backend, "optimization_level": level},
        json={"qasm_circuits": qasm, **extra},
        headers=_bearer(server, token),
        timeout=60,
    )
    assert r.status_code == 200, r.text
    return r.json()["task_id"]


def _task(server, task_id, token=None, wait=None) -> dict:
    r = requests.get(
        f"{server.url}/transpile/{task_id}",
        params=None if wait is None else {"wait": wait},
        headers=_bearer(server, token),
        timeout=60,
    )
    assert r.status_code == 200, r.text
    return r.json()


def _wait_for(server, task_id, states, token=None, timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = _task(server, task_id, token, wait=2)
        if body["state"] in states:
            return body
        assert time.monotonic() < deadline, f"task {task_id} never reached {states}: {body}"


def _cancel(server, task_id, token=None) -> requests.Response:
    return requests.post(
        f"{server.url}/transpile/{task_id}/cancel", headers=_bearer(server, token), timeout=60
    )


# serial: round-robin order and time limits on one busy worker; its level-3 transpiles keep a
# core busy for ~30 s, which would slow whatever ran beside it
@pytest.mark.serial
def test_tasks_queue_with_jobs_fairly_with_time_limits_and_cancel(server_factory):
    """One worker. A's task hits its 8 s limit; B's job (5 s limit) queued behind it runs next,
    before A's earlier task; a queued and a running task are cancelled and free the worker."""
    other = "other-" + secrets.token_hex(8)
    server = server_factory.start(
        workers=1,
        extra_tokens={other: OTHER_INSTANCE},
        args=["--cancel-grace", "1", "--default-transpile-time", "25"],
    )
    slow = _slow_qasm()
    first = _post_task(server, slow, max_execution_time=8)
    assert _wait_for(server, first, ("STARTED",))["result"] is None
    second = _post_task(server, slow)  # A's, queued before B's job
    doomed = _post_task(server, slow)
    job = requests.post(
        f"{server.runtime_url}/jobs",
        headers={"Authorization": f"apikey {other}"},
        json={**BELL_JOB, "cost": 5},
        timeout=60,
    )
    assert job.status_code == 200, job.text
    job_id = job.json()["id"]
    assert _cancel(server, doomed).status_code == 204  # a queued task
    assert _task(server, doomed)["state"] == "CANCELLED"
    assert _cancel(server, doomed).status_code == 409  # already final

    failed = _wait_for(server, first, ("FAILURE", "SUCCESS"), timeout=60)
    assert failed["state"] == "FAILURE", failed
    assert "time limit of 8 s" in failed["result"] and "--max-transpile-time" in failed["result"]
    done = server.wait_job(
        server.runtime_url, job_id, {"Authorization": f"apikey {other}"}, timeout=60
    )
    # it waited more than its 5 s behind the task, but its clock starts when it runs
    assert done["state"]["status"] == "Completed", done
    # round-robin: B's job went before A's earlier task, which is still unfinished
    assert _task(server, second)["state"] in ("PENDING", "STARTED")
    _wait_for(server, second, ("STARTED",))
    assert _cancel(server, second, token=other).status_code == 404  # private to its instance
    assert _cancel(server, second).status_code == 204  # a running task: its worker is killed
    cancelled = _task(server, second)
    assert cancelled["state"] == "CANCELLED" and "cancelled" in cancelled["result"]
    quick = _post_task(server, QASM2_H, backend="rest_line_5q", level=1)
    started = time.monotonic()
    assert _wait_for(server, quick, ("SUCCESS",), timeout=60)["result"][0]["qasm"]
    assert time.monotonic() - started < 30  # the cancelled task does not hold the worker
    assert _cancel(server, quick).status_code == 409


def test_tasks_survive_a_restart_and_can_be_cancelled(server_factory):
    """Stop the server with a task running and one queued: after the restart both are still
    there, the running one runs again (and is cancelled), the queued one completes."""
    server = server_factory.start(workers=1, args=["--cancel-grace", "1"])
    running = _post_task(server, _slow_qasm())
    _wait_for(server, running, ("STARTED",))
    queued = _post_task(server, QASM2_H, backend="rest_line_5q", level=1)
    assert _task(server, queued)["state"] == "PENDING"
    server = server_factory.restart(server)
    assert _task(server, queued)["state"] in ("PENDING", "STARTED", "SUCCESS")
    assert _wait_for(server, running, ("STARTED",))["result"] is None  # re-queued, running again
    assert "re-queued 1 transpile task(s)" in server.log_text()
    assert _cancel(server, running).status_code == 204
    assert _task(server, running)["state"] == "CANCELLED"
    done = _wait_for(server, queued, ("SUCCESS", "FAILURE"), timeout=60)
    assert done["state"] == "SUCCESS", done
    missing = _cancel(server, "00000000000000000000")
    assert missing.status_code == 404


def _qpy_file(circuit: QuantumCircuit) -> bytes:
    buffer = io.BytesIO()
    qpy.dump(circuit, buffer, version=min(qpy.QPY_VERSION, 17))
    return buffer.getvalue()


def test_qpy_inflate_is_capped_before_queuing(reference_server):
    """A compressed QPY input that inflates over its cap is a 400 naming the limit; a fair one
    runs (its QPY comes back)."""
    bomb = zlib.compress(_qpy_file(QuantumCircuit(1)) + b"\0" * (32 << 20), 9)
    assert len(bomb) < 64_000  # over 500 times its size
    r = requests.post(
        f"{reference_server.url}/transpile",
        params={"backend": "rest_line_5q"},
        json={"qpy_circuits": base64.b64encode(bomb).decode()},
        headers=_bearer(reference_server),
        timeout=60,
    )
    assert r.status_code == 400, r.text
    message = r.json()["errors"][0]["message"]
    assert message.startswith("qpy_circuits: the compressed QPY payload")
    assert "inflates beyond 4194304 bytes" in message and "--max-transpile-qpy-bytes" in message
    circuit = QuantumCircuit(2)
    circuit.h(0)
    circuit.cx(0, 1)
    fair = base64.b64encode(zlib.compress(_qpy_file(circuit))).decode()
    r = requests.post(
        f"{reference_server.url}/transpile",
        params={"backend": "rest_line_5q", "optimization_level": 1},
        json={"qpy_circuits": fair},
        headers=_bearer(reference_server),
        timeout=60,
    )
    assert r.status_code == 200, r.text
    body = _wait_task(reference_server, r.json()["task_id"])
    assert body["state"] == "SUCCESS" and body["result"][0]["qpy"]
