"""What the sampled (twirled, decoupled, mitigated) paths run, as the cost model sees it.

Why: the exact estimator path simulates one circuit per parameter set; the mitigated path
(:mod:`.mitigation`: TREX, ZNE, PEA, PEC, twirling, decoupling) and the suppressed sampler path
(:mod:`.suppression`) instead *sample* a program of many circuits — one per measurement basis x
randomization x noise factor x parameter set, with folded (longer) circuits for ZNE's gate
folding and up to ``pec.max_overhead`` times the randomizations for PEC. Sizing such a job as
the exact path would pick a method for the wrong work (a density matrix chosen for 1 exact run
that then runs thousands of times) and admit results that cannot fit. So admission
(:func:`..jobs.checks.check_job_size`) sizes these jobs from :func:`sampled_shapes`, as a
sampler job of the circuits that will actually run, and the worker runs them with the method
chosen for that work (:func:`.suppression.run_program`).

The shapes are an upper bound: every PUB's circuit stands for its program's items with

* ``shots`` = shots per randomization (Aer samples each bound circuit that many times),
* ``parameter_sets`` = parameter sets x randomizations x noise factors x measurement bases
  (+ the TREX calibration circuits, one per randomization),
* ``ops`` x the largest gate-folding noise factor (ZNE ``gate_folding``) x 2 when gates are
  twirled (the dressing single-qubit gates), and
* ``clbits`` = the qubits the PUB's observables or circuit touch (all are measured).

Example:
    >>> from qiskit import QuantumCircuit
    >>> from qiskit.primitives.containers.estimator_pub import EstimatorPub
    >>> from qiskit_rest_provider.wire.options import check_options
    >>> qc = QuantumCircuit(2)
    >>> _ = qc.h(0), qc.cx(0, 1)
    >>> pub = EstimatorPub.coerce((qc, ["ZZ", "XX"]), precision=1 / 32)
    >>> options = check_options("estimator", {}, "options")
    >>> [shape] = sampled_shapes("estimator", [pub], options, level=1, shots=[1024])
    >>> shape.shots, shape.parameter_sets  # 16 randomizations of 64 shots x 2 bases, + TREX
    (64, 48)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

from ...wire.options import resolved_mitigation, resolved_twirling
from .cost import PubShape, _shape
from .suppression import sampler_suppression_applies, twirling_shots

__all__ = ["MAX_GROUPED_TERMS", "PEC_DEFAULT_OVERHEAD", "sampled_path", "sampled_shapes"]

MAX_GROUPED_TERMS = 2_000
"""Unique Pauli terms up to which the measurement bases are counted by qubit-wise grouping (as
qiskit-mitigation groups them); beyond, every term counts as a basis (an upper bound)."""

PEC_DEFAULT_OVERHEAD = 100.0
"""qiskit-mitigation's cap on PEC's randomization multiplier when ``pec.max_overhead`` is unset."""


def sampled_path(program_id: str, options: dict, level: int | None, noisy: bool) -> bool:
    """Whether the job runs as a sampled program, by the runners' own tests.

    :func:`.mitigation.estimator_mitigation_applies` is this one call of
    ``resolved_mitigation``; the sampler's is :func:`.suppression.sampler_suppression_applies`.
    """
    if "simulator" not in options:  # not a primitive's options tree (executor proxies)
        return False
    if program_id == "estimator":
        return any(resolved_mitigation(options, level if noisy else 0).values())
    return sampler_suppression_applies(options)


def _twirling_split(shots: int, twirling: dict, pec: bool) -> tuple[int, int]:
    """``(randomizations, shots per randomization)`` by qiskit-ibm-runtime's shot rule.

    That is :func:`.suppression.twirling_shots`, except that PEC with both left ``auto``
    samples randomizations of 64 shots.
    """
    count, per = twirling.get("num_randomizations"), twirling.get("shots_per_randomization")
    count = "auto" if count is None else count
    per = "auto" if per is None else per
    if pec and count == "auto" and per == "auto":
        return math.ceil(shots / 64), 64
    return twirling_shots(shots, {"num_randomizations": count, "shots_per_randomization": per})


def _measurement_bases(observables: Any) -> tuple[int, int]:
    """``(bases, support)``: qubit-wise commuting groups of the PUB's terms, qubits they touch."""
    from qiskit.quantum_info import PauliList

    labels: set[str] = set()
    for k in range(observables.size):
        labels.update(label for label in observables.ravel()[k] if set(label) - {"I"})
        if len(labels) > MAX_GROUPED_TERMS:
            break
    if not labels:
        return 1, 0
    width = len(next(iter(labels)))
    support = {width - 1 - i for label in labels for i, ch in enumerate(label) if ch != "I"}
    if len(labels) > MAX_GROUPED_TERMS:
        return int(observables.size) * len(labels), len(support)
    groups = PauliList(sorted(labels)).group_commuting(qubit_wise=True)
    return len(groups), len(support)


