r"""Rewrite rotation gates whose angle lies outside a Target's ``angle_bounds``.

Qiskit's :class:`~qiskit.transpiler.passes.WrapAngles` enforces ``angle_bounds`` only for gate
names that have a callback in a :class:`~qiskit.transpiler.WrapAngleRegistry`; for any other
bounded name it raises ``KeyError`` (in Qiskit 2.6 only ``rzz`` has a built-in callback, and it
assumes IBM's [0, pi/2] bounds). This module builds a registry for one Target that covers every
Pauli-rotation gate (``rx``, ``ry``, ``rz``, ``p``, ``u1``, ``rxx``, ``ryy``, ``rzz``, ``rzx``), for
any bounds, using four exact identities of :math:`G(\theta) = e^{-i\theta P/2}`:

* periodicity: :math:`G(\theta + 2\pi k) = (-1)^k G(\theta)`;
* reflection: :math:`G(-\theta) = Q\,G(\theta)\,Q` for a Pauli :math:`Q` anticommuting with
  :math:`P`;
* complement: :math:`G(\theta) = -i P\,G(\theta - \pi)`;
* splitting: :math:`G(\theta) = G(\theta/k)^k` when the bound interval is narrower than the angle.

The chosen form is the one with the fewest gates whose angle the Target accepts (checked with
:meth:`~qiskit.transpiler.Target.supported_angle_bound`); the global phase of the replacement is
set so that the result is exactly equal, not just equal up to phase. The extra Paulis are written
with gates the Target accepts on those qubits as they are (``x``, else ``sx sx``, else ``rx(pi)``
or two ``rx(pi/2)``; ``z``, else ``rz(pi)`` or two ``rz(pi/2)``, ...), so that a Pauli never needs
the very rotation whose bounds are being enforced (``z`` is ``rz(pi)``, outside ``[-pi/2, pi/2]``).
"""

from __future__ import annotations

import cmath
import logging
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
from qiskit.circuit import Gate, Qubit
from qiskit.circuit.library import (
    PhaseGate,
    RXGate,
    RXXGate,
    RYGate,
    RYYGate,
    RZGate,
    RZXGate,
    RZZGate,
    U1Gate,
    XGate,
    YGate,
    ZGate,
)
from qiskit.dagcircuit import DAGCircuit
from qiskit.transpiler import TranspilerError, WrapAngleRegistry

if TYPE_CHECKING:
    from qiskit.transpiler import Target

logger = logging.getLogger(__name__)

_PAULI = {"x": XGate, "y": YGate, "z": ZGate}

# name -> (gate class, generator P as (pauli, qubit) pairs, reflector Q as (pauli, qubit) pairs,
#          period of the angle in radians up to global phase)
_ROTATIONS: dict[str, tuple[Callable[[float], Gate], tuple, tuple, float]] = {
    "rx": (RXGate, (("x", 0),), (("z", 0),), 2 * math.pi),
    "ry": (RYGate, (("y", 0),), (("z", 0),), 2 * math.pi),
    "rz": (RZGate, (("z", 0),), (("x", 0),), 2 * math.pi),
    "p": (PhaseGate, (("z", 0),), (("x", 0),), 2 * math.pi),
    "u1": (U1Gate, (("z", 0),), (("x", 0),), 2 * math.pi),
    "rxx": (RXXGate, (("x", 0), ("x", 1)), (("z", 0),), 2 * math.pi),
    "ryy": (RYYGate, (("y", 0), ("y", 1)), (("z", 0),), 2 * math.pi),
    "rzz": (RZZGate, (("z", 0), ("z", 1)), (("x", 0),), 2 * math.pi),
    # RZXGate(theta) on (q0, q1) is exp(-i theta/2 Z_q0 X_q1).
    "rzx": (RZXGate, (("z", 0), ("x", 1)), (("x", 0),), 2 * math.pi),
}

SUPPORTED_NAMES = frozenset(_ROTATIONS)
"""Gate names whose angle bounds this module can enforce."""

_MAX_SPLIT = 64

PauliGates = Callable[[str, int], list[Gate]]
"""``(pauli, local qubit index) -> gates`` implementing that Pauli (up to phase) on that qubit."""


def _standard_paulis(pauli: str, _index: int) -> list[Gate]:
    return [_PAULI[pauli]()]


