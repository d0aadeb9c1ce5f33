"""The wire and execution pieces behind the reference-behaviour edges, without a server.

What ``test/integration/test_reference_edges.py`` checks end to end against Qiskit's reference
primitives, pinned here where it happens: parameter-value shapes that survive encoding
(``(*shape, 0)`` for a PUB without parameters), empty laid-out circuits that keep their width
through OpenQASM 3, the D4 import of a program that names no qubit, the empty Pauli label of a
zero-qubit observable, projector observables sent as Paulis, and unmeasured registers that run
and read zeros (ideal and noisy devices).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
from qiskit.circuit import Parameter, ParameterVector
from qiskit.primitives import StatevectorEstimator
from qiskit.primitives.containers import BindingsArray
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit.providers.fake_provider import GenericBackendV2
from qiskit.quantum_info import Operator, SparseObservable, SparsePauliOp
from qiskit.transpiler import generate_preset_pass_manager

from qiskit_rest_provider.primitives.validation import coerce_estimator_pubs, coerce_sampler_pubs
from qiskit_rest_provider.server.backends.catalog import BackendCatalog
from qiskit_rest_provider.server.execution.runner import execute_job
from qiskit_rest_provider.server.jobs.admission import prepare_job
from qiskit_rest_provider.wire.circuits import clear_caches, export_qasm3, import_qasm
from qiskit_rest_provider.wire.pubs import (
    decode_estimator_params,
    decode_sampler_params,
    encode_estimator_params,
    encode_sampler_params,
)
from qiskit_rest_provider.wire.results import decode_result


def run_job(program_id, params, backend):
    """Admission then execution, in this process (what a worker does with stored params)."""
    return execute_job(prepare_job(program_id, params, backend), backend)


a, b = Parameter("a"), Parameter("b")


@pytest.fixture(scope="module")
def catalog():
    return BackendCatalog.load()


@pytest.fixture(scope="module")
def device_pm():
    backend = GenericBackendV2(27, seed=1)
    return generate_preset_pass_manager(optimization_level=1, backend=backend, seed_transpiler=0)


def _h1() -> QuantumCircuit:
    qc = QuantumCircuit(1)
    qc.h(0)
    return qc


# ------------------------------------------------------------------- parameter-value shapes
NO_PARAMETER_FORMS = [
    (None, ()),
    ([], ()),
    ([[]], (1,)),
    (np.array([[]]), (1,)),
    ([np.array([])], (1,)),
    ([[], [], []], (3,)),
    (np.zeros((2, 3, 0)), (2, 3)),
    (BindingsArray(shape=(4,)), (4,)),
]


@pytest.mark.parametrize(("values", "shape"), NO_PARAMETER_FORMS)
@pytest.mark.parametrize("form", ["qasm3", "qpy"])
def test_no_parameter_pub_keeps_its_shape_through_the_wire(values, shape, form):
    (pub,) = coerce_estimator_pubs([(_h1(), "X", values)], precision=None, target=None)
    assert pub.shape == shape
    params = encode_estimator_params([pub], circuit_form=form)
    decoded = decode_estimator_params(params).pubs[0]
    assert decoded.parameter_values.shape == shape
    assert decoded.shape == shape
    # and Qiskit's reference agrees on the shape of the result
    assert StatevectorEstimator().run([(_h1(), "X", values)]).result()[0].data.evs.shape == shape


PARAMETER_FORMS = [
    (0.4, ()),
    ([0.4], ()),
    ([[0.1], [0.2], [0.3]], (3,)),
    (np.zeros((2, 3, 1)), (2, 3)),
    ({a: [0.1, 0.2]}, (2,)),
    ({"a": np.array([[0.1, 0.2]])}, (1, 2)),
    ({(a,): [[0.5], [1.5]]}, (2,)),
    (BindingsArray({a: [0.1, 0.2, 0.3]}), (3,)),
]


@pytest.mark.parametrize(("values", "shape"), PARAMETER_FORMS)
def test_one_parameter_forms_keep_shape_and_values(values, shape):
    qc = QuantumCircuit(1, 1)
    qc.ry(a, 0)
    qc.measure(0, 0)
    (pub,) = coerce_sampler_pubs([(qc, values)], shots=10, target=None)
    decoded = decode_sampler_params(encode_sampler_params([pub])).pubs[0]
    assert decoded.shape == shape
    sent = pub.parameter_values.as_array([a])
    (param,) = decoded.circuit.parameters
    np.testing.assert_array_equal(decoded.parameter_values.as_array([param]), sent)


def test_parameter_vector_values_bind_by_identity_not_sorted_name():
    vec = ParameterVector("v", 12)
    qc = QuantumCircuit(1)
    for p in vec:
        qc.rz(p, 0)
    values = np.arange(12.0)
    for given in ({vec: values}, {tuple(vec): values}, values):
        (pub,) = coerce_estimator_pubs([(qc, "Z", given)], precision=None, target=None)
        decoded = decode_estimator_params(encode_estimator_params([pub])).pubs[0]
        bound = decoded.circuit.assign_parameters(
            dict(
                zip(
                    decoded.circuit.parameters,
                    decoded.parameter_values.as_array(decoded.circuit.parameters),
                )
            )
        )
        angles = [inst.operation.params[0] for inst in bound.data]
        np.testing.assert_allclose(angles, values)


# ------------------------------------------------------------------------ circuit widths
def test_empty_laid_out_circuit_is_exported_with_its_width(device_pm):
    """An ISA circuit with no instructions used to export as a program without qubits."""
    clear_caches()
    isa = device_pm.run(QuantumCircuit(1))
    assert isa.num_qubits == 27 and not isa.data
    text = export_qasm3(isa).text
    assert "qubit[27] q;" in text
    assert import_qasm(text).circuit.num_qubits == 27
    # a classical register called q does not clash
    isa_c = device_pm.run(QuantumCircuit(QuantumRegister(1), ClassicalRegister(1, "q")))
    text_c = export_qasm3(isa_c).text
    imported = import_qasm(text_c, num_qubits=27).circuit
    assert imported.num_qubits == 27 and [r.name for r in imported.cregs] == ["q"]


def test_program_naming_no_qubit_runs_at_the_backend_width():
    """D4: every program is read at the backend's width, one without qubits included."""
    text = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nbit[2] c;\n'
    assert import_qasm(text).circuit.num_qubits == 0
    wide = import_qasm(text, num_qubits=27).circuit
    assert wide.num_qubits == 27 and wide.num_clbits == 2
    assert wide.layout is not None
    # virtual registers keep their declared width
    assert import_qasm("OPENQASM 3.0;\nqubit[2] q;\n", num_qubits=27).circuit.num_qubits == 2


