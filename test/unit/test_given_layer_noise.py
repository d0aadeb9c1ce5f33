"""A given ``resilience.layer_noise_model``: decoding, matching to PUB layers, refusals.

The entries are written by qiskit-ibm-runtime's own ``RuntimeEncoder`` from its ``LayerError``
objects, exactly what its legacy ``EstimatorV2`` sends.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.quantum_info import PauliList, SparsePauliOp

from qiskit_rest_provider.server.execution import given_layer_noise as given_noise
from qiskit_rest_provider.server.jobs.checks import JobInputError
from qiskit_rest_provider.server.jobs.mitigation_checks import check_suppression
from qiskit_rest_provider.wire.options import OptionsError, check_options

runtime = pytest.importorskip("qiskit_ibm_runtime")
FIELD = "params.options.resilience.layer_noise_model"


def _layer_error(pairs, qubits, labels, rates, gate="cz"):
    from qiskit_ibm_runtime.results.noise_learner import LayerError, PauliLindbladError

    circuit = QuantumCircuit(len(qubits))
    for a, b in pairs:
        getattr(circuit, gate)(a, b)
    error = None
    if labels is not None:
        error = PauliLindbladError(PauliList(labels), np.asarray(rates, dtype=float))
    return LayerError(circuit, qubits, error)


def _wire(layer_errors):
    return json.loads(json.dumps(layer_errors, cls=runtime.RuntimeEncoder))


def _pub(num_qubits=5, gates=((1, 2), (2, 3))):
    circuit = QuantumCircuit(num_qubits)
    circuit.x(1)
    for a, b in gates:
        circuit.cz(a, b)
    observable = SparsePauliOp.from_sparse_list([("ZZZ", [1, 2, 3], 1.0)], num_qubits)
    return EstimatorPub.coerce((circuit, observable), 0.05)


def _tree(value, **resilience):
    return check_options(
        "estimator",
        {"resilience": {"pec_mitigation": True, "layer_noise_model": value, **resilience}},
    )


def test_entries_decode_and_match_the_pub_layers_in_box_order():
    """Layer (1,2) then (2,3) under active-accum twirling: {1,2} and {1,2,3} boxes."""
    first = _layer_error([(0, 1)], [1, 2], ["XZ", "YY"], [0.01, 0.02])
    second = _layer_error([(1, 2)], [1, 2, 3], ["IZX"], [0.03])
    given = given_noise.decode_layer_noise_model(_wire([first, second]), 5)
    assert [g.key for g in given] == [
        ((1, 2), (("cz", (1, 2), ()),)),
        ((1, 2, 3), (("cz", (2, 3), ()),)),
    ]
    tree = _tree(_wire([first, second]))
    final = given_noise.finalized_options(tree, 1, noisy=True, shots=1000)
    pub = _pub()
    circuit, qubits, layers = given_noise.pub_layers(pub, final)
    pairs, matched = given_noise.given_noise_maps(layers, circuit, qubits, given)
    assert matched == [0, 1]
    for (layer, noise), entry in zip(pairs, (first, second)):
        box = [qubits[circuit.find_bit(q).index] for q in layer.qubits]
        # every generator lands on the same physical qubits with its rate
        got = {}
        for paulis, indices, rate in noise.to_sparse_list():
            got[tuple(sorted(zip((box[i] for i in indices), paulis)))] = rate
        want = {}
        for pauli, rate in zip(entry.error.generators, entry.error.rates):
            on = []
            for j, q in enumerate(entry.qubits):
                z, x = bool(pauli.z[j]), bool(pauli.x[j])
                if z or x:
                    on.append((q, "Y" if z and x else "Z" if z else "X"))
            want[tuple(sorted(on))] = rate
        assert got == pytest.approx(want)
    # the echo decodes, through the official decoder, into the entries that were given
    echoed = json.loads(json.dumps([g.wire for g in given]), cls=runtime.RuntimeDecoder)
    assert echoed[1].qubits == [1, 2, 3] and echoed[1].circuit == second.circuit
    assert echoed[0].error.rates.tolist() == [0.01, 0.02]


def test_an_unmatched_pub_layer_is_noiseless_and_a_missing_error_too():
    only_second = _layer_error([(1, 2)], [1, 2, 3], None, None)
    given = given_noise.decode_layer_noise_model(_wire([only_second]), 5)
    final = given_noise.finalized_options(_tree(_wire([only_second])), 1, noisy=True, shots=1000)
    circuit, qubits, layers = given_noise.pub_layers(_pub(), final)
    pairs, matched = given_noise.given_noise_maps(layers, circuit, qubits, given)
    assert matched == [0]
    assert [noise.num_terms for _, noise in pairs] == [0, 0]


def _admit(value, pubs=None, level=1, **resilience):
    check_suppression("estimator", _tree(value, **resilience), pubs or [_pub()], level=level)


def _set(path, value):
    def edit(entry):
        node = entry
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


_ERROR = ("__value__", "error", "__value__")


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (_set(("__value__", "qubits"), [1, 1]), "distinct"),
        (_set(("__value__", "qubits"), [1, 9]), "0..4"),
        (_set(("__value__", "qubits"), [1, 2, 3]), "has 2 qubits"),
        (_set((*_ERROR, "generators", "__value__", "data"), ["XX", "ZZ"]), "2 generators"),
        (_set((*_ERROR, "generators", "__value__", "data"), ["XXX"]), "act on 3 qubits"),
        (_set((*_ERROR, "generators", "__value__", "data"), ["AB"]), "not Pauli labels"),
    ],
)
def test_a_malformed_entry_is_a_400_naming_it(edit, words):
    value = _wire([_layer_error([(0, 1)], [1, 2], ["XX"], [0.1])])
    edit(value[0])
    with pytest.raises(JobInputError) as info:
        check_suppression("estimator", _tree(value), [_pub()], level=1)
    assert info.value.field == f"{FIELD}[0]"
    assert words in str(info.value) and f"{FIELD}[0]" in str(info.value)


def test_an_entry_the_models_reject_is_refused_by_the_shared_checker():
    value = _wire([_layer_error([(0, 1)], [1, 2], ["XX"], [0.1])])
    value[0]["__value__"]["circuit"] = "nope"
    with pytest.raises(OptionsError) as info:
        _tree(value)
    assert info.value.path.startswith("options.resilience.layer_noise_model[0]"), info.value.path


def test_a_model_matching_no_layer_of_the_job_is_a_400_naming_it():
    """Noise learned on other qubits (another layout) would leave the job unmitigated."""
    good = _layer_error([(0, 1)], [1, 2], ["XX"], [0.01])
    elsewhere = _layer_error([(0, 1)], [3, 4], ["XX"], [0.01])
    with pytest.raises(JobInputError) as info:
        _admit(_wire([elsewhere]))
    assert info.value.field == f"{FIELD}[0]"
    assert "cz[3, 4] on qubits [3, 4]" in str(info.value)
    assert "cz[1, 2] on qubits [1, 2]" in str(info.value)  # what the job's layers are
    with pytest.raises(JobInputError) as info:
        _admit(_wire([elsewhere, elsewhere]))
    assert info.value.field == FIELD and "none of its 2 layers" in str(info.value)
    _admit(_wire([good]))  # the matching entry alone is fine
    _admit(_wire([good, elsewhere]))  # and an extra entry, learned for other circuits, unused


def test_a_layer_noise_model_without_pec_or_pea_is_a_400():
    good = _layer_error([(0, 1)], [1, 2], ["XX"], [0.01])
    with pytest.raises(JobInputError) as info:
        _admit(_wire([good]), pec_mitigation=False, zne_mitigation=True)
    assert info.value.field == FIELD and "PEA" in str(info.value)
    _admit(_wire([good]), pec_mitigation=False, zne_mitigation=True, zne={"amplifier": "pea"})


def test_learning_options_are_moot_with_a_given_model_and_refused_without():
    learning = {"layer_pair_depths": [0, 1], "num_randomizations": 8}
    with pytest.raises(OptionsError, match="not performed"):
        check_options("estimator", {"resilience": {"layer_noise_learning": learning}})
    tree = check_options(
        "estimator", {"resilience": {"layer_noise_learning": learning, "layer_noise_model": []}}
    )
    assert tree["resilience"]["layer_noise_learning"]["layer_pair_depths"] == [0, 1]
    with pytest.raises(OptionsError, match="must be an integer >= 0"):
        check_options(
            "estimator",
            {
                "resilience": {
                    "layer_noise_learning": {"layer_pair_depths": [-1]},
                    "layer_noise_model": [],
                }
            },
        )


def test_our_client_sends_noise_learner_results_in_the_official_wire_form():
    """Our EstimatorV2 options take qiskit-ibm-runtime's objects and send what its encoder sends."""
    from qiskit_ibm_runtime.results.noise_learner import NoiseLearnerResult

    from qiskit_rest_provider.primitives.options import EstimatorOptions

    entries = [
        _layer_error([(0, 1)], [1, 2], ["XZ", "YY"], [0.01, 0.02]),
        _layer_error([(1, 2)], [1, 2, 3], None, None),
    ]
    options = EstimatorOptions()
    options.resilience.pec_mitigation = True
    options.resilience.layer_noise_model = NoiseLearnerResult(entries, {"backend": "x"})
    sent = options.resilience.layer_noise_model
    official = _wire(entries)
    ours = given_noise.decode_layer_noise_model(sent, 5)
    theirs = given_noise.decode_layer_noise_model(official, 5)
    assert [(g.key, g.terms, g.qubits) for g in ours] == [
        (g.key, g.terms, g.qubits) for g in theirs
    ]
    assert [e["__class__"] for e in sent] == ["LayerError", "LayerError"]
    # it decodes, through the official decoder, into the objects that were set
    back = json.loads(json.dumps(sent), cls=runtime.RuntimeDecoder)
    assert back[0].circuit == entries[0].circuit and back[1].error is None


def test_a_whole_noise_learner_result_is_accepted_as_the_official_client_encodes_it():
    from qiskit_ibm_runtime.results.noise_learner import NoiseLearnerResult

    entry = _layer_error([(0, 1)], [1, 2], ["XX"], [0.01])
    metadata = {
        "backend": "rest_line_5q",
        "input_options": {
            "max_layers_to_learn": 4,
            "shots_per_randomization": 128,
            "num_randomizations": 32,
            "layer_pair_depths": [0, 1],
            "twirling_strategy": "active-accum",
        },
    }
    value = _wire(NoiseLearnerResult([entry], metadata))
    assert value["__type__"] == "NoiseLearnerResult"
    tree = _tree(value)
    given = given_noise.decode_layer_noise_model(tree["resilience"]["layer_noise_model"], 5)
    assert [g.key for g in given] == [((1, 2), (("cz", (1, 2), ()),))]
    check_suppression("estimator", tree, [_pub()], level=1)
    value["__value__"]["data"][0]["__value__"]["qubits"] = [3, 4]
    with pytest.raises(JobInputError) as info:
        check_suppression("estimator", _tree(value), [_pub()], level=1)
    assert info.value.field == f"{FIELD}.__value__.data[0]"
