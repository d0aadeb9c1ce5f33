"""The simulation method of a job, chosen from the cost model instead of Aer's automatic choice.

Why: Aer's ``automatic`` method picks the density matrix or the statevector for every noisy
circuit, so a noisy 127-qubit GHZ asks for 2**127 amplitudes and a noisy 27-qubit
``efficient_su2`` runs 2,000 statevector trajectories of 2 GiB each (hours). Both have cheap
methods: the GHZ is a Clifford circuit (the stabilizer method, once the device noise is replaced
by its Pauli approximation), and the ansatz has little entanglement (a matrix product state).

The rules, per job (one simulator runs all its PUBs):

1. ``options.simulator.method`` other than ``automatic`` is honoured as it is (a forced
   ``stabilizer`` on a non-Clifford PUB is refused, naming the field and the PUB).
2. The **exact** method comes first: the one Aer's automatic rules (and the estimator's own)
   give — stabilizer for ideal Clifford circuits, density matrix for small noisy ones,
   statevector (trajectories, with noise) otherwise. It is kept when it fits the per-job memory
   limit and its estimated time is at most :data:`EXACT_SECONDS`.
3. Otherwise the cheapest of the alternatives that fit, by estimated time:
   ``stabilizer`` when every PUB is Clifford (with noise: each error channel Pauli-twirled,
   readout errors kept; :func:`..simulators.pauli_noise_model`), and ``matrix_product_state``
   (exact; its memory follows the entanglement across each cut of the qubit line), and the
   exact method if it fits. If nothing fits, the exact method stands and admission refuses
   the job with its memory estimate.

Admission (:mod:`..jobs.admission`) makes the choice and sizes the job with it, and writes it
into the prepared options under :data:`PLAN_KEY`, so the worker runs exactly the method that
was sized (:func:`..simulators.simulator_for`) and the result metadata says which it was
(``metadata["simulator"]``).

Example:
    >>> from qiskit import QuantumCircuit
    >>> from qiskit.primitives.containers.sampler_pub import SamplerPub
    >>> ghz = QuantumCircuit(40)
    >>> _ = ghz.h(0), [ghz.cx(i, i + 1) for i in range(39)], ghz.measure_all()
    >>> choice, _ = choose_job_method("sampler", [SamplerPub.coerce(ghz, shots=4096)], noisy=True)
    >>> choice.method, choice.noise_approximation
    ('stabilizer', 'pauli_twirled')
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .cost import JobEstimate, PubShape, estimate_shapes, max_job_memory, pub_shapes
from .cost import _auto_method as _exact_method

__all__ = [
    "AUTOMATIC",
    "EXACT_SECONDS",
    "METHODS",
    "METHOD_FIELD",
    "PAULI_TWIRLED",
    "PLAN_KEY",
    "MethodChoice",
    "MethodError",
    "choose_job_method",
    "plan_of",
]

AUTOMATIC = "automatic"
METHODS = (AUTOMATIC, "statevector", "density_matrix", "stabilizer", "matrix_product_state")
"""The values ``options.simulator.method`` accepts (``automatic``: this module chooses)."""
METHOD_FIELD = "params.options.simulator.method"
PLAN_KEY = "_simulation_plan"
"""Key of the prepared (server-side, never sent) options tree holding the chosen plan."""
PAULI_TWIRLED = "pauli_twirled"
EXACT_SECONDS = 10.0
"""Longest estimated single-core time (s) for which the exact method is kept as it is."""
_ALTERNATIVE_MARGIN = 4.0  # an alternative must be this much faster: the time model is rough


class MethodError(ValueError):
    """A forced method cannot run the job (a 400 naming :attr:`field`)."""

    def __init__(self, message: str, field: str = METHOD_FIELD) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class MethodChoice:
    """The method a job runs with.

    Attributes:
        method: an Aer method (``statevector``, ``density_matrix``, ``stabilizer``,
            ``matrix_product_state``).
        noise_approximation: ``"pauli_twirled"`` when the noise model is replaced by its Pauli
            approximation (stabilizer with noise), else ``None`` (the noise model as it is).
        forced: whether ``options.simulator.method`` asked for it.
        reason: one line on why, for the metadata and the logs.
    """

    method: str
    noise_approximation: str | None
    forced: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The plain form (prepared options, result metadata)."""
        return {
            "method": self.method,
            "noise_approximation": self.noise_approximation,
            "forced": self.forced,
            "reason": self.reason,
        }


def plan_of(options: dict) -> dict[str, Any] | None:
    """The plan admission wrote into prepared options, or ``None`` (then Aer's automatic)."""
    plan = options.get(PLAN_KEY)
    return plan if isinstance(plan, dict) and plan.get("method") in METHODS[1:] else None


