"""Unit checks of the mitigation pieces: layer noise maps, the per-level decisions, refusals."""

from __future__ import annotations

import numpy as np
import pytest
from qiskit import QuantumCircuit
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit.quantum_info import Pauli, SparsePauliOp

from qiskit_rest_provider.server.backends.catalog import BackendCatalog
from qiskit_rest_provider.server.execution.layer_noise import pauli_lindblad_rates
from qiskit_rest_provider.server.jobs.checks import JobInputError
from qiskit_rest_provider.server.jobs.mitigation_checks import check_suppression
from qiskit_rest_provider.wire.options import OptionsError, check_options, resolved_mitigation


@pytest.fixture(scope="module")
def catalog():
    return BackendCatalog.load()


def test_twirled_rates_reproduce_the_pauli_fidelities_of_the_device_cz(catalog):
    """exp(-2 * sum of anticommuting rates) gives back each Pauli fidelity of the CZ's error."""
    from qiskit.quantum_info import Kraus

    model = catalog.get("rest_line_5q").noise_model
    error = model._local_quantum_errors["cz"][(1, 2)]
    rates = pauli_lindblad_rates(error, 2)
    assert len(rates) == 15 and all(r >= 0 for r in rates.values())
    kraus = Kraus(error.to_quantumchannel()).data
    for label in rates:
        pauli = Pauli(label)
        matrix = pauli.to_matrix()
        fidelity = np.trace(matrix @ sum(k @ matrix @ k.conj().T for k in kraus)).real / 4
        exponent = sum(r for q, r in rates.items() if not pauli.commutes(Pauli(q)))
        assert np.exp(-2 * exponent) == pytest.approx(fidelity, abs=1e-9)
    # a 0.5 % CZ error: total rate of the order of the error
    assert 1e-3 < sum(rates.values()) < 2e-2


@pytest.mark.parametrize(
    ("level", "set_", "expected"),
    [
        (0, {}, dict(twirling=False, measure_mitigation=False, zne_mitigation=False)),
        (1, {}, dict(twirling=True, measure_mitigation=True, zne_mitigation=False)),
        (2, {}, dict(twirling=True, measure_mitigation=True, zne_mitigation=True)),
        (2, {"resilience": {"zne_mitigation": False}}, dict(zne_mitigation=False)),
        (0, {"resilience": {"pec_mitigation": True}}, dict(pec_mitigation=True)),
        (0, {"dynamical_decoupling": {"enable": True}}, dict(dynamical_decoupling=True)),
    ],
)
def test_ibm_defaults_per_resilience_level(level, set_, expected):
    decided = resolved_mitigation(check_options("estimator", set_), level)
    for key, value in expected.items():
        assert decided[key] is value, key


def _estimator_pub(circuit, precision=0.015625):
    observable = SparsePauliOp.from_sparse_list([("Z", [0], 1.0)], circuit.num_qubits)
    return EstimatorPub.coerce((circuit, observable), precision)


@pytest.mark.parametrize(
    ("options", "path"),
    [
        (
            {"resilience": {"layer_noise_learning": {"num_randomizations": 8}}},
            "options.resilience.layer_noise_learning.num_randomizations",
        ),
        (
            {"resilience": {"layer_noise_learning": {"layer_pair_depths": [0, 2]}}},
            "options.resilience.layer_noise_learning.layer_pair_depths",
        ),
        (
            {"resilience": {"measure_noise_learning": {"shots_per_randomization": 64}}},
            "options.resilience.measure_noise_learning.shots_per_randomization",
        ),
    ],
)
def test_options_never_performed_are_refused_by_the_shared_checker(options, path):
    with pytest.raises(OptionsError) as info:
        check_options("estimator", options)
    assert info.value.path == path
    assert "not performed" in str(info.value)
    # their defaults, set explicitly, are fine
    check_options(
        "estimator",
        {"resilience": {"layer_noise_learning": {"num_randomizations": 32.0}}},
    )


@pytest.mark.parametrize(
    ("program", "options", "pub", "field"),
    [
        ("estimator", {}, "tiny_precision", "params.pubs[0]"),
        (
            "sampler",
            {"twirling": {"enable_measure": True}},
            "gate_after_measure",
            "params.options.twirling.enable_measure",
        ),
        (
            "sampler",
            {"dynamical_decoupling": {"enable": True}},
            "control_flow",
            "params.options.dynamical_decoupling.enable",
        ),
    ],
)
def test_what_cannot_be_performed_for_the_pubs_is_refused_naming_it(program, options, pub, field):
    circuit = QuantumCircuit(2, 1)
    circuit.x(0)
    if pub == "gate_after_measure":
        circuit.measure(0, 0)
        circuit.x(0)
    if pub == "control_flow":
        circuit.measure(0, 0)
        with circuit.if_test((circuit.clbits[0], 1)):
            circuit.x(1)
    if program == "sampler":
        pubs = [SamplerPub.coerce(circuit, 100)]
    else:
        pubs = [_estimator_pub(circuit, 1e-4 if pub == "tiny_precision" else 0.015625)]
    tree = check_options(program, options)
    with pytest.raises(JobInputError) as info:
        check_suppression(program, tree, pubs, level=1, noisy=True)
    assert info.value.field == field
    assert field in str(info.value)