def test_device_wide_observable_on_an_empty_third_party_program():
    params = {
        "pubs": [['OPENQASM 3.0;\ninclude "stdgates.inc";\n', {"I" * 26 + "Z": 1.0}]],
        "version": 2,
    }
    pub = decode_estimator_params(params, num_qubits=27).pubs[0]
    assert pub.circuit.num_qubits == 27 and pub.observables.num_qubits == 27


@pytest.mark.parametrize(("width", "label"), [(0, ""), (3, "III")])
def test_empty_pauli_label_is_the_identity(width, label):
    """The input model's PauliString allows "": the identity of a zero-qubit circuit."""
    qc = QuantumCircuit(width) if width else QuantumCircuit(0)
    params = encode_estimator_params(
        coerce_estimator_pubs([(qc, SparsePauliOp(""))], precision=None, target=None)
        if width == 0
        else [EstimatorPub.coerce((qc, "I" * width))],
        circuit_form="qpy",
    )
    params["pubs"][0][1] = {"": 2.0}
    pub = decode_estimator_params(params).pubs[0]
    assert pub.observables.tolist() == {label: 2.0}


# ----------------------------------------------------------------------------- observables
def test_projector_observables_are_sent_as_their_pauli_expansion():
    obs = [SparseObservable("+"), SparseObservable("0"), SparseObservable.from_list([("r", 2)])]
    (pub,) = coerce_estimator_pubs([(_h1(), obs)], precision=None, target=None)
    sent = pub.observables.tolist()
    assert all(set("".join(d)) <= set("IXYZ") for d in sent)
    for original, as_sent in zip(obs, sent, strict=True):
        expected = Operator(original.to_matrix())
        got = SparsePauliOp.from_list(list(as_sent.items())).to_operator()
        assert got.equiv(expected) or np.allclose(got.data, expected.data)
    # the wire carries them and the server reads them
    decoded = decode_estimator_params(encode_estimator_params([pub])).pubs[0]
    assert decoded.observables.shape == (3,)


def test_pauli_only_observables_are_left_alone():
    pub = EstimatorPub.coerce((_h1(), ["X", "Z"]))
    (same,) = coerce_estimator_pubs([pub], precision=None, target=None)
    assert same is pub


# ------------------------------------------------------------------ unmeasured registers
def _unmeasured(theta: Parameter | None = None) -> QuantumCircuit:
    qc = QuantumCircuit(
        QuantumRegister(2, "q"), ClassicalRegister(3, "a"), ClassicalRegister(2, "b")
    )
    qc.h(0)
    if theta is not None:
        qc.ry(theta, 1)
    return qc


