"""The one ISA rule: which instructions of a circuit a backend's Target does not accept.

Three places ask "is this circuit ISA for that backend?": the client before it submits a PUB
(:func:`qiskit_rest_provider.primitives.validation.check_isa`), the server when it admits a job
(:mod:`qiskit_rest_provider.server.jobs.admission`) and the transpiler plugin after it translated
a circuit (:mod:`qiskit_rest_provider.transpiler.passes`). They all call
:func:`unsupported_instructions` (or :func:`instruction_issue` for one instruction), so they give
the same verdict on the same circuit, and say why in the same words.

The rule, for every instruction, control-flow blocks included (block qubits mapped to the
physical qubits of the instruction that holds the block):

* ``barrier`` is always accepted (a directive, as in Qiskit's own ``GatesInBasis``).
* Control-flow operations (``if_else``, ``while_loop``, ``for_loop``, ``switch_case``, ``box``) are
  accepted when the Target lists their name; their blocks are checked like the circuit.
* ``store`` (a write to a real-time classical variable) is accepted only when the Target lists
  ``store``. Qiskit's translation stage lets ``store`` through any Target, but
  ``Target.instruction_supported("store")`` is false unless a backend adds it, and this server's
  simulator (Qiskit Aer 0.18) cannot execute real-time variables (it fails on ``Bool`` variables
  and aborts the process on ``Uint`` ones), so the built-in Targets do not list it. For the same
  reason a circuit with real-time input or captured variables is rejected when ``store`` is not
  listed.
* Everything else (gates, ``measure``, ``reset``, ``delay``) must satisfy
  ``Target.instruction_supported(name, qargs)`` on its physical qubits, and, when the Target bounds
  the gate's angles (``Target.gate_has_angle_bounds``) and the angles are numbers, lie within them
  (``Target.supported_angle_bound``). Unbound parameters are accepted, as Qiskit does.

Example:
    >>> import math
    >>> from qiskit import QuantumCircuit
    >>> from qiskit.circuit import Parameter
    >>> from qiskit.circuit.library import RZZGate
    >>> from qiskit.transpiler import Target
    >>> target = Target(num_qubits=2)
    >>> target.add_instruction(RZZGate(Parameter("t")), {(0, 1): None},
    ...                        angle_bounds=[(0, math.pi / 2)])
    >>> circuit = QuantumCircuit(2)
    >>> _ = circuit.rzz(2.0, 0, 1)
    >>> [(i.name, i.qargs, i.reason) for i in unsupported_instructions(circuit, target)]
    [('rzz', (0, 1), 'angle_out_of_bounds')]
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np
from qiskit.circuit import ControlFlowOp, ParameterExpression, QuantumCircuit
from qiskit.dagcircuit import DAGCircuit, DAGOpNode

__all__ = [
    "REASONS",
    "UnsupportedInstruction",
    "instruction_issue",
    "unsupported_instructions",
    "where_supported",
]

REASONS = {
    "unknown_instruction": "the Target has no instruction of that name",
    "unsupported_qubits": "the Target has the instruction, but not on those qubits",
    "angle_out_of_bounds": "the instruction's angles lie outside the Target's angle bounds",
    "classical_variables": "real-time classical variables (store), which the Target does not list",
}
"""The reason codes of :class:`UnsupportedInstruction` and what each means."""

_ALWAYS_ACCEPTED = frozenset({"barrier"})
_STORE = "store"


class UnsupportedInstruction(NamedTuple):
    """One instruction a Target does not accept.

    Attributes:
        name: the instruction's name (``"var"`` for real-time variables a circuit declares).
        qargs: its physical qubits.
        params: its numeric parameters (empty when it has none or some are unbound).
        reason: a code of :data:`REASONS`.
        detail: why, in the words every caller uses (starts with a verb: "is not supported ...").
    """

    name: str
    qargs: tuple[int, ...]
    params: tuple[float, ...]
    reason: str
    detail: str

    @property
    def where(self) -> str:
        """``"qubit 3"`` or ``"qubits [0, 2]"``, for messages."""
        if len(self.qargs) == 1:
            return f"qubit {self.qargs[0]}"
        return f"qubits {list(self.qargs)}"


def where_supported(target: Any, name: str) -> str:
    """Say where ``name`` is available on ``target``, for error messages (a few entries at most)."""
    if name not in target.operation_names:
        return "the backend's instructions are " + ", ".join(sorted(target.operation_names))
    qargs = target.qargs_for_operation_name(name)
    if qargs is None:
        return f"'{name}' is available on all qubits"
    listed = sorted(qargs)
    shown = ", ".join(str(list(q)) for q in listed[:8])
    more = f" and {len(listed) - 8} more" if len(listed) > 8 else ""
    return f"'{name}' is available on {shown}{more}"


def _numeric_params(operation: Any) -> list[float] | None:
    """The operation's parameters as floats, or ``None`` when one is unbound or not a number."""
    values = []
    for param in getattr(operation, "params", None) or ():
        if isinstance(param, ParameterExpression):
            if param.parameters:
                return None
            param = complex(param)
        if not isinstance(param, (int, float, complex, np.number)):
            return None
        values.append(float(np.real(param)))
    return values