def test_decoupling_on_a_backend_without_durations_inserts_nothing_and_says_why(catalog):
    from qiskit_rest_provider.server.execution.suppression import (
        NO_DURATIONS,
        dd_metadata,
        has_durations,
    )

    assert has_durations(catalog.get("rest_line_5q").target)
    ideal = catalog.get("rest_simulator")
    assert not has_durations(ideal.target)
    tree = check_options("sampler", {"dynamical_decoupling": {"enable": True}})
    assert dd_metadata(tree, ideal, 0) == {**tree["dynamical_decoupling"], "num_pulses": 0,
                                           "note": NO_DURATIONS}  # fmt: skip


def test_compaction_keeps_the_relevant_qubits_and_embeds_back():
    from qiskit.primitives.containers.observables_array import ObservablesArray

    from qiskit_rest_provider.server.execution.compaction import (
        compact_circuit,
        compact_observables,
        drop_idle_wires,
        embed,
        relevant_qubits,
    )

    circuit = QuantumCircuit(6, 1)
    circuit.x(4)
    circuit.cz(4, 1)
    circuit.barrier()
    circuit.measure(1, 0)
    observables = ObservablesArray.coerce(["IIIIIZ", "IZIIII"])  # Z on qubit 0, Z on qubit 4
    qubits = relevant_qubits(circuit, observables)
    assert qubits == [0, 1, 4]
    small = compact_circuit(circuit, qubits)
    assert small.num_qubits == 3 and small.count_ops()["cz"] == 1
    compact = compact_observables(observables, 6, qubits)
    assert [compact.ravel()[k] for k in range(2)] == [{"IIZ": 1.0}, {"ZII": 1.0}]
    back = embed(small, qubits, 6)
    assert back.num_qubits == 6
    cz = next(i for i in back.data if i.operation.name == "cz")
    assert [back.find_bit(q).index for q in cz.qubits] == [4, 1]
    padded = back.copy()
    padded.x(5)  # e.g. a DD pulse on a never-used wire
    assert "x" in drop_idle_wires(padded, qubits).count_ops()
    assert drop_idle_wires(padded, qubits).count_ops()["x"] == 1


def test_pec_layers_beyond_max_layers_to_learn_are_not_mitigated(catalog):
    from qiskit_rest_provider.server.execution.layer_noise import layer_noise_model
    from qiskit_rest_provider.server.execution.mitigation import finalized_options

    circuit = QuantumCircuit(3)
    circuit.cz(0, 1)
    circuit.sx(1)
    circuit.cz(1, 2)
    tree = check_options("estimator", {"resilience": {"pec_mitigation": True}})
    final = finalized_options(tree, 1, noisy=True, shots=1024)
    model = catalog.get("rest_line_5q").noise_model
    every = layer_noise_model(circuit, final, model)
    assert len(every) == 2 and all(m.num_terms > 0 for _, m in every)
    first = layer_noise_model(circuit, final, model, max_layers=1)
    assert first[0][1].num_terms > 0 and first[1][1].num_terms == 0


def test_split_jobs_give_the_whole_jobs_results(catalog):
    """Twirled/decoupled sampler and level-2 estimator PUBs: seeds follow the PUB's job index."""
    from qiskit_rest_provider.server.execution.runner import execute_job
    from qiskit_rest_provider.server.execution.split import merge_outcomes, plan_parts
    from qiskit_rest_provider.server.jobs.admission import prepare_job
    from qiskit_rest_provider.wire.pubs import encode_estimator_params, encode_sampler_params
    from qiskit_rest_provider.wire.results import decode_result

    backend = catalog.get("rest_line_5q")
    circuit = QuantumCircuit(5)
    circuit.x(0)
    circuit.cz(0, 1)
    measured = circuit.measure_all(inplace=False)
    jobs = [
        (
            "sampler",
            encode_sampler_params(
                [SamplerPub.coerce(measured, 100) for _ in range(2)],
                options={
                    "simulator": {"seed_simulator": 7},
                    "twirling": {"enable_gates": True, "enable_measure": True},
                    "dynamical_decoupling": {"enable": True},
                },
            ),
        ),
        (
            "estimator",
            encode_estimator_params(
                [_estimator_pub(circuit, 0.05) for _ in range(2)],
                options={"seed_estimator": 3},
                resilience_level=2,
            ),
        ),
    ]
    for program, params in jobs:
        job = prepare_job(program, params, backend)
        plan = plan_parts(job, 2, min_seconds=0)
        assert len(plan) == 2
        outcomes = [vars(execute_job(sub, backend, part)) for sub, part in plan]
        split = decode_result(merge_outcomes(outcomes, plan, qiskit=job.support_qiskit).body)
        whole = decode_result(execute_job(job, backend).result_body)
        for a, b in zip(whole, split):
            for name in a.data.keys():
                left, right = a.data[name], b.data[name]
                if hasattr(left, "array"):
                    left, right = left.array, right.array
                np.testing.assert_array_equal(np.asarray(left), np.asarray(right))


def test_sampled_work_is_bounded_per_job():
    from qiskit.circuit import Parameter

    theta = Parameter("t")
    circuit = QuantumCircuit(1)
    circuit.rz(theta, 0)
    observable = SparsePauliOp("Z")
    pub = EstimatorPub.coerce((circuit, observable, np.zeros((1000, 1))), 0.01)  # 10^4 shots
    tree = check_options("estimator", {})
    check_suppression("estimator", tree, [pub], level=1)  # 10^7: at the limit
    with pytest.raises(JobInputError, match="noise factors") as info:
        check_suppression("estimator", tree, [pub], level=2)  # x3 noise factors
    assert info.value.code == "job_too_large"
    check_suppression("estimator", tree, [pub], level=2, noisy=False)  # exact path
