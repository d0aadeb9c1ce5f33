"""Transpiler passes that make a physical circuit fit what a Target accepts on each qubit.

Qiskit's translation stage reasons about gate *names* (is ``ecr`` in the basis?) and fixes gate
direction only for a fixed list of gates, raising ``TranspilerError`` when its flip rules need
gates the Target lacks. These passes look at each instruction *on its qubits*, the way a backend
validates a job (:meth:`~qiskit.transpiler.Target.instruction_supported`), and:

* :class:`LocalizeUnsupportedGates` rewrites an instruction whose name the Target knows but not on
  those qubits: a symmetric two-qubit gate (``cz``, ``rzz``, ``swap`` ...) gets its qubits swapped,
  any other fixed gate of up to two qubits becomes a :class:`~qiskit.circuit.library.UnitaryGate`
  that :class:`~qiskit.transpiler.passes.UnitarySynthesis` then synthesizes for the qubits' own
  gates and direction.
* :class:`ReportUnsupportedInstructions` records (and logs) whatever the Target still rejects, so a
  problem surfaces at transpile time with the instruction and qubits named, not later as a job
  rejected by the service. "Rejects" is the contract's one ISA rule
  (:mod:`qiskit_rest_provider.wire.isa`), the rule the client and the server check jobs with.

Both recurse into control-flow blocks, mapping block qubits to physical qubits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from qiskit.circuit import CONTROL_FLOW_OP_NAMES, Gate, ParameterExpression
from qiskit.converters import circuit_to_dag, dag_to_circuit
from qiskit.transpiler.basepasses import AnalysisPass, TransformationPass

from ..wire import isa

if TYPE_CHECKING:
    from qiskit.dagcircuit import DAGCircuit, DAGOpNode
    from qiskit.transpiler import Target

logger = logging.getLogger(__name__)

# Two-qubit gates whose matrix is invariant under exchanging the qubits, for any parameters.
_SYMMETRIC_2Q = frozenset(
    {"cz", "swap", "iswap", "rzz", "rxx", "ryy", "cp", "cu1", "dcx_sym", "xx_plus_yy", "ms"}
)
# Instructions LocalizeUnsupportedGates never rewrites (not gates on qubits).
_DIRECTIVES = frozenset({"barrier", "store", "box"})
_SWAP = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])


def _physical(dag: DAGCircuit, node: DAGOpNode, qubit_map: Sequence[int] | None) -> tuple[int, ...]:
    indices = tuple(dag.find_bit(qubit).index for qubit in node.qargs)
    if qubit_map is None:
        return indices
    return tuple(qubit_map[index] for index in indices)


def _numeric_params(operation) -> list | None:
    """Return the operation's parameters for an angle-bound check, or None to skip the check."""
    params = getattr(operation, "params", None)
    if not params:
        return None
    values = []
    for param in params:
        if isinstance(param, ParameterExpression):
            if param.parameters:
                return None  # unbound: the Target accepts any value at transpile time
            param = float(param)
        if not isinstance(param, (int, float, complex, np.number)):
            return None
        values.append(float(np.real(param)))
    return values


def instruction_accepted(target: Target, operation, qargs: tuple[int, ...]) -> bool:
    """Return whether ``target`` accepts ``operation`` on physical qubits ``qargs``.

    The contract's rule (:func:`qiskit_rest_provider.wire.isa.instruction_issue`): barriers are
    always accepted, ``store`` only where the Target lists it, control flow by name, everything
    else on its qubits and, when the parameters are numbers, within the Target's angle bounds.
    """
    return isa.instruction_issue(target, operation, tuple(qargs)) is None


def _is_symmetric(operation) -> bool:
    if operation.num_qubits != 2:
        return False
    if operation.name in _SYMMETRIC_2Q:
        return True
    if _numeric_params(operation) is None and getattr(operation, "params", None):
        return False
    try:
        matrix = operation.to_matrix()
    except Exception:  # noqa: BLE001 - gates without a matrix are simply not symmetric
        return False
    return bool(np.allclose(_SWAP @ matrix @ _SWAP, matrix))


def _unitary_of(operation) -> np.ndarray | None:
    if not isinstance(operation, Gate) or operation.num_qubits > 2:
        return None
    if getattr(operation, "params", None) and _numeric_params(operation) is None:
        return None  # free parameters: no matrix to synthesize from
    try:
        return np.asarray(operation.to_matrix(), dtype=complex)
    except Exception:  # noqa: BLE001 - opaque gates cannot be re-synthesized
        return None