def _fits(estimate: JobEstimate, limit: int) -> bool:
    return estimate.memory_bytes <= limit


def _exact_job_method(program_id: str, shapes: Sequence[PubShape], noisy: bool) -> str:
    """One exact method for all PUBs: what Aer's rules give each, reconciled."""
    methods = {
        _exact_method(s.shape, noisy=noisy, shots=s.shots, estimator=program_id == "estimator")
        for s in shapes
    }
    if len(methods) == 1:
        return methods.pop()
    methods.discard("stabilizer")  # a non-Clifford PUB is in the job
    if methods == {"density_matrix"}:
        return "density_matrix"
    return "statevector"  # runs every PUB; the density matrix only where all are small


def choose_job_method(
    program_id: str,
    pubs: Iterable[Any] | Sequence[PubShape],
    *,
    noisy: bool,
    forced: str | None = None,
    max_memory: int | None = None,
    pauli_approximation: bool = True,
) -> tuple[MethodChoice, JobEstimate]:
    """Choose the job's method and estimate the job with it.

    Args:
        program_id: ``"sampler"`` or ``"estimator"``.
        pubs: decoded PUBs (or their :func:`..cost.pub_shapes`).
        noisy: whether a noise model applies.
        forced: ``options.simulator.method`` (``None``/``"automatic"``: choose).
        max_memory: the per-job limit (bytes); default :func:`..cost.max_job_memory`.
        pauli_approximation: whether the stabilizer alternative may replace the noise by its
            Pauli approximation (``False`` for decoupled jobs: the approximation drops the
            relaxation of idle ``delay``s, the noise decoupling acts on).

    Returns:
        ``(choice, estimate)``; the estimate assumes the chosen method.

    Raises:
        MethodError: a forced ``stabilizer`` on a non-Clifford PUB; an unknown method.
    """
    items = list(pubs)
    shapes = items if all(isinstance(p, PubShape) for p in items) else pub_shapes(program_id, items)
    limit = max_job_memory() if max_memory is None else int(max_memory)
    clifford = all(s.clifford for s in shapes)
    if forced is not None and forced != AUTOMATIC:
        if forced not in METHODS:
            raise MethodError(
                f"{METHOD_FIELD}: expected one of {', '.join(METHODS)}, got {forced!r}"
            )
        if forced == "stabilizer":
            bad = next((i for i, s in enumerate(shapes) if not s.clifford), None)
            if bad is not None:
                raise MethodError(
                    f"{METHOD_FIELD}: 'stabilizer' simulates Clifford circuits only; "
                    f"params.pubs[{bad}] has a non-Clifford (or parameterized) operation. Use "
                    "'automatic' or another method."
                )
        approx = PAULI_TWIRLED if forced == "stabilizer" and noisy else None
        choice = MethodChoice(forced, approx, True, "forced by options.simulator.method")
        return choice, estimate_shapes(program_id, shapes, noisy=noisy, method=forced)

    exact = _exact_job_method(program_id, shapes, noisy)
    exact_estimate = estimate_shapes(program_id, shapes, noisy=noisy, method=exact)
    exact_fits = _fits(exact_estimate, limit)
    if exact_fits and (exact_estimate.seconds <= EXACT_SECONDS or (exact == "stabilizer")):
        return MethodChoice(exact, None, False, "exact method fits"), exact_estimate
    alternatives: list[tuple[str, JobEstimate]] = []
    if clifford and exact != "stabilizer" and (pauli_approximation or not noisy):
        alternatives.append(
            ("stabilizer", estimate_shapes(program_id, shapes, noisy=noisy, method="stabilizer"))
        )
    if exact != "matrix_product_state":
        mps = estimate_shapes(program_id, shapes, noisy=noisy, method="matrix_product_state")
        alternatives.append(("matrix_product_state", mps))
    fitting = [(m, e) for m, e in alternatives if _fits(e, limit)]
    if exact_fits:
        fitting = [
            (m, e) for m, e in fitting if e.seconds * _ALTERNATIVE_MARGIN < exact_estimate.seconds
        ]
    if not fitting:
        why = "exact method fits" if exact_fits else "nothing fits the memory limit"
        return MethodChoice(exact, None, False, why), exact_estimate
    method, estimate = min(fitting, key=lambda item: item[1].seconds)
    approx = PAULI_TWIRLED if method == "stabilizer" and noisy else None
    why = (
        f"{exact.replace('_', ' ')} would take ~{exact_estimate.seconds:.3g} s"
        if exact_fits
        else f"{exact.replace('_', ' ')} needs more memory than the limit"
    )
    return MethodChoice(method, approx, False, why), estimate
