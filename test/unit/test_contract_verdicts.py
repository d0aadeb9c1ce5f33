"""Contract tests: the client and the server give the same verdict on the same input (issue 10).

Options: each value of ``contract_cases.OPTION_CASES`` (the values of issue 10, list-valued
options, and a table generated from the ``ibm-quantum-schemas`` models around every bound) is set
on the client's ``SamplerOptions``/``EstimatorOptions`` (set time, then the whole-tree check the
client runs before it sends a job) and sent to the server's admission (``admission.prepare_job``,
what ``POST /jobs`` calls). Both must accept it, or both reject it naming the same option.

Circuits: each of ``contract_cases.ISA_CASES`` is checked by the client
(``primitives.validation.check_isa`` against the Target the client builds from the backend's
configuration), by the server's admission (``prepare_job`` on the catalog's backend) and by the
transpiler plugin's rule (``transpiler.passes.unsupported_instructions``).
The integration half (``test/integration/test_contract_verdicts_server.py``) feeds the same inputs
to a real server over HTTP.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from contract_cases import (
    COMBINED_CASES,
    GENERATED_CASES,
    ISA_CASES,
    OPTION_CASES,
    RZZ_BACKEND,
    IsaCase,
    OptionCase,
    client_verdict,
    model_accepts,
    nested,
    rzz_configuration,
)
from qiskit import QuantumCircuit

from qiskit_rest_provider.exceptions import InvalidInputError
from qiskit_rest_provider.primitives.options import EstimatorOptions, SamplerOptions
from qiskit_rest_provider.primitives.validation import check_isa
from qiskit_rest_provider.server.backends.catalog import (
    BUILTIN_DEVICES_DIR,
    BackendCatalog,
    BackendSpec,
)
from qiskit_rest_provider.server.jobs.admission import JobInputError, prepare_job
from qiskit_rest_provider.transpiler.passes import unsupported_instructions
from qiskit_rest_provider.wire import encode_qpy
from qiskit_rest_provider.wire.isa import unsupported_instructions as isa_rule
from qiskit_rest_provider.wire.options import OptionsError, check_option, check_options
from qiskit_rest_provider.wire.target import target_from_backend_data

BELL = (
    'OPENQASM 3.0; include "stdgates.inc"; bit[2] meas; h $0; cx $0, $1; '
    "meas[0] = measure $0; meas[1] = measure $1;"
)


@pytest.fixture(scope="module")
def catalog() -> BackendCatalog:
    catalog = BackendCatalog.load()
    conf = rzz_configuration(BUILTIN_DEVICES_DIR)
    catalog.add(BackendSpec(name=RZZ_BACKEND, configuration=conf, properties=None, source="test"))
    return catalog


# ----------------------------------------------------------------------------- option verdicts


def server_params(program: str, options: dict[str, Any] | None, **top: Any) -> dict[str, Any]:
    pub: list[Any] = [BELL] if program == "sampler" else [encode_qpy(QuantumCircuit(2)), "ZZ"]
    params: dict[str, Any] = {"pubs": [pub], "version": 2, **top}
    if options is not None:
        params["options"] = options
    return params


def server_verdict(program: str, path: str, value: Any, backend: Any) -> tuple[bool, str | None]:
    """The server's admission of a job carrying the option."""
    if path == "resilience_level":
        params = server_params(program, None, resilience_level=value)
    else:
        params = server_params(program, nested(path, value))
    try:
        prepare_job(program, params, backend)
    except JobInputError as exc:
        return False, exc.field
    return True, None


def _same_option(client_path: str | None, server_field: str | None) -> bool:
    assert client_path and server_field
    return server_field.removeprefix("params.") == client_path.removeprefix("params.")


def test_the_table_is_big_and_two_sided():
    generated = {(c.program, c.path) for c in GENERATED_CASES}
    assert len(OPTION_CASES) >= 40 and len(generated) >= 40
    assert sum(c.accepted for c in OPTION_CASES) >= 40
    assert sum(not c.accepted for c in OPTION_CASES) >= 40


@pytest.mark.parametrize("case", OPTION_CASES, ids=lambda c: c.id)
def test_client_and_server_give_the_same_option_verdict(case: OptionCase, catalog):
    sim = catalog.get("rest_simulator")
    client_ok, client_path = client_verdict(case.program, case.path, case.value)
    server_ok, server_field = server_verdict(case.program, case.path, case.value, sim)
    assert client_ok == server_ok == case.accepted, (case, client_path, server_field)
    if not case.accepted:
        assert _same_option(client_path, server_field), (client_path, server_field)
        assert case.path.split(".")[-1] in server_field  # the message names the option


