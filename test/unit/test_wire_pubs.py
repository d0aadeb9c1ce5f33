"""PUBs <-> params of qiskit_rest_provider.wire.pubs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter, ParameterVector
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit.quantum_info import SparsePauliOp, Statevector

from qiskit_rest_provider.exceptions import WireFormatError
from qiskit_rest_provider.wire import (
    decode_estimator_params,
    decode_sampler_params,
    dumps,
    encode_estimator_params,
    encode_sampler_params,
    export_qasm3,
    loads,
)


def _ansatz(n_params=12, n_qubits=3):
    theta = ParameterVector("θ", n_params)
    qc = QuantumCircuit(n_qubits)
    for i, t in enumerate(theta):
        qc.ry(t, i % n_qubits)
        qc.cx(i % n_qubits, (i + 1) % n_qubits)
    return qc


def _probabilities(circuit):
    return Statevector(circuit.remove_final_measurements(inplace=False)).probabilities()


@pytest.mark.parametrize("form", ["qasm3", "qpy"])
def test_sampler_round_trip_binds_same_circuits(form):
    qc = _ansatz()
    qc.measure_all()
    values = np.random.default_rng(0).uniform(0, 6, (2, 3, 12))
    pub = SamplerPub.coerce((qc, values, 123))
    params = loads(dumps(encode_sampler_params([pub], circuit_form=form)))
    assert params["version"] == 2 and params["support_qiskit"] is True
    decoded = decode_sampler_params(params)
    out = decoded.pubs[0]
    assert out.shape == (2, 3) and out.shots == 123
    sent = pub.parameter_values.bind_all(pub.circuit)
    got = out.parameter_values.bind_all(out.circuit)
    for index in np.ndindex(2, 3):
        assert np.allclose(_probabilities(sent[index]), _probabilities(got[index]))


def test_shots_precedence():
    qc = QuantumCircuit(1, 1)
    qc.measure(0, 0)
    text = export_qasm3(qc).text
    base = {"pubs": [[text], [text, None, 7]], "version": "2"}
    assert [p.shots for p in decode_sampler_params(base).pubs] == [4096, 7]
    assert [p.shots for p in decode_sampler_params(base, default_shots=10).pubs] == [10, 7]
    opts = dict(base, options={"default_shots": 11})
    assert [p.shots for p in decode_sampler_params(opts).pubs] == [11, 7]
    both = dict(opts, shots=12)
    assert [p.shots for p in decode_sampler_params(both).pubs] == [12, 7]


def test_plain_rest_parameter_forms():
    a, b = Parameter("theta"), Parameter("phi")
    qc = QuantumCircuit(1, 1)
    qc.rx(a, 0)
    qc.rz(b, 0)
    qc.measure(0, 0)
    exported = export_qasm3(qc)
    names = exported.parameter_names
    assert names == ("phi", "theta")
    forms = [
        [0.5, 1.5],
        {"theta": 1.5, "phi": 0.5},
        {"__type__": "ndarray", "__value__": [0.5, 1.5]},
        {
            "__type__": "BindingsArray",
            "__value__": {"shape": [], "data": {json.dumps(["phi", "theta"]): [0.5, 1.5]}},
        },
    ]
    for form in forms:
        pub = decode_sampler_params({"pubs": [[exported.text, form, 10]]}).pubs[0]
        bound = pub.parameter_values.bind_all(pub.circuit)[()]
        expected = qc.assign_parameters({b: 0.5, a: 1.5})
        assert np.allclose(_probabilities(bound), _probabilities(expected)), form
    nested = decode_sampler_params({"pubs": [[exported.text, [[0.5, 1.5], [0.1, 0.2]]]]})
    assert nested.pubs[0].shape == (2,)
    by_name = decode_sampler_params(
        {"pubs": [[exported.text, {"theta": [1, 2, 3], "phi": [4, 5, 6]}]]}
    )
    assert by_name.pubs[0].shape == (3,)


@pytest.mark.parametrize(
    "pub, fragment",
    [
        (["TEXT", [1.0]], "pubs[0].parameter_values: expected 2 values"),
        (["TEXT", None], "pubs[0].parameter_values: the circuit has 2 parameters"),
        (["TEXT", {"theta": 1.0}], "no value for parameter(s) ['phi']"),
        (["TEXT", {"theta": 1.0, "phi": 1, "psi": 2}], "unknown parameter 'psi'"),
        (["TEXT", [1.0, 2.0], 0], "pubs[0].shots: must be positive"),
        (["TEXT", [1.0, 2.0], 1.5], "pubs[0].shots: expected a positive integer"),
        (["TEXT", [1.0, 2.0], True], "pubs[0].shots"),
        (["TEXT", [[1.0, 2.0], [1.0]]], "pubs[0].parameter_values: ragged"),
        (["TEXT", [1.0, float("nan")]], "finite"),
        (["not qasm"], "pubs[0].circuit"),
        ([], "pubs[0]: expected a list of 1 to 3"),
        ("TEXT", None),
    ],
)
def test_sampler_errors_name_the_field(pub, fragment):
    qc = QuantumCircuit(1, 1)
    qc.rx(Parameter("theta"), 0)
    qc.rz(Parameter("phi"), 0)
    qc.measure(0, 0)
    text = export_qasm3(qc).text

    def fill(x):
        return text if x == "TEXT" else x

    pub = fill(pub) if isinstance(pub, str) else [fill(x) for x in pub]
    if fragment is None:
        with pytest.raises(WireFormatError, match="parameter_values"):
            decode_sampler_params({"pubs": [pub]})
        return
    with pytest.raises(WireFormatError) as info:
        decode_sampler_params({"pubs": [pub]})
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "params, fragment",
    [
        ([], "params: expected an object"),
        ({"pubs": []}, "params.pubs"),
        ({"pubs": [["x"]], "version": 1}, "params.version"),
        ({"pubs": [["x"]], "options": []}, "params.options"),
        ({"pubs": [["x"]], "shots": -1}, "params.shots"),
        ({"pubs": [["x"]], "options": {"default_shots": 0}}, "params.options.default_shots"),
        ({"pubs": [["x"]], "support_qiskit": "yes"}, "params.support_qiskit"),
    ],
)
def test_params_errors(params, fragment):
    with pytest.raises(WireFormatError) as info:
        decode_sampler_params(params)
    assert fragment in str(info.value)


@pytest.mark.parametrize("form", ["qasm3", "qpy"])
def test_estimator_round_trip_with_broadcasting(form):
    qc = _ansatz(11, 2)
    values = np.random.default_rng(2).uniform(0, 6, (10, 3, 11))
    observables = [[{"ZZ": 1.0}], [{"XI": 0.5, "IY": -1.0}]] * 5
    pub = EstimatorPub.coerce((qc, observables, values, 0.02))
    params = loads(
        dumps(encode_estimator_params([pub], precision=0.1, resilience_level=0, circuit_form=form))
    )
    decoded = decode_estimator_params(params, num_qubits=5)
    out = decoded.pubs[0]
    assert decoded.resilience_level == 0
    assert out.shape == (10, 3) and out.precision == 0.02
    assert out.observables.tolist() == pub.observables.tolist()
    sent = pub.parameter_values.bind_all(pub.circuit)
    got = out.parameter_values.bind_all(out.circuit)
    for index in [(0, 0), (9, 2), (4, 1)]:
        op = SparsePauliOp.from_list(list(observables[index[0]][0].items()))
        assert np.isclose(
            Statevector(sent[index]).expectation_value(op),
            Statevector(got[index]).expectation_value(op),
        )


def test_estimator_observable_forms_and_pauli_convention():
    qc = QuantumCircuit(3)
    qc.x(0)  # qubit 0 is |1>: Z on qubit 0 is -1 -> label "IIZ"
    text = export_qasm3(qc).text
    spo = SparsePauliOp(["IIZ", "ZII"], [2.0, 1.0])
    from qiskit_ibm_runtime import RuntimeEncoder

    wrapped = json.loads(json.dumps(spo, cls=RuntimeEncoder))
    forms = [
        "IIZ",
        ["IIZ", "ZII"],
        {"IIZ": 1},
        [[{"IIZ": 1}], [{"ZII": 2}]],
        {"__type__": "ObservablesArray", "__value__": [{"IIZ": 1.0}]},
        wrapped,
    ]
    shapes = [(), (2,), (), (2, 1), (1,), ()]
    for form, shape in zip(forms, shapes):
        pub = decode_estimator_params({"pubs": [[text, form]]}).pubs[0]
        assert pub.observables.shape == shape
    pub = decode_estimator_params({"pubs": [[text, wrapped]]}).pubs[0]
    assert pub.observables.tolist() == {"IIZ": 2.0, "ZII": 1.0}
    assert Statevector(pub.circuit).expectation_value(SparsePauliOp("IIZ")).real == -1


@pytest.mark.parametrize(
    "observables, values, fragment",
    [
        ("ZZ", None, "pubs[0].observables: observable 'ZZ' acts on 2 qubits but the circuit has 3"),
        ("ZZA", None, "Pauli label"),
        ({"ZZZ": "x"}, None, "coefficient"),
        ({"ZZZ": [1, 2]}, None, "real"),
        (["ZZZ", "ZZZ", "ZZZ"], [[0.1], [0.2]], "does not broadcast"),
    ],
)
def test_estimator_errors(observables, values, fragment):
    # ``[]`` is no longer an error (issue 10): Qiskit's ObservablesArray.coerce reads it as shape
    # (0,); see test/unit/test_reference_edges_unit.py.
    qc = QuantumCircuit(3)
    qc.rx(Parameter("a"), 0)
    text = export_qasm3(qc).text
    pub = [text, observables, values if values is not None else [0.1]]
    with pytest.raises(WireFormatError) as info:
        decode_estimator_params({"pubs": [pub]})
    assert fragment in str(info.value)


def test_estimator_precision_precedence_and_level():
    qc = QuantumCircuit(1)
    text = export_qasm3(qc).text
    params = {"pubs": [[text, "Z"], [text, "Z", None, 0.5]]}
    assert [p.precision for p in decode_estimator_params(params).pubs] == [0.015625, 0.5]
    params["options"] = {"default_precision": 0.25}
    assert decode_estimator_params(params).pubs[0].precision == 0.25
    params["precision"] = 0.125
    assert decode_estimator_params(params).pubs[0].precision == 0.125
    with pytest.raises(WireFormatError, match="pubs\\[1\\].precision"):
        decode_estimator_params({"pubs": [[text, "Z"], [text, "Z", None, -1]]})
    with pytest.raises(WireFormatError, match="params.resilience_level"):
        decode_estimator_params({"pubs": [[text, "Z"]], "resilience_level": 5})


def test_payload_from_the_official_client_decodes():
    from qiskit_ibm_runtime import RuntimeEncoder

    qc = _ansatz(3, 2)
    qc.measure_all()
    values = np.random.default_rng(3).uniform(0, 1, (4, 3))
    pub = SamplerPub.coerce((qc, values, 50))
    body = json.loads(json.dumps({"pubs": [pub], "version": 2}, cls=RuntimeEncoder))
    out = decode_sampler_params(body).pubs[0]
    assert out.shape == (4,) and out.shots == 50
    np.testing.assert_allclose(out.parameter_values.as_array(out.circuit.parameters), values)