def _forms(theta: float, period: float) -> list[tuple[float, bool, bool]]:
    """Return ``(angle, use_generator, use_reflector)`` forms equal to ``G(theta)`` up to phase."""
    base = math.remainder(theta, period)  # in [-period/2, period/2]
    seen = set()
    forms = []
    for angle, gen, refl in (
        (theta, False, False),
        (base, False, False),
        (-base, False, True),
        (base - math.pi, True, False),
        (base + math.pi, True, False),
        (math.pi - base, True, True),
        (-math.pi - base, True, True),
    ):
        for shift in (0.0, period, -period):
            key = (round(angle + shift, 12), gen, refl)
            if key not in seen:
                seen.add(key)
                forms.append((angle + shift, gen, refl))
    return forms


def _phase_to_match(
    ops: Sequence[tuple[Gate, tuple[int, ...]]], num_qubits: int, original
) -> float:
    """Return the global phase that makes ``ops`` (applied in order) equal ``original``.

    Small dense products (at most 4x4), much cheaper than building an ``Operator``.
    """
    identity = np.eye(2)
    product = np.eye(2**num_qubits, dtype=complex)
    for gate, indices in ops:
        matrix = gate.to_matrix()
        if len(indices) < num_qubits:  # a 1q gate inside a 2q gate: little-endian kron
            matrix = np.kron(identity, matrix) if indices[0] == 0 else np.kron(matrix, identity)
        product = matrix @ product
    overlap = np.vdot(product, original)  # = e^{i phi} * dim when original = e^{i phi} product
    return cmath.phase(overlap) if abs(overlap) > 1e-9 else 0.0


def _choose(
    name: str, theta: float, accepts: Callable[[float], bool], gen_cost: int, refl_cost: int
) -> tuple[float, bool, bool, int] | None:
    """Pick the cheapest ``(angle, use_generator, use_reflector, repeat)`` the bounds accept."""
    period = _ROTATIONS[name][3]
    if abs(math.remainder(theta, period)) < 1e-12:
        return (0.0, False, False, 0)  # identity up to phase: drop the gate
    best: tuple[float, bool, bool, int] | None = None
    best_cost = math.inf
    forms = _forms(theta, period)
    for angle, gen, refl in forms:
        cost = 1 + gen * gen_cost + 2 * refl * refl_cost
        if cost < best_cost and accepts(angle):
            best, best_cost = (angle, gen, refl, 1), cost
    # Splitting G(a) = G(a/k)^k, for bounds narrower than any single form.
    for angle, gen, refl in forms:
        if abs(angle) > math.pi + 1e-9:
            continue
        extra = gen * gen_cost + 2 * refl * refl_cost
        for repeat in range(2, _MAX_SPLIT + 1):
            if extra + repeat >= best_cost:
                break
            if accepts(angle / repeat):
                best, best_cost = (angle / repeat, gen, refl, repeat), extra + repeat
                break
    return best


def wrap_rotation(
    name: str,
    theta: float,
    accepts: Callable[[float], bool],
    paulis: PauliGates | None = None,
) -> DAGCircuit:
    """Return a DAG equal to gate ``name`` at angle ``theta`` whose rotations ``accepts`` allows.

    Args:
        name: one of :data:`SUPPORTED_NAMES`.
        theta: the gate's angle in radians.
        accepts: predicate telling whether the Target accepts an angle for this gate.
        paulis: how to write a Pauli on a qubit of the gate with gates the Target accepts
            (default: the standard ``x``/``y``/``z`` gates, left to basis translation).

    Raises:
        TranspilerError: if no equivalent form fits the bounds (for example an empty interval).
    """
    paulis = paulis or _standard_paulis
    gate_cls, generator, reflector, _period = _ROTATIONS[name]
    gen_gates = [(gate, index) for pauli, index in generator for gate in paulis(pauli, index)]
    refl_gates = [(gate, index) for pauli, index in reflector for gate in paulis(pauli, index)]
    choice = _choose(name, theta, accepts, len(gen_gates), len(refl_gates))
    if choice is None:
        raise TranspilerError(
            f"no equivalent of {name}({theta}) fits the Target's angle bounds for '{name}'"
        )
    angle, gen, refl, repeat = choice
    num_qubits = gate_cls(0.0).num_qubits
    everything = tuple(range(num_qubits))
    ops: list[tuple[Gate, tuple[int, ...]]] = []
    if refl:
        ops += [(gate, (index,)) for gate, index in refl_gates]
    ops += [(gate_cls(angle), everything)] * repeat
    if gen:
        ops += [(gate, (index,)) for gate, index in gen_gates]
    if refl:
        ops += [(gate, (index,)) for gate, index in refl_gates]
    dag = DAGCircuit()
    dag.add_qubits([Qubit() for _ in range(num_qubits)])
    for gate, indices in ops:
        dag.apply_operation_back(gate, tuple(dag.qubits[i] for i in indices), (), check=False)
    dag.global_phase = _phase_to_match(ops, num_qubits, gate_cls(theta).to_matrix())
    return dag