@pytest.mark.parametrize("case", OPTION_CASES, ids=lambda c: c.id)
def test_never_looser_than_the_models(case: OptionCase):
    """What the published model rejects, the contract rejects; extra rules only add rejections."""
    if not model_accepts(case.program, case.path, case.value):
        assert not case.accepted
    elif not case.accepted:
        assert case.why != "model", case  # a rejection the model does not make is documented


@pytest.mark.parametrize(("program", "options", "accepted"), COMBINED_CASES)
def test_rules_across_options_give_the_same_verdict(program, options, accepted, catalog):
    client = EstimatorOptions.coerce(options) if program == "estimator" else SamplerOptions()
    try:
        client._program_options()
        client_ok = True
    except ValueError:
        client_ok = False
    try:
        prepare_job(program, server_params(program, options), catalog.get("rest_simulator"))
        server_ok = True
    except JobInputError:
        server_ok = False
    assert client_ok == server_ok == accepted


def test_the_issue_values_name_the_option_and_what_is_accepted():
    with pytest.raises(OptionsError) as info:
        check_option("estimator", "resilience.zne.noise_factors", [0.5, 1.0])
    assert info.value.path == "options.resilience.zne.noise_factors[0]"
    assert ">= 1" in str(info.value)
    with pytest.raises(OptionsError, match="'linear'.*'fallback'") as info:
        check_option("estimator", "resilience.zne.extrapolator", "cubic")
    with pytest.raises(TypeError, match=r"layer_pair_depths\[0\] must be an integer"):
        check_option("estimator", "resilience.layer_noise_learning.layer_pair_depths", [0.5])
    with pytest.raises(ValueError, match=r"seed_simulator must be an integer in \[0, 2\*\*63\)"):
        SamplerOptions().simulator.seed_simulator = -5
    assert check_option("estimator", "resilience.pec.max_overhead", 0.5) == 0.5


def test_server_tree_defaults_come_from_the_models():
    sampler = check_options("sampler", None)
    estimator = check_options("estimator", {})
    assert sampler["default_shots"] == 4096
    assert estimator["default_precision"] == 0.015625
    assert estimator["resilience"]["layer_noise_learning"]["layer_pair_depths"] == [
        0,
        1,
        2,
        4,
        16,
        32,
    ]
    assert sampler["simulator"] == {
        "noise_model": None,
        "seed_simulator": None,
        "coupling_map": None,
        "basis_gates": None,
        "method": "automatic",  # our extension (EXTENSION_OPTIONS); the models lack it
    }
    # The server's tree (noise model aside) validates through the published model.
    from qiskit_rest_provider.wire import protocol
    from qiskit_rest_provider.wire.options import options_model

    options_model("sampler").model_validate(sampler)
    options_model("estimator").model_validate(estimator)
    # The protocol's named defaults are the models' defaults.
    assert protocol.DEFAULT_SHOTS == options_model("sampler")().default_shots
    assert protocol.DEFAULT_PRECISION == options_model("estimator")().default_precision


def test_client_sends_only_what_was_set_in_wire_form():
    import numpy as np
    from qiskit.transpiler import CouplingMap

    options = EstimatorOptions()
    options.default_shots = np.int64(200)
    options.resilience.zne.noise_factors = (1, 3)
    options.simulator.coupling_map = CouplingMap([[0, 1]])
    assert options._program_options() == {
        "default_shots": 200,
        "resilience": {"zne": {"noise_factors": [1, 3]}},
        "simulator": {"coupling_map": [[0, 1]]},
    }
    assert type(options._program_options()["default_shots"]) is int


def test_noise_model_object_and_documents_give_the_same_verdict(catalog):
    from qiskit_aer.noise import NoiseModel, depolarizing_error

    model = NoiseModel()
    model.add_all_qubit_quantum_error(depolarizing_error(0.01, 1), ["x"])
    document = model.to_dict(serializable=True)
    wrapped = {"__type__": "NoiseModel", "__value__": document}
    sim = catalog.get("rest_simulator")
    for value in (document, wrapped):
        assert client_verdict("sampler", "simulator.noise_model", value) == (True, None)
        assert server_verdict("sampler", "simulator.noise_model", value, sim) == (True, None)
    options = SamplerOptions()
    options.simulator.noise_model = model
    sent = options._program_options()["simulator"]["noise_model"]
    assert sent["__type__"] == "NoiseModel"
    prepare_job("sampler", server_params("sampler", {"simulator": {"noise_model": sent}}), sim)


