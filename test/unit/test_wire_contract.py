"""The contract (``wire.contract``) against IBM's models, and the server meeting it both ways.

Inputs: what the models refuse is named by its field path; what qiskit-ibm-runtime sends (null
sampler shots, nested observables) is tolerated; the server's admission refuses unknown keys.
Results: documents the server's runner writes validate against the result models, with the
estimator's shots rule and resolved twirling flags.
"""

from __future__ import annotations

import base64
import math
import subprocess
import sys
import zlib

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit.quantum_info import SparsePauliOp

from qiskit_rest_provider.exceptions import WireFormatError
from qiskit_rest_provider.server.backends.catalog import BackendCatalog
from qiskit_rest_provider.server.execution.runner import execute_job
from qiskit_rest_provider.server.jobs.admission import JobInputError, prepare_job
from qiskit_rest_provider.wire import protocol
from qiskit_rest_provider.wire.arrays import encode_ndarray
from qiskit_rest_provider.wire.circuits import encode_qpy
from qiskit_rest_provider.wire.contract import validate_params, validate_result
from qiskit_rest_provider.wire.json import loads
from qiskit_rest_provider.wire.pubs import encode_estimator_params, encode_sampler_params

EMPTY = encode_ndarray(np.zeros((0,)))


@pytest.fixture(scope="module")
def sim():
    return BackendCatalog.load().get("rest_simulator")


def _bell() -> QuantumCircuit:
    qc = QuantumCircuit(2, 2)
    qc.h(0)
    qc.cx(0, 1)
    qc.measure([0, 1], [0, 1])
    return qc


def _rx() -> QuantumCircuit:
    qc = QuantumCircuit(1)
    qc.rx(Parameter("t"), 0)
    return qc


# ----------------------------------------------------------------------------- protocol
def test_protocol_names_states_and_stays_free_of_qiskit():
    assert protocol.FINAL_STATES == {"Completed", "Failed", "Cancelled"}
    assert protocol.PENDING_STATES | protocol.FINAL_STATES == set(protocol.JOB_STATES)
    assert protocol.REASON_MAX_TIME == 1305
    assert protocol.DEFAULT_SHOTS == 4096 and protocol.DEFAULT_PRECISION == 1 / 64
    # the Qiskit-free client package imports it: importing it must not pull in Qiskit
    code = "import sys, qiskit_rest_provider.wire.protocol; print('qiskit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------- inputs
def test_client_payloads_validate_against_the_input_models():
    bell = SamplerPub.coerce(_bell())
    rx = SamplerPub.coerce((_rx().measure_all(inplace=False), [[0.1], [0.2]], 50))
    for form in ("qasm3", "qpy"):
        params = loads(encode_sampler_params_json([bell, rx], form))
        validate_params("sampler", params)
        assert params["pubs"][0][2] == protocol.DEFAULT_SHOTS and params["pubs"][1][2] == 50
        assert "shots" not in params
    params = encode_sampler_params([bell], shots=7, options={"default_shots": 9})
    assert params["pubs"][0][2] == 7
    assert encode_sampler_params([bell], options={"default_shots": 9})["pubs"][0][2] == 9
    est = EstimatorPub.coerce((_rx(), SparsePauliOp("Z"), [[0.1], [0.2]]))
    params = encode_estimator_params([est], precision=0.1, resilience_level=0)
    validate_params("estimator", params)
    assert params["pubs"][0][3] == 0.1 and "precision" not in params


def encode_sampler_params_json(pubs, form):
    from qiskit_rest_provider.wire.json import dumps

    return dumps(encode_sampler_params(pubs, circuit_form=form))


