"""Client-side primitive options: typed, validated at set time, only set values sent."""

from __future__ import annotations

import copy

import pytest

from qiskit_rest_provider.primitives.options import UNSET, EstimatorOptions, SamplerOptions


def test_everything_starts_unset_and_nothing_is_sent():
    options = SamplerOptions()
    assert options.default_shots is UNSET
    assert options.twirling.enable_gates is UNSET
    assert options.to_dict() == {}
    assert options._program_options() == {}
    assert options._job_fields() == {}


def test_attribute_setting_nested_and_program_options():
    options = SamplerOptions()
    options.default_shots = 2000
    options.twirling.enable_gates = True
    options.dynamical_decoupling.sequence_type = "XY4"
    options.simulator.seed_simulator = 42
    assert options._program_options() == {
        "default_shots": 2000,
        "twirling": {"enable_gates": True},
        "dynamical_decoupling": {"sequence_type": "XY4"},
        "simulator": {"seed_simulator": 42},
    }


def test_from_dict_and_update_merge_groups():
    options = SamplerOptions.coerce({"default_shots": 10, "twirling": {"enable_gates": True}})
    options.update(twirling={"enable_measure": True}, simulator={"seed_simulator": 1})
    assert options.twirling.enable_gates is True
    assert options.twirling.enable_measure is True
    assert options.default_shots == 10
    assert options.simulator.seed_simulator == 1


def test_client_only_groups_become_job_fields():
    options = EstimatorOptions.coerce(
        {
            "environment": {"job_tags": ["a", "b"], "log_level": "info", "private": True},
            "max_execution_time": 300,
            "resilience_level": 1,
            "default_precision": 0.01,
        }
    )
    assert options._job_fields() == {
        "tags": ["a", "b"],
        "log_level": "INFO",
        "private": True,
        "cost": 300,
    }
    # resilience_level travels as a top-level params key, not inside options.
    assert options._program_options() == {"default_precision": 0.01}
    assert options.resilience_level == 1


@pytest.mark.parametrize(
    "path",
    ["shots", "twirling.enable", "resilience_level"],
)
def test_unknown_sampler_keys_raise_naming_the_key(path):
    options = SamplerOptions()
    *groups, leaf = path.split(".")
    target = options
    for group in groups:
        target = getattr(target, group)
    with pytest.raises(AttributeError, match=leaf):
        setattr(target, leaf, 1)


def test_unknown_key_in_dict_raises():
    with pytest.raises(AttributeError, match="default_shot"):
        SamplerOptions.coerce({"default_shot": 10})
    with pytest.raises(AttributeError, match="zne.noise_factor"):
        EstimatorOptions.coerce({"resilience": {"zne": {"noise_factor": [1, 3]}}})


@pytest.mark.parametrize(
    ("cls", "name", "value"),
    [
        (SamplerOptions, "default_shots", 0),
        (SamplerOptions, "default_shots", 1.5),
        (SamplerOptions, "default_shots", True),
        (SamplerOptions, "max_execution_time", -1),
        (EstimatorOptions, "default_precision", 0),
        (EstimatorOptions, "default_precision", "high"),
        (EstimatorOptions, "resilience_level", 3),
        (EstimatorOptions, "seed_estimator", "x"),
    ],
)
def test_bad_values_raise_value_error(cls, name, value):
    options = cls()
    with pytest.raises(ValueError, match=name):
        setattr(options, name, value)


def test_nested_value_validation():
    options = SamplerOptions()
    with pytest.raises(ValueError, match="twirling.strategy"):
        options.twirling.strategy = "sometimes"
    with pytest.raises(ValueError, match="environment.job_tags"):
        options.environment.job_tags = "tag"
    with pytest.raises(ValueError, match="execution.meas_type"):
        options.execution.meas_type = "raw"
    options.twirling.num_randomizations = "auto"
    options.twirling.num_randomizations = 8
    with pytest.raises(ValueError):
        options.twirling.num_randomizations = 0


def test_none_resets_to_unset_and_copies_are_independent():
    options = SamplerOptions(default_shots=5)
    options.default_shots = None
    assert options.default_shots is UNSET
    options.twirling.enable_gates = True
    clone = SamplerOptions.coerce(options)
    clone.twirling.enable_gates = False
    assert options.twirling.enable_gates is True
    assert copy.deepcopy(options).to_dict() == options.to_dict()


def test_coupling_map_accepts_qiskit_coupling_map():
    from qiskit.transpiler import CouplingMap

    options = SamplerOptions()
    options.simulator.coupling_map = CouplingMap([[0, 1], [1, 2]])
    assert options.to_dict()["simulator"]["coupling_map"] == [[0, 1], [1, 2]]


def test_estimator_resilience_tree():
    options = EstimatorOptions()
    options.resilience.zne_mitigation = True
    options.resilience.zne.noise_factors = [1, 3, 5]
    options.resilience.zne.extrapolator = ["exponential", "linear"]
    options.resilience.measure_noise_learning.num_randomizations = 16
    assert options._program_options() == {
        "resilience": {
            "zne_mitigation": True,
            "zne": {"noise_factors": [1, 3, 5], "extrapolator": ["exponential", "linear"]},
            "measure_noise_learning": {"num_randomizations": 16},
        }
    }


def test_bad_options_argument_type():
    with pytest.raises(ValueError):
        SamplerOptions.coerce(["default_shots"])