def _target_paulis(target: Target) -> Callable[[Sequence[int]], PauliGates]:
    """Return a factory of :data:`PauliGates` that prefer gates ``target`` accepts as they are."""
    from qiskit.circuit.library import SXGate

    def allowed(name: str, qubit: int, angle: float | None = None) -> bool:
        if name not in target.operation_names or not target.instruction_supported(name, (qubit,)):
            return False
        if angle is None or not target.gate_has_angle_bounds(name):
            return True
        return bool(target.supported_angle_bound(name, [angle]))

    def for_qubits(physical: Sequence[int]) -> PauliGates:
        def gates(pauli: str, index: int) -> list[Gate]:
            qubit = physical[index] if index < len(physical) else index
            if pauli == "y":
                if allowed("y", qubit):
                    return [YGate()]
                return gates("z", index) + gates("x", index)  # Y = iXZ
            if pauli == "x":
                if allowed("x", qubit):
                    return [XGate()]
                if allowed("sx", qubit):
                    return [SXGate(), SXGate()]
                for angle, count in ((math.pi, 1), (math.pi / 2, 2), (-math.pi / 2, 2)):
                    if allowed("rx", qubit, angle):
                        return [RXGate(angle) for _ in range(count)]
                return [XGate()]
            if allowed("z", qubit):
                return [ZGate()]
            for name, cls in (("rz", RZGate), ("p", PhaseGate)):
                for angle, count in ((math.pi, 1), (math.pi / 2, 2), (-math.pi / 2, 2)):
                    if allowed(name, qubit, angle):
                        return [cls(angle) for _ in range(count)]
            return [ZGate()]

        return gates

    return for_qubits


def _unitary_fallback(operation) -> Callable:
    """Return a callback replacing an out-of-bounds gate by its unitary, for re-synthesis.

    Used for bounded gates with no known identities: the unitary is re-synthesized against the
    Target by the repair passes that follow :class:`~qiskit.transpiler.passes.WrapAngles`.
    """
    from qiskit.circuit.library import UnitaryGate

    def callback(angles, _qubits) -> DAGCircuit:
        gate = operation.to_mutable()
        gate.params = [float(angle) for angle in angles]
        dag = DAGCircuit()
        dag.add_qubits([Qubit() for _ in range(gate.num_qubits)])
        dag.apply_operation_back(UnitaryGate(gate.to_matrix()), tuple(dag.qubits), (), check=False)
        return dag

    return callback


def build_registry(target: Target) -> tuple[WrapAngleRegistry, list[str]]:
    """Build a :class:`~qiskit.transpiler.WrapAngleRegistry` for ``target``'s bounded gates.

    Returns:
        The registry, and the bounded gate names with no known identities: these are replaced
        by their unitary when out of bounds, for the repair passes to re-synthesize.
    """
    registry = WrapAngleRegistry()
    unhandled: list[str] = []
    if not target.has_angle_bounds():
        return registry, unhandled
    paulis = _target_paulis(target)
    for name in target.operation_names:
        if not target.gate_has_angle_bounds(name):
            continue
        entry = _ROTATIONS.get(name)
        operation = target.operation_from_name(name)
        if entry is None or getattr(operation, "base_class", None) is not entry[0]:
            unhandled.append(name)
            registry.add_wrapper(name, _unitary_fallback(operation))
            continue

        def accepts(angle: float, _name: str = name) -> bool:
            return bool(target.supported_angle_bound(_name, [angle]))

        def callback(angles, qubits, _name: str = name, _accepts=accepts) -> DAGCircuit:
            return wrap_rotation(_name, float(angles[0]), _accepts, paulis(list(qubits)))

        registry.add_wrapper(name, callback)
    return registry, unhandled