@pytest.mark.parametrize(
    ("program", "params", "field"),
    [
        ("sampler", {"pubs": [], "shots": 10}, "params.shots: unknown key"),
        ("sampler", {"pubs": [], "padding": "x"}, "params.padding: unknown key"),
        ("sampler", {"pubs": [], "options": {"foo": 1}}, "params.options.foo: unknown key"),
        (
            "sampler",
            {"pubs": [], "options": {"twirling": {"enable_gate": True}}},
            "params.options.twirling.enable_gate: unknown key",
        ),
        ("sampler", {"pubs": [], "version": 1}, "params.version:"),
        ("sampler", {"pubs": [["x", EMPTY, 0]]}, "params.pubs[0][2]:"),
        ("sampler", {"pubs": [["x", None, 5]]}, "params.pubs[0][1]:"),
        ("sampler", {"pubs": [["x", EMPTY]]}, "params.pubs[0]: expected 3 elements"),
        ("estimator", {"pubs": [], "precision": 0.1}, "params.precision: unknown key"),
        ("estimator", {"pubs": [], "resilience_level": 3}, "params.resilience_level:"),
        ("estimator", {"pubs": [["x", "ZZ", EMPTY, None]]}, "params.pubs[0][1]:"),
        ("estimator", {"pubs": [["x", {"ZQ": 1.0}, EMPTY, None]]}, "params.pubs[0][1]"),
        ("estimator", {"pubs": [["x", {"Z": 1.0}, EMPTY, -0.1]]}, "params.pubs[0][3]:"),
    ],
)
def test_model_violations_name_the_field(program, params, field):
    with pytest.raises(WireFormatError) as info:
        validate_params(program, params)
    assert str(info.value).startswith(field)


def test_what_the_official_client_sends_is_tolerated():
    # null shots (the model says int > 0; qiskit-ibm-runtime 0.51 sends null) ...
    validate_params("sampler", {"pubs": [[encode_qpy(_bell()), EMPTY, None]]})
    # ... and ObservablesArray.tolist() of a 2-D array (the model has a flat list).
    nested = [[{"Z": 1.0}], [{"X": 0.5}]]
    values = encode_ndarray(np.zeros((1, 3, 1)))
    validate_params("estimator", {"pubs": [[encode_qpy(_rx()), nested, values, None]]})
    with pytest.raises(WireFormatError, match=r"params\.pubs\[0\]\[1\]\[1\]\[0\]"):
        validate_params("estimator", {"pubs": [["x", [[{"Z": 1}], [{"Y": "a"}]], values, None]]})


def test_qpy_checks_read_only_the_header():
    raw = zlib.compress(b"QISKIT" + bytes([12]) + b"\0" * (1 << 22))  # 4 MiB of zeros, QPY 12
    bomb = {"__type__": "QuantumCircuit", "__value__": base64.b64encode(raw).decode()}
    with pytest.raises(WireFormatError, match=r"params\.pubs\[0\]\[0\]: .*qpy_version is 12"):
        validate_params("sampler", {"pubs": [[bomb, EMPTY, 10]]})
    junk = {"__type__": "QuantumCircuit", "__value__": base64.b64encode(b"junk").decode()}
    with pytest.raises(WireFormatError, match="not zlib"):
        validate_params("sampler", {"pubs": [[junk, EMPTY, 10]]})


def test_plain_form_is_admitted_but_unknown_keys_are_not():
    plain = {"pubs": [["x"], ["x", [1.0], None]], "shots": 10, "version": "2"}
    validate_params("sampler", plain, accept_plain=True)
    validate_params("estimator", {"pubs": [["x", "ZZ"]], "precision": 0.1}, accept_plain=True)
    with pytest.raises(WireFormatError, match=r"^params\.padding: unknown key"):
        validate_params("sampler", {**plain, "padding": "x" * 100}, accept_plain=True)
    # a PUB in the models' form is held to them even at admission
    with pytest.raises(WireFormatError, match=r"^params\.pubs\[1\]\[2\]"):
        validate_params("sampler", {"pubs": [["x"], ["x", EMPTY, -1]]}, accept_plain=True)


def test_server_admission_refuses_unknown_params_keys(sim):
    qasm = 'OPENQASM 3.0; include "stdgates.inc"; bit[1] c; x $0; c[0] = measure $0;'  # plain form
    with pytest.raises(JobInputError) as info:
        prepare_job("sampler", {"pubs": [[qasm]], "padding": "x" * 1000}, sim)
    assert info.value.field == "params.padding" and info.value.code == "invalid_params"
    with pytest.raises(JobInputError) as info:
        prepare_job("estimator", {"pubs": [[qasm, "Z"]], "options": {"dd": {}}}, sim)
    assert info.value.field == "params.options.dd" and info.value.code == "invalid_option"
    with pytest.raises(JobInputError) as info:
        prepare_job("sampler", {"pubs": [[encode_qpy(_bell()), EMPTY, 0]]}, sim)
    assert info.value.field == "params.pubs[0][2]"


# ----------------------------------------------------------------------------- results
def _result(sim, program, params):
    outcome = execute_job(prepare_job(program, params, sim), sim)
    document = loads(outcome.result_body)
    validate_result(program, document)
    return document["__value__"]