def test_a_shared_group_is_judged_by_the_program_it_joins():
    from qiskit_rest_provider.primitives.options import TwirlingOptions

    twirling = TwirlingOptions(num_randomizations=4)
    options = EstimatorOptions(twirling=twirling)
    assert options.twirling.num_randomizations == 4
    assert options._program_options() == {"twirling": {"num_randomizations": 4}}


# ----------------------------------------------------------------------------- ISA verdicts


def _pub(case: IsaCase, circuit: QuantumCircuit) -> list[Any]:
    values = [1.0] * circuit.num_parameters
    return [encode_qpy(circuit), values] if values else [encode_qpy(circuit)]


@pytest.mark.parametrize("case", ISA_CASES, ids=lambda c: c.id)
def test_client_server_and_plugin_give_the_same_isa_verdict(case: IsaCase, catalog):
    spec = catalog.get(case.backend)
    circuit = case.circuit(spec.num_qubits)
    client_target = target_from_backend_data(spec.configuration, spec.properties)

    try:
        check_isa(circuit, client_target)
        client_ok, client_message = True, ""
    except InvalidInputError as exc:
        client_ok, client_message = False, str(exc)
    try:
        prepare_job("sampler", {"pubs": [_pub(case, circuit)], "version": 2}, spec)
        server_ok, server_error = True, None
    except JobInputError as exc:
        server_ok, server_error = False, exc
    plugin_ok = unsupported_instructions(spec.target, circuit) == []

    assert client_ok == server_ok == plugin_ok == case.accepted, (client_message, server_error)
    if not case.accepted:
        assert server_error is not None
        assert server_error.field == "params.pubs[0].circuit"
        issue = isa_rule(circuit, spec.target)[0]
        # Both halves say why in the contract's words.
        assert issue.detail in client_message and issue.detail in str(server_error)
        assert f"'{issue.name}'" in client_message and f"'{issue.name}'" in str(server_error)


def test_rzz_bounds_are_checked_the_same_way(catalog):
    spec = catalog.get(RZZ_BACKEND)
    assert spec.target.has_angle_bounds() and spec.target.gate_has_angle_bounds("rzz")
    circuit = QuantumCircuit(5, 1)
    circuit.rzz(2.0, 0, 1)
    circuit.measure(0, 0)
    [issue] = isa_rule(circuit, spec.target)
    assert (issue.name, issue.qargs, issue.reason) == ("rzz", (0, 1), "angle_out_of_bounds")
    assert issue.params == (2.0,)
    with pytest.raises(JobInputError) as info:
        prepare_job("sampler", {"pubs": [[encode_qpy(circuit)]]}, spec)
    assert info.value.code == "angle_out_of_bounds"
    with pytest.raises(InvalidInputError, match=r"pubs\[3\].*'rzz' on qubits \[0, 1\].*angle"):
        check_isa(circuit, spec.target, index=3)
    circuit_ok = QuantumCircuit(5, 1)
    circuit_ok.rzz(math.pi / 4, 0, 1)
    circuit_ok.measure(0, 0)
    assert isa_rule(circuit_ok, spec.target) == []


def test_store_is_refused_with_the_same_message_everywhere(catalog):
    spec = catalog.get("rest_line_5q")
    circuit = next(c for c in ISA_CASES if c.name == "store").circuit(5)
    [first, *_] = isa_rule(circuit, spec.target)
    assert first.name == "store" and first.reason == "classical_variables"
    with pytest.raises(InvalidInputError) as client:
        check_isa(circuit, target_from_backend_data(spec.configuration, spec.properties))
    with pytest.raises(JobInputError) as server:
        prepare_job("sampler", {"pubs": [[encode_qpy(circuit)]]}, spec)
    assert first.detail in str(client.value) and first.detail in str(server.value)
    assert server.value.code == "non_isa_circuit"
    assert ("store", ()) in unsupported_instructions(spec.target, circuit)