def test_client_accepts_unmeasured_registers_and_warns_without_registers():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        coerce_sampler_pubs([_unmeasured()], shots=10, target=None)
    with pytest.warns(UserWarning, match="no output classical registers"):
        coerce_sampler_pubs([_h1()], shots=10, target=None)


@pytest.mark.parametrize("backend_name", ["rest_simulator", "rest_line_5q"])
def test_server_reads_zeros_of_each_register_width(catalog, backend_name):
    backend = catalog.get(backend_name)
    theta = Parameter("t")
    pm = generate_preset_pass_manager(
        optimization_level=1, target=backend.target, seed_transpiler=0
    )
    pubs = [
        SamplerPub.coerce((pm.run(_unmeasured()), None, 16)),
        SamplerPub.coerce((pm.run(_unmeasured(theta)), [[0.1], [0.2], [0.3]], 8)),
        SamplerPub.coerce((pm.run(_h1()), None, 4)),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params = encode_sampler_params(pubs)
    outcome = run_job("sampler", params, backend)
    result = decode_result(outcome.result_body)
    first, second, third = result
    assert list(first.data.keys()) == ["a", "b"]
    assert (first.data.a.num_bits, first.data.b.num_bits) == (3, 2)
    assert first.data.a.get_counts() == {"000": 16} and first.data.b.get_counts() == {"00": 16}
    assert second.data.shape == (3,) and second.data.a.array.shape == (3, 8, 1)
    assert not second.data.a.array.any() and not second.data.b.array.any()
    assert list(third.data.keys()) == [] and third.data.shape == ()


def test_estimator_on_zero_qubit_and_empty_circuits(catalog):
    backend = catalog.get("rest_simulator")
    empty = QuantumCircuit(2)
    pubs = coerce_estimator_pubs(
        [(QuantumCircuit(0), SparsePauliOp(""), [[], []]), (empty, ["ZZ", "XI", "II"])],
        precision=0.01,
        target=None,
    )
    outcome = run_job("estimator", encode_estimator_params(pubs), backend)
    zero, two = decode_result(outcome.result_body)
    assert zero.data.evs.shape == (2,)
    np.testing.assert_allclose(zero.data.evs, 1.0, atol=5 * 0.01)
    assert two.data.evs.shape == (3,)
    np.testing.assert_allclose(two.data.evs, [1.0, 0.0, 1.0], atol=5 * 0.01)


# ------------------------------------------------------------------- PUBs with no sets at all
@pytest.mark.parametrize("backend_name", ["rest_simulator", "rest_line_5q"])
def test_pubs_with_zero_parameter_sets_return_empty_arrays_of_their_shape(catalog, backend_name):
    """Aer killed the worker process on an empty parameter table; Qiskit returns empty arrays."""
    backend = catalog.get(backend_name)
    pm = generate_preset_pass_manager(optimization_level=1, target=backend.target)
    ry = QuantumCircuit(1, 1)
    ry.ry(a, 0)
    ry.measure(0, 0)
    isa = pm.run(ry)
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    bell.measure_all()
    sampler_pubs = [
        SamplerPub.coerce((isa, np.zeros((0, 1)), 10)),
        SamplerPub.coerce((isa, np.zeros((2, 0, 1)), 10)),
        SamplerPub.coerce((pm.run(bell), np.zeros((0, 0)), 10)),
        SamplerPub.coerce((isa, [[0.0]], 10)),
    ]
    result = decode_result(
        run_job("sampler", encode_sampler_params(sampler_pubs), backend).result_body
    )
    assert [r.data.shape for r in result] == [(0,), (2, 0), (0,), (1,)]
    assert result[1].data.c.array.shape == (2, 0, 10, 1)
    assert result[2].data.meas.array.shape == (0, 10, 1)
    assert result[3].data.c.num_shots == 10
    e = QuantumCircuit(1)
    e.ry(a, 0)
    e_isa = pm.run(e)
    obs = SparsePauliOp("Z").apply_layout(e_isa.layout)
    estimator_pubs = [
        EstimatorPub.coerce((e_isa, obs, np.zeros((0, 1)))),
        EstimatorPub.coerce((e_isa, [obs], np.zeros((3, 0, 1)))),
        EstimatorPub.coerce((e_isa, obs, [0.0])),
    ]
    result = decode_result(
        run_job("estimator", encode_estimator_params(estimator_pubs), backend).result_body
    )
    assert [r.data.evs.shape for r in result] == [(0,), (3, 0), ()]
    assert [r.data.stds.shape for r in result] == [(0,), (3, 0), ()]


@pytest.mark.parametrize(
    ("shape", "expected"), [([2, 3], (2, 3)), ([], ()), (None, ()), ([0], (0,))]
)
def test_bindings_array_wrapper_without_data_keeps_its_shape(shape, expected):
    text = export_qasm3(QuantumCircuit(1, 1)).text
    inner = {"data": {}} if shape is None else {"shape": shape, "data": {}}
    params = {"pubs": [[text, {"__type__": "BindingsArray", "__value__": inner}, 5]]}
    assert decode_sampler_params(params).pubs[0].shape == expected


@pytest.mark.parametrize("shape", [[2, -1], "x", [True], [2**40, 2**40]])
def test_bindings_array_wrapper_shape_is_checked(shape):
    from qiskit_rest_provider.exceptions import WireFormatError

    text = export_qasm3(QuantumCircuit(1, 1)).text
    wrapper = {"__type__": "BindingsArray", "__value__": {"shape": shape, "data": {}}}
    with pytest.raises(WireFormatError, match=r"pubs\[0\]\.parameter_values: BindingsArray shape"):
        decode_sampler_params({"pubs": [[text, wrapper, 5]]})


@pytest.mark.parametrize("names", [["π", "c-1"], ["ℏ", "τ"], ["1a", "a b"], ["input", "output"]])
def test_register_names_survive_the_openqasm_round_trip(names):
    """The Rust exporter wrote "π" and "c-1" verbatim: programs no importer reads."""
    clear_caches()
    qc = QuantumCircuit(QuantumRegister(2, "q"), *[ClassicalRegister(1, n) for n in names])
    qc.x(0)
    qc.measure(0, 0)
    qc.measure(1, 1)
    imported = import_qasm(export_qasm3(qc).text, num_qubits=5).circuit
    assert [r.name for r in imported.cregs] == names


@pytest.mark.parametrize(
    ("observables", "values", "shape"),
    [([], None, (0,)), ([[]], 0.3, (1, 0)), (np.empty((2, 0), dtype=object), None, (2, 0))],
)
def test_empty_observable_arrays_give_empty_results(catalog, observables, values, shape):
    """``ObservablesArray.coerce([])`` has shape (0,); the server used to refuse the empty list."""
    circuit = QuantumCircuit(1)
    if values is not None:
        circuit.ry(a, 0)
    pub = EstimatorPub.coerce((circuit, observables, values))
    assert pub.shape == shape
    params = encode_estimator_params([pub])
    assert decode_estimator_params(params).pubs[0].shape == shape
    result = decode_result(run_job("estimator", params, catalog.get("rest_simulator")).result_body)
    assert (
        result[0].data.evs.shape
        == shape
        == StatevectorEstimator().run([pub]).result()[0].data.evs.shape
    )


def test_mid_circuit_measurements_sample_the_right_distribution_on_a_noisy_device(catalog):
    """Aer's shot branching mis-weighted branches after a mid-circuit measurement.

    ``h; measure; if (m) x; measure`` reads 50/50; with shot branching about one run in eight
    came out near 25/75 (qiskit-aer 0.18, 127-qubit device noise). 24 runs of 400 shots each must
    all lie within 5 binomial standard errors (plus the device's few per cent of noise).
    """
    from qiskit_aer import AerSimulator

    from qiskit_rest_provider.server.execution.sampler import run_sampler_pubs
    from qiskit_rest_provider.server.execution.simulators import (
        active_qubits,
        aer_settings,
        restrict_noise_model,
    )

    backend = catalog.get("rest_hex_127q")
    qc = QuantumCircuit(QuantumRegister(2, "q"), ClassicalRegister(1, "m"))
    qc.h(0)
    qc.measure(0, 0)
    with qc.if_test((qc.cregs[0], 1)):
        qc.x(1)
    qc.measure(1, 0)
    pm = generate_preset_pass_manager(optimization_level=1, target=backend.target)
    isa = pm.run(qc)
    model = restrict_noise_model(backend.noise_model, active_qubits([isa]))
    simulator = AerSimulator(noise_model=model, **aer_settings())
    shots = 400
    sigma = np.sqrt(shots * 0.25)
    ones = []
    for _ in range(24):
        result, _, _ = run_sampler_pubs([SamplerPub.coerce((isa, None, shots))], simulator)
        ones.append(result[0].data.m.get_counts().get("1", 0))
    assert all(abs(n - shots / 2) <= 5 * sigma + 0.05 * shots for n in ones), ones
