"""Validation of the primitives' ``options`` tree (protocol §4.4) and the server's defaults.

IBM's service declares its option models ``extra="forbid"``: an unknown key is an error, not
something to ignore silently, because a user who misspells ``twirling.enable_gate`` would
otherwise believe twirling ran. We follow that, and every error names the full key path
(``options.twirling.foo``) so the 400 answer tells the user exactly what to fix.

The result of :func:`validate_options` is a plain, JSON-compatible ``dict`` (picklable, storable)
with every documented key present and the server's defaults filled in, so the runner never has
to ask "was this set?".

What the simulator does with the options: ``default_shots``, ``default_precision``,
``seed_estimator`` and ``simulator.*`` (noise model, seed) change the execution; the hardware
options (dynamical decoupling, twirling, resilience, ``execution.*``) are accepted, validated and
echoed in the result metadata, but have no effect on an Aer simulation (decoupling and twirling
do not change ideal or Markovian-noise statistics in expectation; error mitigation is not
simulated). ``execution.meas_type`` other than ``"classified"`` is rejected: a simulator has no
kerneled IQ data to return, and inventing it would be dishonest.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "DEFAULT_PRECISION",
    "DEFAULT_SHOTS",
    "OptionsError",
    "noise_model_from_dict",
    "validate_options",
]

DEFAULT_SHOTS = 4096
"""Sampler shots per PUB unless the PUB, ``params.shots`` or ``options.default_shots`` say."""

DEFAULT_PRECISION = 0.015625
"""Estimator target precision (standard error of each expectation value) by default."""


class OptionsError(ValueError):
    """An option is unknown or has a wrong value; ``path`` is the full key path."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


Validator = Callable[[Any, str], Any]


class Leaf:
    """A validated option value with its default."""

    def __init__(self, check: Validator, default: Any = None) -> None:
        self.check = check
        self.default = default


# ----------------------------------------------------------------------------- leaf checks


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bool(nullable: bool = False) -> Validator:
    def check(value: Any, path: str) -> Any:
        if value is None and nullable:
            return None
        if isinstance(value, bool):
            return value
        raise OptionsError(f"{path} must be true or false, got {_describe(value)}", path)

    return check


