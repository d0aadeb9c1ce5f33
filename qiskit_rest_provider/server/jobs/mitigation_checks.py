"""Admission's refusals of error suppression/mitigation options the server cannot perform.

An option accepted is an option performed: what :mod:`..execution.mitigation` and
:mod:`..execution.suppression` cannot do for a job's PUBs is refused here, before a job is stored,
with a 400 naming the option (options that are never performed, whatever the PUBs, are refused by
the shared options checker: :data:`qiskit_rest_provider.wire.options.NOT_PERFORMED`).
"""

from __future__ import annotations

import math

import numpy as np

from ...wire import protocol
from ...wire.options import resolved_mitigation
from .checks import JobInputError

__all__ = [
    "MAX_SAMPLED_SHOTS",
    "MAX_SAMPLED_TOTAL",
    "check_layer_noise_model",
    "check_sampled_precision",
    "check_suppression",
]

MAX_SAMPLED_SHOTS = 1_000_000
"""Most shots one PUB of a sampled (mitigated) estimator job may stand for: its precision must
be at least ``1/sqrt(MAX_SAMPLED_SHOTS)`` = 0.001 (ZNE multiplies the work by its noise factors)."""


MAX_SAMPLED_TOTAL = 10_000_000
"""Most samples one sampled (mitigated) estimator job may take: shots x parameter sets x ZNE
noise factors, summed over PUBs (the sampler's total-shots limit)."""


def check_sampled_precision(pubs: list, options: dict, level: int | None, noisy: bool) -> None:
    """A mitigated estimator PUB is sampled: refuse work that would need too many shots."""
    decided = resolved_mitigation(options, level if noisy else 0)
    if not any(decided.values()):
        return  # the exact path: any precision costs the same
    factors = len(options["resilience"]["zne"]["noise_factors"]) if decided["zne_mitigation"] else 1
    total = 0
    for i, pub in enumerate(pubs):
        field = f"params.pubs[{i}]"
        shots = math.ceil(1.0 / float(pub.precision) ** 2 - 1e-9)
        if shots > MAX_SAMPLED_SHOTS:
            raise JobInputError(
                f"{field}: precision {float(pub.precision):g} needs {shots} shots with error "
                f"mitigation or suppression on (they are sampled); at most {MAX_SAMPLED_SHOTS} "
                "(precision >= 0.001), or use resilience_level 0 for the exact path",
                field=field,
            )
        sets = int(np.prod(pub.parameter_values.shape, dtype=np.int64))
        total += shots * max(sets, 1) * factors
        if total > MAX_SAMPLED_TOTAL:
            raise JobInputError(
                f"{field}: with error mitigation or suppression on, the job samples {total} shots "
                "up to this PUB (shots x parameter sets x noise factors); at most "
                f"{MAX_SAMPLED_TOTAL} per job: raise the precision, use fewer parameter sets, or "
                "use resilience_level 0 for the exact path",
                field=field,
                code="job_too_large",
            )


def check_layer_noise_model(options: dict, pubs: list, level: int | None, noisy: bool) -> None:
    """A given ``resilience.layer_noise_model`` must be well formed, used, and fit the PUBs.

    Used means PEC or PEA runs (nothing else reads it); fit means each entry matches a layer of
    some PUB (:mod:`..execution.given_layer_noise`), so noise learned for other circuits (another
    layout, another twirling strategy) is a 400 rather than a silently unmitigated job.
    """
    value = options["resilience"].get("layer_noise_model")
    if value is None:
        return
    from ..execution.given_layer_noise import (
        FIELD,
        LayerNoiseModelError,
        decode_layer_noise_model,
        describe_key,
        finalized_options,
        needs_layer_noise,
        unmatched_entries,
    )

    width = max((pub.circuit.num_qubits for pub in pubs), default=0)
    try:
        given = decode_layer_noise_model(value, width)
    except LayerNoiseModelError as exc:
        raise JobInputError(str(exc), field=exc.path, code="invalid_option") from None
    level = protocol.DEFAULT_RESILIENCE_LEVEL if level is None else level
    final = finalized_options(options, level, noisy=noisy, shots=None)
    if not needs_layer_noise(final):
        raise JobInputError(
            f"{FIELD}: only PEC (resilience.pec_mitigation) and PEA (resilience.zne_mitigation "
            "with resilience.zne.amplifier='pea') use a layer noise model, and this job runs "
            "neither; turn one on or leave it unset",
            field=FIELD,
            code="invalid_option",
        )
    unmatched, keys = unmatched_entries(pubs, lambda _i: final, given)
    # Entries for layers this job lacks are fine (noise learned once for many circuits is
    # reused for a few of them), but a model none of whose entries matches would leave the
    # job unmitigated while saying otherwise: that is refused.
    if given and len(unmatched) == len(given):
        entry = unmatched[0]
        field = entry.path if len(given) == 1 else FIELD
        what = (
            f"its layer ({describe_key(entry.key)}) matches"
            if len(given) == 1
            else f"none of its {len(given)} layers (e.g. {describe_key(entry.key)}) matches"
        )
        shown = "; ".join(describe_key(key) for key in keys[:6]) or "none"
        more = f" and {len(keys) - 6} more" if len(keys) > 6 else ""
        raise JobInputError(
            f"{field}: {what} no layer of the job's circuits (their unique twirled layers: "
            f"{shown}{more}); pass the noise learned for these circuits as transpiled for this "
            "job",
            field=field,
            code="invalid_option",
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
) -> None:
    """Refuse suppression/mitigation options that cannot be performed for these PUBs.

    Args:
        program_id: ``"sampler"`` or ``"estimator"``.
        options: the validated options tree.
        pubs: the decoded PUBs.
        level: the estimator's resilience level.
        noisy: whether the job simulates noise.

    Raises:
        JobInputError: ``invalid_option``, naming ``params.options.<option>``; or naming the PUB
            whose precision is out of the sampled path's reach.
    """
    if program_id == protocol.ESTIMATOR:
        check_sampled_precision(pubs, options, level, noisy)
        check_layer_noise_model(options, pubs, level, noisy)
    dd_on = bool(options["dynamical_decoupling"]["enable"])
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
