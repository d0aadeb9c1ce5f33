"""The client half's wiring: objects hold the RuntimeClient; transpile requests go through it.

Against the scripted loopback HTTP server of ``test_client_transport`` (real sockets, the real
transport and authenticator), so what is asserted is what goes over the wire.
"""

from __future__ import annotations

import json

import pytest
from qiskit import QuantumCircuit
from test_client_transport import API_KEY, FaultServer, platform_client

from qiskit_rest_provider import ProviderService, RestBackend, RestPrimitiveJob
from qiskit_rest_provider.exceptions import (
    ConflictError,
    InvalidInputError,
    QiskitRestProviderError,
    RequestError,
)
from qiskit_rest_provider.modes import Batch
from qiskit_rest_provider.primitives import SamplerV2
from qiskit_rest_provider.transpiler.remote import RemotePassManager, transpile_remote

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def server():
    srv = FaultServer()
    yield srv
    srv.close()


def _service(server: FaultServer) -> ProviderService:
    return ProviderService(url=server.url, token=API_KEY, timeout=5.0)


def test_backends_hold_the_services_client_and_name_it_as_provider(server):
    service = _service(server)
    (backend,) = service.backends()
    assert backend.client is service.client
    assert backend.service is service and backend.provider is service
    session = Batch(backend)
    assert session.client is service.client and session.service is service
    assert server.of("POST", "/api/v1/sessions")[0].headers["Authorization"].startswith("Bearer")


def test_a_backend_built_from_a_client_alone_sends_through_it(server):
    client = platform_client(server)
    backend = RestBackend(client, "b1")
    assert backend.client is client and backend.service is None
    with pytest.raises(QiskitRestProviderError, match="ProviderService.backend"):
        backend.run(QuantumCircuit(1))
    assert server.requests == []  # neither construction nor the refused run() sent anything


def test_a_backend_still_accepts_a_service_and_takes_its_client(server):
    service = _service(server)
    backend = RestBackend(service, "b1")
    assert backend.client is service.client and backend.service is service
    with pytest.raises(InvalidInputError, match="RuntimeClient"):
        RestBackend("not a client", "b1")


def test_jobs_from_the_service_find_their_backend_without_the_service_module(server):
    service = _service(server)
    server.script("GET", "/api/v1/jobs/j-7", ("status", 200, {}, {"id": "j-7", "backend": "b1"}))
    job = service.job("j-7")
    assert job.backend() is service._backend_unchecked("b1")
    looked_up = []
    bare = RestPrimitiveJob(
        service.client, "j-8", data={"id": "j-8", "backend": "b1"}, backend_lookup=looked_up.append
    )
    bare.backend()
    assert looked_up == ["b1"]


def test_primitives_submit_through_the_backends_client(server):
    service = _service(server)
    (backend,) = service.backends()
    circuit = QuantumCircuit(1, 1)
    circuit.measure(0, 0)
    backend._target = _one_qubit_target()
    job = SamplerV2(mode=backend).run([circuit], shots=10)
    (sent,) = server.of("POST", "/api/v1/jobs")
    assert json.loads(sent.body)["backend"] == "b1" and job.job_id() == "job-1"


def _one_qubit_target():
    from qiskit.circuit import Measure
    from qiskit.transpiler import Target

    target = Target(num_qubits=1)
    target.add_instruction(Measure(), {(0,): None})
    return target


def test_transpile_endpoints_send_the_documented_requests(server):
    client = platform_client(server)
    server.script("POST", "/transpile", ("status", 200, {}, {"task_id": "t-1"}))
    answer = client.create_transpile_task(
        backend="rest_line_5q", optimization_level=1, body={"qasm_circuits": ["OPENQASM 3.0;"]}
    )
    assert answer == {"task_id": "t-1"}
    (sent,) = server.of("POST", "/transpile")
    assert sent.query == {"backend": ["rest_line_5q"], "optimization_level": ["1"]}
    assert json.loads(sent.body) == {"qasm_circuits": ["OPENQASM 3.0;"]}
    server.script("GET", "/transpile/t-1", ("status", 200, {}, {"state": "PENDING"}))
    assert client.transpile_task("t-1", wait=2.5) == {"state": "PENDING"}
    assert server.of("GET", "/transpile/t-1")[0].query == {"wait": ["2.500"]}


def test_cancel_transpile_task_posts_the_cancel_and_a_repeat_is_success(server):
    client = platform_client(server)
    server.script("POST", "/transpile/t-1/cancel", ("status", 204, {}, None))
    client.cancel_transpile_task("t-1")
    assert len(server.of("POST", "/transpile/t-1/cancel")) == 1
    # a retried cancel whose first attempt won answers 409: success when the task is CANCELLED
    server.script("POST", "/transpile/t-2/cancel", ("status", 409, {}, {"errors": []}))
    server.script("GET", "/transpile/t-2", ("status", 200, {}, {"state": "CANCELLED"}))
    client.cancel_transpile_task("t-2")
    server.script("POST", "/transpile/t-3/cancel", ("status", 409, {}, {"errors": []}))
    server.script("GET", "/transpile/t-3", ("status", 200, {}, {"state": "SUCCESS"}))
    with pytest.raises(ConflictError):
        client.cancel_transpile_task("t-3")


def test_a_transpile_answer_without_task_id_is_an_error(server):
    client = platform_client(server)
    server.script("POST", "/transpile", ("status", 200, {}, {"state": "PENDING"}))
    with pytest.raises(RequestError, match="task_id"):
        client.create_transpile_task(backend="b", optimization_level=1, body={})


@pytest.mark.parametrize("through", ["client", "service"])
def test_transpile_remote_runs_on_the_client_or_the_service(server, through):
    service = _service(server)
    circuit = QuantumCircuit(2, name="bell")
    circuit.h(0)
    circuit.cx(0, 1)
    circuit.measure_all()
    server.script("POST", "/transpile", ("status", 200, {}, {"task_id": "t-2"}))

    def finished(qasm: str) -> tuple:
        item = {"qasm": qasm, "layout": {"initial": [0, 1], "final": [0, 1]}}
        return ("status", 200, {}, {"state": "SUCCESS", "result": [item]})

    from qiskit_rest_provider.wire.circuits import export_qasm3

    server.script("GET", "/transpile/t-2", finished(export_qasm3(circuit).text))
    source = service.client if through == "client" else service
    out = transpile_remote(source, circuit, "b1", 1, circuit_form="qasm3")
    assert out.name == "bell" and out.num_qubits == 2 and out.count_ops()["cx"] == 1
    assert server.count("POST", "/transpile") == 1 and server.count("GET", "/transpile/t-2") == 1


def test_remote_pass_manager_refuses_what_holds_no_client():
    with pytest.raises(InvalidInputError, match="ProviderService or its RuntimeClient"):
        RemotePassManager(object(), "b1")