def _store_detail(target: Any) -> str:
    return (
        "is not supported: real-time classical variables (store) need 'store' in the backend's "
        "Target, which lists only " + ", ".join(sorted(target.operation_names))
    )


def instruction_issue(
    target: Any, operation: Any, qargs: tuple[int, ...]
) -> UnsupportedInstruction | None:
    """Check one instruction on its physical qubits; ``None`` when ``target`` accepts it.

    Control-flow blocks are not looked into here (:func:`unsupported_instructions` does that).
    """
    name = operation.name
    if name in _ALWAYS_ACCEPTED:
        return None
    if name == _STORE:
        if target.instruction_supported(operation_name=_STORE):
            return None
        return UnsupportedInstruction(name, qargs, (), "classical_variables", _store_detail(target))
    if isinstance(operation, ControlFlowOp):
        if target.instruction_supported(operation_name=name):
            return None
        return UnsupportedInstruction(
            name,
            qargs,
            (),
            "unknown_instruction",
            f"is not supported ({where_supported(target, name)})",
        )
    if not target.instruction_supported(name, qargs):
        reason = "unknown_instruction" if name not in target else "unsupported_qubits"
        return UnsupportedInstruction(
            name,
            qargs,
            tuple(_numeric_params(operation) or ()),
            reason,
            f"is not supported ({where_supported(target, name)})",
        )
    if target.gate_has_angle_bounds(name):
        angles = _numeric_params(operation)
        if angles and not target.supported_angle_bound(name, angles):
            return UnsupportedInstruction(
                name,
                qargs,
                tuple(angles),
                "angle_out_of_bounds",
                f"has angles {angles} outside the backend's angle bounds for '{name}'",
            )
    return None


def _instructions(block: QuantumCircuit | DAGCircuit) -> Iterator[tuple[Any, list[int]]]:
    """Each instruction (a ``CircuitInstruction`` or ``DAGOpNode``) with its qubits' indices.

    The instruction itself, not its operation: ``name`` and ``is_control_flow()`` are read
    without building the Python gate object Qiskit otherwise makes for a gate it keeps in Rust
    (:func:`_operation` builds it where it is needed).
    """
    if isinstance(block, DAGCircuit):
        for node in block.op_nodes():
            yield node, [block.find_bit(q).index for q in node.qargs]
    else:
        index = {q: i for i, q in enumerate(block.qubits)}
        for instruction in block.data:
            yield instruction, [index[q] for q in instruction.qubits]


def _operation(instruction: Any) -> Any:
    return instruction.op if isinstance(instruction, DAGOpNode) else instruction.operation


def _vars_issue(block: QuantumCircuit | DAGCircuit, target: Any) -> UnsupportedInstruction | None:
    names = [var.name for var in (*block.iter_input_vars(), *block.iter_captured_vars())]
    if not names or target.instruction_supported(operation_name=_STORE):
        return None
    return UnsupportedInstruction(
        "var",
        (),
        (),
        "classical_variables",
        f"({', '.join(names)}) {_store_detail(target)}",
    )


def unsupported_instructions(
    circuit: QuantumCircuit | DAGCircuit,
    target: Any,
    qubit_map: Sequence[int] | None = None,
    *,
    first_only: bool = False,
) -> list[UnsupportedInstruction]:
    """Every instruction of ``circuit`` that ``target`` does not accept, in circuit order.

    Args:
        circuit: a physical circuit (a ``QuantumCircuit`` or a ``DAGCircuit``).
        target: the backend's :class:`~qiskit.transpiler.Target`.
        qubit_map: physical qubit of each of the circuit's qubits (default: the identity).
        first_only: stop at the first one found (admission needs only one to reject).

    Returns:
        An empty list when the circuit is ISA for the Target.
    """
    found: list[UnsupportedInstruction] = []
    physical = list(qubit_map) if qubit_map is not None else None
    issue = _vars_issue(circuit, target)
    if issue is not None:
        found.append(issue)
        if first_only:
            return found
    _walk(circuit, physical, target, found, first_only, {})
    return found


def _walk(
    block: QuantumCircuit | DAGCircuit,
    physical: list[int] | None,
    target: Any,
    found: list[UnsupportedInstruction],
    first_only: bool,
    accepted: dict[tuple[str, tuple[int, ...]], bool],
) -> bool:
    """Append what ``target`` rejects in ``block``; return True to stop (``first_only``)."""
    for instruction, indices in _instructions(block):
        qargs = tuple(indices) if physical is None else tuple(physical[i] for i in indices)
        name = instruction.name
        key = (name, qargs)
        # Only gates without angle bounds can be cached by name and qubits alone.
        if not accepted.get(key):
            issue = instruction_issue(target, _operation(instruction), qargs)
            if issue is not None:
                found.append(issue)
                if first_only:
                    return True
            elif not target.gate_has_angle_bounds(name):
                accepted[key] = True
        if instruction.is_control_flow():
            for sub in _operation(instruction).blocks:
                inner = [qargs[sub.find_bit(q).index] for q in sub.qubits]
                if _walk(sub, inner, target, found, first_only, accepted):
                    return True
    return False