def sampled_shapes(
    program_id: str,
    pubs: Sequence[Any],
    options: dict,
    *,
    level: int | None = None,
    shots: Sequence[int] | None = None,
) -> list[PubShape]:
    """The circuits a sampled job runs, as :class:`..cost.PubShape` of a *sampler* job.

    Args:
        program_id: ``"sampler"`` or ``"estimator"``.
        pubs: the decoded PUBs.
        options: the validated options tree.
        level: the estimator's resilience level (its defaults decide the techniques).
        shots: the estimator PUBs' shots (admission's rule); default ``ceil(1/precision**2)``.
    """
    estimator = program_id == "estimator"
    decided = (
        resolved_mitigation(options, level)
        if estimator
        else {"zne_mitigation": False, "pec_mitigation": False, "measure_mitigation": False}
    )
    twirling = resolved_twirling(options, level) if estimator else dict(options["twirling"])
    twirled = bool(twirling.get("enable_gates") or twirling.get("enable_measure"))
    pec = bool(decided["pec_mitigation"])
    zne = options.get("resilience", {}).get("zne", {}) if decided["zne_mitigation"] else {}
    factors = [float(f) for f in (zne.get("noise_factors") or [1.0])]
    folding = decided["zne_mitigation"] and zne.get("amplifier", "gate_folding") != "pea"
    ops_factor = (max(factors) if folding else 1.0) * (2.0 if twirling.get("enable_gates") else 1.0)
    pec_factor = 1.0
    if pec:
        overhead = (options.get("resilience", {}).get("pec") or {}).get("max_overhead")
        pec_factor = PEC_DEFAULT_OVERHEAD if overhead is None else max(1.0, float(overhead))
    out: list[PubShape] = []
    shapes: dict[int, Any] = {}
    for i, pub in enumerate(pubs):
        base = shapes.get(id(pub.circuit))
        if base is None:
            base = shapes[id(pub.circuit)] = _shape(pub.circuit)
        values = getattr(pub, "parameter_values", None)
        dims = getattr(values, "shape", ()) or ()
        sets = max(1, math.prod(int(d) for d in dims)) if dims else 1
        if estimator:
            pub_shots = (
                int(shots[i])
                if shots is not None and i < len(shots) and shots[i]
                else max(1, math.ceil(1.0 / float(pub.precision) ** 2 - 1e-9))
            )
            bases, support = _measurement_bases(pub.observables)
            clbits = max(base.qubits, support)
        else:
            pub_shots, bases, clbits = int(pub.shots), 1, base.clbits
        if twirled or pec:
            randomizations, per = _twirling_split(pub_shots, twirling, pec)
        else:
            randomizations, per = 1, pub_shots
        randomizations = math.ceil(randomizations * pec_factor)
        circuits = randomizations * len(factors) * bases
        if decided["measure_mitigation"]:
            circuits += randomizations  # TREX calibration: one per randomization
        shape = dataclasses.replace(base, ops=math.ceil(base.ops * ops_factor), clbits=clbits)
        out.append(PubShape(shape, per, sets * circuits, 0))
    return out
