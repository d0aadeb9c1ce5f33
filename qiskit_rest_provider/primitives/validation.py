"""Local checks of PUBs before anything is sent.

A PUB the service would reject costs a round trip and, worse, a job in the user's history; a
PUB that fails here costs nothing and the message names the PUB index and what is wrong.
Coercion uses Qiskit's own :meth:`SamplerPub.coerce` / :meth:`EstimatorPub.coerce`, so every
PUB-like form Qiskit accepts is accepted here.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Iterable
from numbers import Integral, Real
from typing import Any

import numpy as np
from qiskit.circuit import QuantumCircuit
from qiskit.primitives.containers import ObservablesArray
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub
from qiskit.quantum_info import SparseObservable
from qiskit.transpiler import Target

from ..exceptions import InvalidInputError
from ..wire.isa import unsupported_instructions

__all__ = [
    "check_isa",
    "coerce_estimator_pubs",
    "coerce_sampler_pubs",
]

# circuit -> {(id(target), number of instructions)}: an iterative loop re-submits the same
# circuit object many times; the ISA walk then runs once per (circuit, target).
_isa_ok: weakref.WeakKeyDictionary[QuantumCircuit, set[tuple[int, int]]] = (
    weakref.WeakKeyDictionary()
)


def _fail(index: int, message: str) -> InvalidInputError:
    return InvalidInputError(f"pubs[{index}]: {message}")


def check_isa(circuit: QuantumCircuit, target: Target, *, index: int = 0) -> None:
    """Raise unless every instruction of ``circuit`` is supported by ``target`` on its qubits.

    The rule is the contract's one ISA rule,
    :func:`~qiskit_rest_provider.wire.isa.unsupported_instructions`, which the server applies
    when it admits the job: instruction names and qubits, angle bounds, control-flow bodies (with
    their qubits mapped to the outer circuit's) and real-time classical variables.

    Raises:
        InvalidInputError: naming the PUB index, the instruction and the physical qubits.
    """
    key = (id(target), len(circuit.data))
    try:
        seen = _isa_ok.get(circuit)
    except TypeError:  # not weak-referenceable
        seen = None
    if seen is not None and key in seen:
        return
    width = target.num_qubits
    if width is not None and circuit.num_qubits > width:
        raise _fail(
            index,
            f"the circuit has {circuit.num_qubits} qubits but the backend has only {width}",
        )
    rejected = unsupported_instructions(circuit, target, first_only=True)
    if rejected:
        issue = rejected[0]
        raise _fail(
            index,
            f"the circuit is not ISA for this backend: instruction {issue.name!r} on "
            f"qubits {list(issue.qargs)} {issue.detail} "
            "(transpile it first, e.g. with generate_preset_pass_manager(backend=...))",
        )
    try:
        _isa_ok.setdefault(circuit, set()).add(key)
    except TypeError:
        pass


#: Appended to a wrong-width observable error: the usual cause is an observable written for the
#: virtual circuit, before transpilation widened it to the backend's qubits.
LAYOUT_HINT = (
    "; if the circuit was transpiled for the backend, map the observable onto its layout with "
    "`observable.apply_layout(isa_circuit.layout)`"
)


def _coerce(kind: str, pubs: Any, coerce: Any, default: Any) -> list:
    if isinstance(pubs, QuantumCircuit):
        raise InvalidInputError(
            f"An invalid {kind.capitalize()} pub-like was given (QuantumCircuit): run() takes a "
            f"list of PUBs; wrap a single one with [] like `{kind}.run([(circuit, ...)])`"
        )
    if not isinstance(pubs, Iterable):
        raise InvalidInputError(
            f"pubs must be a list of {kind} PUBs (e.g. [(circuit, ...)]), got {type(pubs).__name__}"
        )
    out = []
    for index, pub in enumerate(pubs):
        try:
            out.append(coerce(pub, default))
        except TypeError as exc:
            raise TypeError(f"pubs[{index}]: {exc}") from exc
        except ValueError as exc:
            message = str(exc)
            if kind == "estimator" and "number of qubits" in message:
                message += LAYOUT_HINT  # Qiskit's coerce found an observable of the wrong width
            raise _fail(index, message) from exc
    return out


def coerce_sampler_pubs(
    pubs: Any, *, shots: int | None, target: Target | None, max_shots: int | None = None
) -> list[SamplerPub]:
    """Coerce and validate sampler PUBs (shots, measurements, ISA, width).

    Args:
        pubs: anything :meth:`SamplerPub.coerce` accepts, as an iterable.
        shots: the ``run(shots=...)`` default, or ``None``.
        target: the backend's Target, or ``None`` to skip the ISA check.
        max_shots: the backend's shot limit per PUB, if it has one.

    Raises:
        InvalidInputError: a ``ValueError`` naming the PUB index and the problem.
    """
    if shots is not None and (
        isinstance(shots, bool) or not isinstance(shots, Integral) or shots <= 0
    ):
        raise InvalidInputError(f"shots must be a positive integer, got {shots!r}")
    coerced = _coerce("sampler", pubs, SamplerPub.coerce, None if shots is None else int(shots))
    for index, pub in enumerate(coerced):
        if pub.shots is not None and pub.shots <= 0:
            raise _fail(index, f"shots must be a positive integer, got {pub.shots}")
        if pub.shots is not None and max_shots and pub.shots > max_shots:
            raise _fail(index, f"shots={pub.shots} exceeds the backend's max_shots={max_shots}")
        circuit = pub.circuit
        if not circuit.cregs:
            # Qiskit's reference samplers warn and return an empty DataBin; so do we. A register
            # that is never measured is not an error either: it reads all zeros.
            warnings.warn(
                f"pubs[{index}]: the circuit has no output classical registers and so the "
                "result will be empty. Did you mean to add measurement instructions?",
                UserWarning,
                stacklevel=3,
            )
        if target is not None:
            check_isa(circuit, target, index=index)
    return coerced


_PAULI_TERMS = frozenset(
    {SparseObservable.BitTerm.X, SparseObservable.BitTerm.Y, SparseObservable.BitTerm.Z}
)


def _paulis_only(pub: EstimatorPub) -> EstimatorPub:
    """The PUB with projector terms (``0 1 + - r l``) rewritten as sums of Paulis.

    Qiskit's ``ObservablesArray`` holds :class:`SparseObservable` s, which may contain
    projectors; the wire (``ibm-quantum-schemas``' ``PauliString``) carries only ``I X Y Z``.
    ``|0><0| = (I + Z)/2`` and its kin give the same expectation values, so the PUB is sent in
    that form. PUBs with Pauli terms only are returned unchanged (no copy).
    """
    array = pub.observables.sparse_observables_array()
    if all(_PAULI_TERMS.issuperset(obs.bit_terms) for obs in array.flat):
        return pub
    rewritten = np.empty(array.shape, dtype=object)
    for index, obs in np.ndenumerate(array):
        rewritten[index] = obs.as_paulis().simplify()
    return EstimatorPub(
        pub.circuit,
        ObservablesArray(rewritten, validate=False),
        pub.parameter_values,
        pub.precision,
        validate=False,
    )


def coerce_estimator_pubs(
    pubs: Any, *, precision: float | None, target: Target | None
) -> list[EstimatorPub]:
    """Coerce and validate estimator PUBs (precision, observable width, ISA, width).

    Raises:
        InvalidInputError: a ``ValueError`` naming the PUB index and the problem.
    """
    if precision is not None and (
        isinstance(precision, bool) or not isinstance(precision, Real) or not precision > 0
    ):
        raise InvalidInputError(f"precision must be a positive number, got {precision!r}")
    coerced = [
        _paulis_only(pub) for pub in _coerce("estimator", pubs, EstimatorPub.coerce, precision)
    ]
    for index, pub in enumerate(coerced):
        if pub.precision is not None and not pub.precision > 0:
            raise _fail(index, f"precision must be a positive number, got {pub.precision}")
        width = pub.circuit.num_qubits
        if pub.observables.size and pub.observables.num_qubits != width:  # type: ignore[attr-defined]
            raise _fail(
                index,
                f"the observables act on {pub.observables.num_qubits} qubits but the circuit "  # type: ignore[attr-defined]
                f"has {width}{LAYOUT_HINT}",
            )
        if target is not None:
            check_isa(pub.circuit, target, index=index)
    return coerced
