"""The server's validation of the primitives' options tree (protocol §4.4)."""

from __future__ import annotations

import pytest

from qiskit_rest_provider.server.jobs.admission import validate_options
from qiskit_rest_provider.wire.options import DEFAULT_PRECISION, DEFAULT_SHOTS, OptionsError


def test_defaults_are_filled_in_for_both_programs():
    sampler = validate_options("sampler", None)
    assert sampler["default_shots"] == DEFAULT_SHOTS == 4096
    assert sampler["dynamical_decoupling"]["sequence_type"] == "XX"
    assert sampler["twirling"]["strategy"] == "active-accum"
    assert sampler["execution"]["meas_type"] == "classified"
    assert sampler["simulator"]["seed_simulator"] is None
    estimator = validate_options("estimator", {})
    assert estimator["default_precision"] == DEFAULT_PRECISION == 0.015625
    assert estimator["default_shots"] is None
    assert estimator["resilience"]["zne"]["noise_factors"] == [1.0, 3.0, 5.0]
    assert estimator["twirling"]["enable_gates"] is None


def test_documented_values_are_accepted():
    options = {
        "default_shots": 1000,
        "dynamical_decoupling": {
            "enable": True,
            "sequence_type": "XpXm",
            "extra_slack_distribution": "edges",
            "scheduling_method": "asap",
            "skip_reset_qubits": True,
        },
        "execution": {"init_qubits": False, "rep_delay": 0.00025, "meas_type": "classified"},
        "twirling": {
            "enable_gates": True,
            "enable_measure": True,
            "num_randomizations": 16,
            "shots_per_randomization": "auto",
            "strategy": "all",
        },
        "simulator": {"seed_simulator": 42, "coupling_map": [[0, 1]], "basis_gates": ["x"]},
        "experimental": {"anything": {"goes": 1}},
    }
    out = validate_options("sampler", options)
    assert out["dynamical_decoupling"]["sequence_type"] == "XpXm"
    assert out["twirling"]["num_randomizations"] == 16
    assert out["simulator"]["seed_simulator"] == 42
    assert out["experimental"] == {"anything": {"goes": 1}}
    estimator = validate_options(
        "estimator",
        {
            "default_precision": 0.01,
            "default_shots": 2000,
            "seed_estimator": 7,
            "resilience": {
                "measure_mitigation": True,
                "zne_mitigation": True,
                "zne": {
                    "amplifier": "pea",
                    "noise_factors": [1, 3, 5],
                    "extrapolator": "polynomial_degree_2",
                    "extrapolated_noise_factors": [0, 1],
                },
                "layer_noise_learning": {"max_layers_to_learn": 2},
            },
        },
    )
    assert estimator["resilience"]["zne"]["extrapolator"] == "polynomial_degree_2"
    assert estimator["resilience"]["zne"]["noise_factors"] == [1.0, 3.0, 5.0]
    assert estimator["seed_estimator"] == 7


@pytest.mark.parametrize(
    ("program", "options", "path"),
    [
        ("sampler", {"twirling": {"foo": 1}}, "options.twirling.foo"),
        ("sampler", {"transpilation": {"optimization_level": 1}}, "options.transpilation"),
        ("sampler", {"default_precision": 0.1}, "options.default_precision"),
        ("estimator", {"resilience": {"zne": {"bogus": 1}}}, "options.resilience.zne.bogus"),
        ("estimator", {"simulator": {"seed": 1}}, "options.simulator.seed"),
    ],
)
def test_unknown_keys_name_the_full_path(program, options, path):
    with pytest.raises(OptionsError) as info:
        validate_options(program, options)
    assert info.value.path == path
    assert path in str(info.value)


@pytest.mark.parametrize(
    ("program", "options", "path"),
    [
        ("sampler", {"default_shots": 0}, "options.default_shots"),
        ("sampler", {"default_shots": 1.5}, "options.default_shots"),
        ("sampler", {"default_shots": True}, "options.default_shots"),
        (
            "sampler",
            {"dynamical_decoupling": {"enable": "yes"}},
            "options.dynamical_decoupling.enable",
        ),
        (
            "sampler",
            {"dynamical_decoupling": {"sequence_type": "XYZ"}},
            "options.dynamical_decoupling.sequence_type",
        ),
        (
            "sampler",
            {"twirling": {"num_randomizations": "many"}},
            "options.twirling.num_randomizations",
        ),
        ("sampler", {"twirling": "on"}, "options.twirling"),
        ("sampler", {"execution": {"rep_delay": -1}}, "options.execution.rep_delay"),
        ("sampler", {"execution": {"meas_type": "kerneled"}}, "options.execution.meas_type"),
        ("sampler", {"simulator": {"seed_simulator": -3}}, "options.simulator.seed_simulator"),
        ("sampler", {"simulator": {"coupling_map": [[0]]}}, "options.simulator.coupling_map[0]"),
        ("sampler", {"simulator": {"noise_model": 5}}, "options.simulator.noise_model"),
        ("estimator", {"default_precision": 0}, "options.default_precision"),
        ("estimator", {"default_precision": float("nan")}, "options.default_precision"),
        (
            "estimator",
            {"resilience": {"zne": {"extrapolator": ["cubic"]}}},
            "options.resilience.zne.extrapolator[0]",
        ),
        (
            "estimator",
            {"resilience": {"zne": {"noise_factors": [0.5]}}},
            "options.resilience.zne.noise_factors[0]",
        ),
        (
            "estimator",
            {"resilience": {"pec_mitigation": True, "zne_mitigation": True}},
            "options.resilience.pec_mitigation",
        ),
    ],
)
def test_wrong_values_name_the_key(program, options, path):
    with pytest.raises(OptionsError) as info:
        validate_options(program, options)
    assert info.value.path == path
    assert path in str(info.value)


def test_error_path_prefix_is_configurable():
    with pytest.raises(OptionsError, match=r"params\.options\.twirling\.foo"):
        validate_options("sampler", {"twirling": {"foo": 1}}, path="params.options")


def test_noise_model_dict_is_accepted_bare_and_wrapped():
    from qiskit_aer.noise import NoiseModel, depolarizing_error

    model = NoiseModel()
    model.add_all_qubit_quantum_error(depolarizing_error(0.1, 1), ["x"])
    as_dict = model.to_dict(serializable=True)
    out = validate_options("sampler", {"simulator": {"noise_model": as_dict}})
    assert out["simulator"]["noise_model"] == as_dict
    wrapped = {"__type__": "NoiseModel", "__value__": as_dict}
    assert (
        validate_options("sampler", {"simulator": {"noise_model": wrapped}})["simulator"][
            "noise_model"
        ]
        == as_dict
    )


def test_input_is_not_mutated_and_defaults_are_not_shared():
    given = {"twirling": {"enable_gates": True}}
    first = validate_options("sampler", given)
    first["twirling"]["strategy"] = "changed"
    first["experimental"]["x"] = 1
    second = validate_options("sampler", given)
    assert given == {"twirling": {"enable_gates": True}}
    assert second["twirling"]["strategy"] == "active-accum"
    assert second["experimental"] == {}