def _is_int(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    # JSON numbers like 4096.0 are accepted when they are whole.
    return isinstance(value, float) and math.isfinite(value) and value.is_integer()


def _int(
    minimum: int | None = None,
    maximum: int | None = None,
    *,
    nullable: bool = False,
    auto: bool = False,
) -> Validator:
    def check(value: Any, path: str) -> Any:
        if value is None and nullable:
            return None
        if auto and value == "auto":
            return "auto"
        if not _is_int(value):
            extra = ' or "auto"' if auto else ""
            raise OptionsError(f"{path} must be an integer{extra}, got {_describe(value)}", path)
        value = int(value)
        if minimum is not None and value < minimum:
            raise OptionsError(f"{path} must be >= {minimum}, got {value}", path)
        if maximum is not None and value > maximum:
            raise OptionsError(f"{path} must be <= {maximum}, got {value}", path)
        return value

    return check


def _float(
    *,
    gt: float | None = None,
    ge: float | None = None,
    nullable: bool = False,
    auto: bool = False,
) -> Validator:
    def check(value: Any, path: str) -> Any:
        if value is None and nullable:
            return None
        if auto and value == "auto":
            return "auto"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            extra = ' or "auto"' if auto else ""
            raise OptionsError(f"{path} must be a number{extra}, got {_describe(value)}", path)
        value = float(value)
        if not math.isfinite(value):
            raise OptionsError(f"{path} must be finite, got {value}", path)
        if gt is not None and not value > gt:
            raise OptionsError(f"{path} must be > {gt}, got {value}", path)
        if ge is not None and not value >= ge:
            raise OptionsError(f"{path} must be >= {ge}, got {value}", path)
        return value

    return check


def _enum(*choices: str, nullable: bool = False) -> Validator:
    def check(value: Any, path: str) -> Any:
        if value is None and nullable:
            return None
        if isinstance(value, str) and value in choices:
            return value
        allowed = ", ".join(repr(c) for c in choices)
        raise OptionsError(f"{path} must be one of {allowed}, got {_describe(value)}", path)

    return check


def _list_of(item: Validator, *, nullable: bool = False, auto: bool = False) -> Validator:
    def check(value: Any, path: str) -> Any:
        if value is None and nullable:
            return None
        if auto and value == "auto":
            return "auto"
        if not isinstance(value, (list, tuple)):
            raise OptionsError(f"{path} must be a list, got {_describe(value)}", path)
        return [item(v, f"{path}[{i}]") for i, v in enumerate(value)]

    return check


def _one_or_list(item: Validator) -> Validator:
    def check(value: Any, path: str) -> Any:
        if isinstance(value, (list, tuple)):
            if not value:
                raise OptionsError(f"{path} must not be empty", path)
            return [item(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return item(value, path)

    return check


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise OptionsError(f"{path} must be a string, got {_describe(value)}", path)
    return value


def _any(value: Any, path: str) -> Any:
    return value


def _free_dict(value: Any, path: str) -> Any:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise OptionsError(f"{path} must be an object, got {_describe(value)}", path)
    return dict(value)


def _seed(value: Any, path: str) -> Any:
    if value is None:
        return None
    if not _is_int(value) or not 0 <= int(value) < 2**63:
        raise OptionsError(
            f"{path} must be a non-negative integer below 2**63, got {_describe(value)}", path
        )
    return int(value)


def _noise_model(value: Any, path: str) -> Any:
    """Accept ``NoiseModel.to_dict()`` output, bare or in the RuntimeEncoder wrapper."""
    if value is None:
        return None
    if isinstance(value, Mapping) and value.get("__type__") == "NoiseModel":
        value = value.get("__value__")
    if not isinstance(value, Mapping) or not isinstance(value.get("errors", []), list):
        raise OptionsError(
            f"{path} must be a NoiseModel dict (NoiseModel.to_dict()), got {_describe(value)}",
            path,
        )
    try:
        noise_model_from_dict(value)
    except Exception as exc:  # Aer raises a variety of errors for malformed dicts
        raise OptionsError(f"{path} is not a valid noise model: {exc}", path) from None
    return dict(value)


def noise_model_from_dict(value: Mapping[str, Any]) -> Any:
    """Build an Aer ``NoiseModel`` from ``NoiseModel.to_dict()`` output.

    ``NoiseModel.from_dict`` is deprecated in Aer but remains the only reader of the format
    that qiskit-ibm-runtime sends, so its warning is silenced here.
    """
    from qiskit_aer.noise import NoiseModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return NoiseModel.from_dict(dict(value))


def _pair(value: Any, path: str) -> Any:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(_is_int(v) and int(v) >= 0 for v in value)
    ):
        raise OptionsError(f"{path} must be a pair of qubit indices, got {_describe(value)}", path)
    return [int(value[0]), int(value[1])]


# ----------------------------------------------------------------------------- the trees

_EXTRAPOLATORS = (
    "linear",
    "exponential",
    "double_exponential",
    "fallback",
    *(f"polynomial_degree_{d}" for d in range(1, 8)),
)

_DYNAMICAL_DECOUPLING = {
    "enable": Leaf(_bool(), False),
    "sequence_type": Leaf(_enum("XX", "XpXm", "XY4"), "XX"),
    "extra_slack_distribution": Leaf(_enum("middle", "edges"), "middle"),
    "scheduling_method": Leaf(_enum("alap", "asap"), "alap"),
    "skip_reset_qubits": Leaf(_bool(), False),
}

_TWIRLING_STRATEGIES = ("active", "active-accum", "active-circuit", "all")

_SIMULATOR = {
    "noise_model": Leaf(_noise_model, None),
    "seed_simulator": Leaf(_seed, None),
    "coupling_map": Leaf(_list_of(_pair, nullable=True), None),
    "basis_gates": Leaf(_list_of(_str, nullable=True), None),
}


SAMPLER_OPTIONS: dict[str, Any] = {
    "default_shots": Leaf(_int(1), DEFAULT_SHOTS),
    "dynamical_decoupling": _DYNAMICAL_DECOUPLING,
    "execution": {
        "init_qubits": Leaf(_bool(), True),
        "rep_delay": Leaf(_float(ge=0.0, nullable=True), None),
        "meas_type": Leaf(_enum("classified", "kerneled", "avg_kerneled"), "classified"),
    },
    "twirling": {
        "enable_gates": Leaf(_bool(), False),
        "enable_measure": Leaf(_bool(), False),
        "num_randomizations": Leaf(_int(1, auto=True), "auto"),
        "shots_per_randomization": Leaf(_int(1, auto=True), "auto"),
        "strategy": Leaf(_enum(*_TWIRLING_STRATEGIES), "active-accum"),
    },
    "simulator": _SIMULATOR,
    "experimental": Leaf(_free_dict, {}),
}

ESTIMATOR_OPTIONS: dict[str, Any] = {
    "default_precision": Leaf(_float(gt=0.0), DEFAULT_PRECISION),
    "default_shots": Leaf(_int(1, nullable=True), None),
    "seed_estimator": Leaf(_seed, None),
    "dynamical_decoupling": _DYNAMICAL_DECOUPLING,
    "execution": {
        "init_qubits": Leaf(_bool(), True),
        "rep_delay": Leaf(_float(ge=0.0, nullable=True), None),
    },
    "twirling": {
        "enable_gates": Leaf(_bool(nullable=True), None),
        "enable_measure": Leaf(_bool(nullable=True), None),
        "num_randomizations": Leaf(_int(1, auto=True), "auto"),
        "shots_per_randomization": Leaf(_int(1, auto=True), "auto"),
        "strategy": Leaf(_enum(*_TWIRLING_STRATEGIES), "active-accum"),
    },
    "resilience": {
        "measure_mitigation": Leaf(_bool(nullable=True), None),
        "measure_noise_learning": {
            "num_randomizations": Leaf(_int(1), 32),
            "shots_per_randomization": Leaf(_int(1, auto=True), "auto"),
        },
        "zne_mitigation": Leaf(_bool(nullable=True), None),
        "zne": {
            "amplifier": Leaf(
                _enum("gate_folding", "gate_folding_front", "gate_folding_back", "pea"),
                "gate_folding",
            ),
            "noise_factors": Leaf(_list_of(_float(ge=1.0)), [1.0, 3.0, 5.0]),
            "extrapolator": Leaf(_one_or_list(_enum(*_EXTRAPOLATORS)), ["exponential", "linear"]),
            "extrapolated_noise_factors": Leaf(_list_of(_float(ge=0.0), auto=True), "auto"),
        },
        "pec_mitigation": Leaf(_bool(), False),
        "pec": {
            "max_overhead": Leaf(_float(ge=1.0, nullable=True), 100.0),
            "noise_gain": Leaf(_float(ge=0.0, auto=True), "auto"),
        },
        "layer_noise_learning": {
            "max_layers_to_learn": Leaf(_int(0, nullable=True), 4),
            "shots_per_randomization": Leaf(_int(1), 128),
            "num_randomizations": Leaf(_int(1), 32),
            "layer_pair_depths": Leaf(_list_of(_int(0)), [0, 1, 2, 4, 16, 32]),
        },
        "layer_noise_model": Leaf(_any, None),
    },
    "simulator": _SIMULATOR,
    "experimental": Leaf(_free_dict, {}),
}

PROGRAM_OPTIONS = {"sampler": SAMPLER_OPTIONS, "estimator": ESTIMATOR_OPTIONS}


def _defaults(tree: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: copy.deepcopy(node.default) if isinstance(node, Leaf) else _defaults(node)
        for key, node in tree.items()
    }


def _validate(tree: Mapping[str, Any], given: Any, path: str) -> dict[str, Any]:
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise OptionsError(f"{path} must be an object, got {_describe(given)}", path)
    out = _defaults(tree)
    for key, value in given.items():
        sub = f"{path}.{key}"
        node = tree.get(key) if isinstance(key, str) else None
        if node is None:
            known = ", ".join(sorted(tree))
            raise OptionsError(f"unknown option {sub} (known keys here: {known})", sub)
        if isinstance(node, Leaf):
            out[key] = node.check(value, sub)
        else:
            out[key] = _validate(node, value, sub)
    return out


def validate_options(program_id: str, options: Any, *, path: str = "options") -> dict[str, Any]:
    """Validate a sampler/estimator ``options`` object and fill in the server's defaults.

    Args:
        program_id: ``"sampler"`` or ``"estimator"``.
        options: the raw ``params.options`` value (``None`` means "nothing set").
        path: prefix for error messages, e.g. ``"params.options"``.

    Returns:
        A new dict with every documented key present.

    Raises:
        OptionsError: naming the full key path of the first unknown or invalid key.

    Example:
        >>> validate_options("sampler", {"default_shots": 100})["twirling"]["strategy"]
        'active-accum'
    """
    tree = PROGRAM_OPTIONS[program_id]
    result = _validate(tree, options, path)
    if program_id == "sampler" and result["execution"]["meas_type"] != "classified":
        key = f"{path}.execution.meas_type"
        raise OptionsError(
            f"{key}={result['execution']['meas_type']!r} is not supported by this simulator "
            "(no IQ data exists); use 'classified'",
            key,
        )
    if program_id == "estimator":
        resilience = result["resilience"]
        if resilience["pec_mitigation"] and resilience["zne_mitigation"]:
            key = f"{path}.resilience.pec_mitigation"
            raise OptionsError(f"{key} cannot be combined with zne_mitigation", key)
    return result