class LocalizeUnsupportedGates(TransformationPass):
    """Rewrite gates the Target knows by name but not on the qubits they act on.

    The unitaries it leaves are not in the Target's basis, so a following
    :class:`~qiskit.transpiler.passes.GatesInBasis` check triggers re-synthesis only when needed.
    """

    def __init__(self, target: Target) -> None:
        super().__init__()
        self.target = target
        self._names: frozenset[str] | None = None

    def run(self, dag: DAGCircuit) -> DAGCircuit:
        """Rewrite the DAG in place; see the class docstring."""
        if self._names is None:
            # Only gates the Target restricts to some qubits can be on the wrong ones; a global
            # gate is either fine or a routing problem. This keeps the pass O(restricted gates).
            self._names = frozenset(
                self.target.get_non_global_operation_names(strict_direction=True)
            ).difference(_DIRECTIVES)
        self._run(dag, None)
        return dag

    def _run(self, dag: DAGCircuit, qubit_map: Sequence[int] | None) -> int:
        from qiskit.circuit.library import UnitaryGate

        count = 0
        for node in list(dag.control_flow_op_nodes() or ()):
            operation = node.op
            qargs = _physical(dag, node, qubit_map)
            blocks = []
            changed = 0
            for block in operation.blocks:
                block_dag = circuit_to_dag(block)
                inner = [qargs[block.find_bit(q).index] for q in block.qubits]
                changed += self._run(block_dag, inner)
                blocks.append(dag_to_circuit(block_dag))
            if changed:
                dag.substitute_node(node, operation.replace_blocks(blocks))
                count += changed
        if not self._names:
            return count
        for node in list(dag.named_nodes(*self._names)):
            operation = node.op
            qargs = _physical(dag, node, qubit_map)
            if self.target.instruction_supported(operation.name, qargs):
                continue
            if (
                len(qargs) == 2
                and self.target.instruction_supported(operation.name, qargs[::-1])
                and _is_symmetric(operation)
            ):
                dag.substitute_node_with_dag(node, _single(operation, reverse=True))
                count += 1
                continue
            matrix = _unitary_of(operation)
            if matrix is None:
                continue
            dag.substitute_node(node, UnitaryGate(matrix, check_input=False))
            count += 1
        return count


def _single(operation, *, reverse: bool) -> DAGCircuit:
    from qiskit.circuit import QuantumCircuit

    circuit = QuantumCircuit(operation.num_qubits)
    qubits = list(range(operation.num_qubits))
    circuit.append(operation, qubits[::-1] if reverse else qubits)
    return circuit_to_dag(circuit)


class ReportUnsupportedInstructions(AnalysisPass):
    """Record the instructions the Target rejects on their qubits, and log them.

    Sets ``property_set["rest_unsupported"]`` to a list of ``(name, qubits)`` pairs (empty when the
    circuit is valid for the Target). The pass never raises: the service validates jobs anyway,
    and a transpile that Qiskit itself accepts must not start failing because of this check.
    """

    def __init__(self, target: Target) -> None:
        super().__init__()
        self.target = target

    def run(self, dag: DAGCircuit) -> None:
        """Analyse the DAG; see the class docstring.

        When a preceding :class:`~qiskit.transpiler.passes.GatesInBasis` found every gate on
        supported qubits, only what that pass lets through and the contract does not (``store``,
        real-time variables) and control-flow blocks are examined again.
        """
        if self.property_set["all_gates_in_basis"] and not self._needs_full_walk(dag):
            found: list[tuple[str, tuple[int, ...]]] = []
        else:
            found = [(u.name, u.qargs) for u in isa.unsupported_instructions(dag, self.target)]
        self.property_set["rest_unsupported"] = found
        if found:
            shown = ", ".join(f"{name} on {list(qubits)}" for name, qubits in found[:5])
            more = f" and {len(found) - 5} more" if len(found) > 5 else ""
            logger.warning("The backend Target does not accept: %s%s", shown, more)

    def _needs_full_walk(self, dag: DAGCircuit) -> bool:
        ops = dag.count_ops(recurse=False)
        return bool(
            "store" in ops
            or dag.num_input_vars
            or dag.num_captured_vars
            or any(name in ops for name in CONTROL_FLOW_OP_NAMES)
        )


def unsupported_instructions(
    target: Target, circuit, qubit_map: Sequence[int] | None = None
) -> list[tuple[str, tuple[int, ...]]]:
    """Return ``(name, physical qubits)`` of every instruction ``target`` rejects in ``circuit``.

    Recurses into control flow. Useful in tests and before submitting: an empty list means the
    circuit is ISA for the Target (names, qubits and angle bounds), by the same rule the client
    and the server apply (:func:`qiskit_rest_provider.wire.isa.unsupported_instructions`, which
    also says why).
    """
    return [(u.name, u.qargs) for u in isa.unsupported_instructions(circuit, target, qubit_map)]
