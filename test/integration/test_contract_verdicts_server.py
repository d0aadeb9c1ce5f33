"""Contract tests against a real server: what the client accepts, ``POST /jobs`` accepts (issue 10).

The same inputs as ``test/unit/test_contract_verdicts.py`` (``test/contract_cases.py``): option
values set on the client's options and sent in a job's ``params.options`` to the reference server,
and circuits checked by the client against the Target it fetches from the server and submitted to
the server on the same backend. The client's verdict (accepted, or a ``ValueError`` before any
request) and the server's (200, or a 400 naming the option or ``pubs[i]``) must agree. Accepted jobs
are cancelled at once: only the admission is under test.

(The file is not named ``test_contract_verdicts.py`` like the unit half: the suite has no
``__init__.py`` files, so pytest needs distinct test module names.)
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from contract_cases import (
    COMBINED_CASES,
    GENERATED_CASES,
    ISA_CASES,
    ISSUE_CASES,
    LIST_CASES,
    RZZ_BACKEND,
    IsaCase,
    OptionCase,
    client_verdict,
    nested,
    rzz_configuration,
)
from qiskit import QuantumCircuit

from qiskit_rest_provider.exceptions import InvalidInputError
from qiskit_rest_provider.primitives.options import EstimatorOptions
from qiskit_rest_provider.primitives.validation import check_isa
from qiskit_rest_provider.server.backends.catalog import BUILTIN_DEVICES_DIR
from qiskit_rest_provider.wire import encode_qpy

pytest.importorskip("fastapi")

BELL = (
    'OPENQASM 3.0; include "stdgates.inc"; bit[2] meas; h $0; cx $0, $1; '
    "meas[0] = measure $0; meas[1] = measure $1;"
)


def _sampled(cases: list[OptionCase]) -> list[OptionCase]:
    """One accepted and one rejected value per option: every bound side, fewer requests."""
    seen: set[tuple[str, str, bool]] = set()
    out = []
    for case in cases:
        key = (case.program, case.path, case.accepted)
        if key not in seen:
            seen.add(key)
            out.append(case)
    return out


HTTP_OPTION_CASES = ISSUE_CASES + LIST_CASES + _sampled(GENERATED_CASES)


def _headers(server: Any) -> dict[str, str]:
    return {"Authorization": f"apikey {server.token}"}


def _post_job(server: Any, program: str, backend: str, params: dict[str, Any]) -> requests.Response:
    body = {"program_id": program, "backend": backend, "params": params}
    response = requests.post(
        f"{server.runtime_url}/jobs", headers=_headers(server), json=body, timeout=60
    )
    if response.status_code == 200:  # only admission is under test: free the worker at once
        job_id = response.json()["id"]
        requests.post(
            f"{server.runtime_url}/jobs/{job_id}/cancel", headers=_headers(server), timeout=60
        )
    return response


def _params(program: str, options: dict[str, Any] | None, **top: Any) -> dict[str, Any]:
    pub: list[Any] = (
        [BELL, None, 10]
        if program == "sampler"
        else [
            encode_qpy(QuantumCircuit(2)),
            "ZZ",
        ]
    )
    params: dict[str, Any] = {"pubs": [pub], "version": 2, **top}
    if options is not None:
        params["options"] = options
    return params


def _server_verdict(response: requests.Response) -> tuple[bool, str]:
    assert response.status_code in (200, 400), (response.status_code, response.text[:300])
    if response.status_code == 200:
        return True, ""
    return False, response.json()["errors"][0]["message"]


@pytest.mark.parametrize("case", HTTP_OPTION_CASES, ids=lambda c: c.id)
def test_option_verdicts_match_the_server(case: OptionCase, reference_server):
    client_ok, client_path = client_verdict(case.program, case.path, case.value)
    if case.path == "resilience_level":
        params = _params(case.program, None, resilience_level=case.value)
    else:
        params = _params(case.program, nested(case.path, case.value))
    # NaN and infinities are not JSON: send them the way Python's json module writes them
    # (``NaN``, ``Infinity``), as a careless client would.
    data = json.dumps({"program_id": case.program, "backend": "rest_simulator", "params": params})
    response = requests.post(
        f"{reference_server.runtime_url}/jobs",
        headers={**_headers(reference_server), "Content-Type": "application/json"},
        data=data,
        timeout=60,
    )
    if response.status_code == 200:
        requests.post(
            f"{reference_server.runtime_url}/jobs/{response.json()['id']}/cancel",
            headers=_headers(reference_server),
            timeout=60,
        )
    server_ok, message = _server_verdict(response)
    assert client_ok == server_ok == case.accepted, (case, client_path, message)
    if not case.accepted:
        assert client_path is not None
        if case.why == "finite numbers":  # not JSON: refused before the options are read
            assert "JSON" in message
            return
        named = client_path.removeprefix("options.").split("[")[0]
        assert named in message, (named, message)


@pytest.mark.parametrize(("program", "options", "accepted"), COMBINED_CASES)
def test_rules_across_options_match_the_server(program, options, accepted, reference_server):
    client = EstimatorOptions.coerce(options)
    try:
        client._program_options()
        client_ok = True
    except ValueError:
        client_ok = False
    response = _post_job(reference_server, program, "rest_simulator", _params(program, options))
    assert client_ok == _server_verdict(response)[0] == accepted


def _pub(circuit: QuantumCircuit) -> list[Any]:
    values = [1.0] * circuit.num_parameters
    return [encode_qpy(circuit), values] if values else [encode_qpy(circuit)]


def _isa_verdicts(case: IsaCase, server: Any, backend: Any) -> None:
    circuit = case.circuit(backend.num_qubits)
    try:
        check_isa(circuit, backend.target)  # the Target the client built from the server's JSON
        client_ok, client_message = True, ""
    except InvalidInputError as exc:
        client_ok, client_message = False, str(exc)
    response = _post_job(server, "sampler", backend.name, {"pubs": [_pub(circuit)], "version": 2})
    server_ok, message = _server_verdict(response)
    assert client_ok == server_ok == case.accepted, (case.id, client_message, message)
    if not case.accepted:
        assert "pubs[0]" in message
        assert client_message.split(":")[1].split(" on ")[0].split()[-1] in message


DEVICE_ISA_CASES = [c for c in ISA_CASES if c.backend != RZZ_BACKEND]


@pytest.mark.parametrize("case", DEVICE_ISA_CASES, ids=lambda c: c.id)
def test_isa_verdicts_match_the_server(case: IsaCase, reference_server, service):
    _isa_verdicts(case, reference_server, service.backend(case.backend))


def test_rzz_bounds_and_store_match_a_server_with_an_rzz_device(server_factory, tmp_path):
    from qiskit_rest_provider import ProviderService

    devices = tmp_path / "devices"
    devices.mkdir()
    conf = rzz_configuration(BUILTIN_DEVICES_DIR)
    (devices / f"conf_{RZZ_BACKEND}.json").write_text(json.dumps(conf))
    server = server_factory.start(workers=1, args=["--backends-dir", str(devices)])
    service = ProviderService(
        channel="ibm_quantum_platform",
        url=server.url,
        token=server.token,
        instance=server.instance_crn,
    )
    backend = service.backend(RZZ_BACKEND)
    assert backend.target.gate_has_angle_bounds("rzz")
    cases = [c for c in ISA_CASES if c.backend == RZZ_BACKEND]
    assert {c.name for c in cases} >= {"rzz_2.0", "store"}
    for case in cases:
        _isa_verdicts(case, server, backend)
