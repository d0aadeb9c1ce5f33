"""Admission's refusals of error suppression/mitigation options the server cannot perform.

An option accepted is an option performed: what :mod:`..execution.mitigation` and
:mod:`..execution.suppression` cannot do is refused here, before a job is stored, with a 400
naming the option.
"""

from __future__ import annotations

import math

from ...wire import protocol
from ...wire.options import OptionsError, resolved_mitigation
from .checks import JobInputError

__all__ = [
    "MAX_SAMPLED_SHOTS",
    "check_estimator_options",
    "check_sampled_precision",
    "check_suppression",
]

_LAYER_LEARNING_DEFAULTS = {
    "max_layers_to_learn": 4,
    "shots_per_randomization": 128,
    "num_randomizations": 32,
    "layer_pair_depths": [0, 1, 2, 4, 16, 32],
}


def check_estimator_options(options: dict, path: str = "params.options") -> None:
    """Refuse the estimator options this server cannot perform (before a job is stored).

    Raises:
        OptionsError: naming the option (``params.options.resilience.pec_mitigation``, ...).
    """
    resilience = options["resilience"]
    base = f"{path}.resilience"
    if resilience.get("layer_noise_model") is not None:
        raise OptionsError(
            f"{base}.layer_noise_model is not used by this server: PEC and PEA use the layer "
            "noise computed from the device's own noise model; leave it unset",
            f"{base}.layer_noise_model",
        )
    learning = resilience.get("layer_noise_learning") or {}
    for key, default in _LAYER_LEARNING_DEFAULTS.items():
        if key in learning and learning[key] != default:
            raise OptionsError(
                f"{base}.layer_noise_learning.{key} is not used by this server (no learning "
                "experiment runs: the layer noise is computed from the device's noise model); "
                "leave it unset",
                f"{base}.layer_noise_learning.{key}",
            )
    spr = (resilience.get("measure_noise_learning") or {}).get("shots_per_randomization")
    if spr not in (None, "auto"):
        raise OptionsError(
            f"{base}.measure_noise_learning.shots_per_randomization={spr!r}: this server's TREX "
            "calibration uses the twirled circuits' shots per randomization; only 'auto'",
            f"{base}.measure_noise_learning.shots_per_randomization",
        )


MAX_SAMPLED_SHOTS = 1_000_000
"""Most shots one PUB of a sampled (mitigated) estimator job may stand for: its precision must
be at least ``1/sqrt(MAX_SAMPLED_SHOTS)`` = 0.001 (ZNE multiplies the work by its noise factors)."""


def check_sampled_precision(pubs: list, options: dict, level: int | None, noisy: bool) -> None:
    """A mitigated estimator PUB is sampled: refuse precisions that would need too many shots."""
    if not any(resolved_mitigation(options, level if noisy else 0).values()):
        return  # the exact path: any precision costs the same
    for i, pub in enumerate(pubs):
        shots = math.ceil(1.0 / float(pub.precision) ** 2 - 1e-9)
        if shots > MAX_SAMPLED_SHOTS:
            field = f"params.pubs[{i}]"
            raise JobInputError(
                f"{field}: precision {float(pub.precision):g} needs {shots} shots with error "
                f"mitigation or suppression on (they are sampled); at most {MAX_SAMPLED_SHOTS} "
                "(precision >= 0.001), or use resilience_level 0 for the exact path",
                field=field,
            )


def _gate_after_measurement(circuit) -> bool:
    """Whether an instruction touches a qubit after that qubit was measured (non-final)."""
    measured: set = set()
    for inst in circuit.data:
        name = inst.operation.name
        if name == "barrier":
            continue
        if measured.intersection(inst.qubits):
            return True
        if name == "measure":
            measured.update(inst.qubits)
    return False


def _has_durations(target, names: tuple[str, ...] = ("x", "rz")) -> bool:
    """Whether the Target gives a duration for every qargs of the DD pulse instructions."""
    for name in names:
        if name not in target.operation_names:
            return False
        for props in target[name].values():
            if props is None or props.duration is None:
                return False
    return target.dt is not None


def _refuse(name: str, message: str) -> JobInputError:
    field = f"params.options.{name}"
    return JobInputError(f"{field}: {message}", field=field, code="invalid_option")


def check_suppression(
    program_id: str,
    options: dict,
    pubs: list,
    *,
    level: int | None = None,
    noisy: bool = True,
    target=None,
) -> None:
    """Refuse suppression/mitigation options that cannot be performed for these PUBs.

    Args:
        program_id: ``"sampler"`` or ``"estimator"``.
        options: the validated options tree.
        pubs: the decoded PUBs.
        level: the estimator's resilience level.
        noisy: whether the job simulates noise.
        target: the backend's Target (dynamical decoupling needs its durations).

    Raises:
        JobInputError: ``invalid_option``, naming ``params.options.<option>``; or naming the PUB
            whose precision is out of the sampled path's reach.
    """
    try:
        if program_id == protocol.ESTIMATOR:
            check_estimator_options(options)
    except OptionsError as exc:
        raise JobInputError(str(exc), field=exc.path, code="invalid_option") from None
    if program_id == protocol.ESTIMATOR:
        check_sampled_precision(pubs, options, level, noisy)
    dd_on = bool(options["dynamical_decoupling"]["enable"])
    if dd_on and target is not None and not _has_durations(target):
        raise _refuse(
            "dynamical_decoupling.enable",
            "this backend has no gate durations to schedule decoupling pulses on (an ideal "
            "simulator); use a device backend or turn it off",
        )
    twirling = options["twirling"]
    for name, on in (
        ("dynamical_decoupling.enable", dd_on),
        ("twirling.enable_gates", twirling.get("enable_gates")),
        ("twirling.enable_measure", twirling.get("enable_measure")),
    ):
        if not on:
            continue
        for i, pub in enumerate(pubs):
            if pub.circuit.has_control_flow_op():
                raise _refuse(
                    name,
                    f"not performed on dynamic circuits (params.pubs[{i}] has control flow); "
                    "turn it off for this job",
                )
            if program_id == protocol.SAMPLER and name != "dynamical_decoupling.enable":
                if _gate_after_measurement(pub.circuit):
                    raise _refuse(
                        name,
                        f"not performed on circuits that act on a qubit after measuring it "
                        f"(params.pubs[{i}]); turn it off for this job",
                    )