def test_sampler_result_validates_with_field_types(sim):
    params = encode_sampler_params([SamplerPub.coerce(_bell(), 64)], options={})
    value = _result(sim, "sampler", params)
    data = value["pub_results"][0]["__value__"]["data"]["__value__"]
    assert data["field_names"] == ["c"]
    assert data["field_types"] == [str(type(_bitarray()))]


def _bitarray():
    from qiskit.primitives import BitArray

    return BitArray(np.zeros((1, 1), dtype=np.uint8), 1)


def test_estimator_result_validates_with_shots_and_resolved_twirling(sim):
    pub = EstimatorPub.coerce((_rx(), SparsePauliOp("Z"), [[0.0], [math.pi]]))
    value = _result(sim, "estimator", encode_estimator_params([pub]))
    meta = value["pub_results"][0]["__value__"]["metadata"]
    assert meta["shots"] == 4096 and meta["target_precision"] == protocol.DEFAULT_PRECISION
    # the ideal simulator has nothing to mitigate: level 1 runs the exact path, untwirled
    assert value["metadata"]["twirling"]["enable_measure"] is False
    noisy = BackendCatalog.load().get("rest_line_5q")
    isa = QuantumCircuit(1)
    isa.x(0)
    pub = EstimatorPub.coerce((isa, SparsePauliOp("Z")))
    level1 = _result(noisy, "estimator", encode_estimator_params([pub]))
    twirling = level1["metadata"]["twirling"]
    assert twirling["enable_measure"] is True and twirling["enable_gates"] is False  # level 1
    assert level1["metadata"]["resilience"]["measure_mitigation"] is True
    level0 = _result(noisy, "estimator", encode_estimator_params([pub], resilience_level=0))
    assert level0["metadata"]["twirling"]["enable_measure"] is False


def test_estimator_twirled_shots_take_precedence_over_default_shots(sim):
    pub = EstimatorPub.coerce((_rx(), SparsePauliOp("Z"), [0.3]))
    options = {
        "default_shots": 400,
        "default_precision": 0.05,
        "twirling": {
            "enable_gates": True,
            "num_randomizations": 16,
            "shots_per_randomization": 100,
        },
    }
    value = _result(sim, "estimator", encode_estimator_params([pub], options=options))
    meta = value["pub_results"][0]["__value__"]["metadata"]
    assert meta["shots"] == 1600
    assert meta["target_precision"] == pytest.approx(1 / 40)
    only_default = {"default_shots": 400}
    value = _result(sim, "estimator", encode_estimator_params([pub], options=only_default))
    assert value["pub_results"][0]["__value__"]["metadata"]["shots"] == 400
    explicit = EstimatorPub.coerce((_rx(), SparsePauliOp("Z"), [0.3], 0.1))
    value = _result(sim, "estimator", encode_estimator_params([explicit], options=options))
    # twirling on with both counts set: qiskit-ibm-runtime's rule runs 16 x 100 shots whatever the
    # precision asked for (1 / 0.1**2 = 100), and metadata ``shots`` is what ran
    meta = value["pub_results"][0]["__value__"]["metadata"]
    assert meta["shots"] == 1600 and meta["num_randomizations"] == 16
    assert meta["target_precision"] == pytest.approx(0.1)
    untwirled = {k: v for k, v in options.items() if k != "twirling"}
    value = _result(sim, "estimator", encode_estimator_params([explicit], options=untwirled))
    assert value["pub_results"][0]["__value__"]["metadata"]["shots"] == 100  # 1 / 0.1**2


def test_result_violations_name_the_field():
    with pytest.raises(WireFormatError, match="not a Qiskit-encoded"):
        validate_result("sampler", {"results": []})
    doc = {
        "__type__": "PrimitiveResult",
        "__value__": {
            "pub_results": [
                {
                    "__type__": "PubResult",
                    "__value__": {
                        "data": {
                            "__type__": "DataBin",
                            "__value__": {"field_names": [], "shape": [], "fields": {}},
                        },
                        "metadata": {},
                    },
                }
            ],
            "metadata": {"twirling": {"enable_measure": None}},
        },
    }
    with pytest.raises(WireFormatError) as info:
        validate_result("estimator", doc)
    assert str(info.value).startswith(
        "result.__value__.pub_results[0].__value__.data.__value__.field_types"
    )
