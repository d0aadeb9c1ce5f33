"""A fast reader for flat OpenQASM 3 programs, with ``input`` parameters (internal).

Qiskit's Rust importer rejects ``input`` declarations, so parameterized circuits would all go
through the ANTLR importer (~170 us per gate). Circuits sent to a Runtime service are ISA
circuits: one gate call per statement on single qubits, standard gate names, angles that are
numbers or simple expressions of the inputs. This module reads exactly that subset statement by
statement (20x-40x faster than ANTLR; ``benchmarks/wire.py``) and returns ``None`` for anything
else, so the caller falls back to the ANTLR importer. Read: measurements, barriers, resets,
``delay[...]`` in ``dt``/``ns``/``us``/``ms``/``s``, loose or registered qubits and bits, ``$n``
hardware qubits, ``gate`` definitions of standard gates (Qiskit's exporter writes them for gates
outside ``stdgates.inc``). Angle expressions are parsed with Python's ``ast`` and evaluated over
numbers, the constants ``pi``/``tau``/``euler`` and the declared inputs only (no other names,
calls or attributes), giving Qiskit ``ParameterExpression`` objects.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import threading
from typing import Any

from qiskit import QuantumCircuit
from qiskit.circuit import (
    CircuitInstruction,
    ClassicalRegister,
    Clbit,
    Delay,
    Parameter,
    QuantumRegister,
    Qubit,
)
from qiskit.circuit.library import Barrier, Measure, Reset

from ._qasm_import import standard_gate_builders

__all__ = ["import_flat"]

_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_HEADER = re.compile(r"\A\s*OPENQASM\s+3(?:\.\d+)?\s*;")
_INCLUDE = re.compile(r'\Ainclude\s+"stdgates\.inc"\Z')
_GATE_DEF = re.compile(r"\bgate\s+([A-Za-z_]\w*)\s*(?:\(([^)]*)\))?\s*([^{]*)\{[^}]*\}", re.S)
_INPUT = re.compile(r"\Ainput\s+(?:float|angle)(?:\s*\[\s*\d+\s*\])?\s+([^\W\d]\w*)\Z", re.U)
_DECL = re.compile(r"\A(qubit|bit)\s*(?:\[\s*(\d+)\s*\])?\s+([A-Za-z_]\w*)\Z")
_MEASURE_ASSIGN = re.compile(r"\A([A-Za-z_]\w*(?:\s*\[\s*\d+\s*\])?)\s*=\s*measure\s+(\S+)\Z")
_MEASURE_ARROW = re.compile(r"\Ameasure\s+(\S+)\s*->\s*(\S+)\Z")
_CALL = re.compile(r"\A([A-Za-z_]\w*)\s*(?:\((.*)\))?\s*((?:\$\d+|[A-Za-z_]\w*)[^()]*)\Z", re.S)
_DELAY = re.compile(
    r"\Adelay\s*\[\s*(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)\s*(dt|ns|us|ms|s)\s*\]\s*(.+)\Z", re.S
)
_OPERAND = re.compile(r"\A(?:\$(\d+)|([A-Za-z_]\w*)\s*(?:\[\s*(\d+)\s*\])?)\Z")

_CONSTANTS = {"pi": math.pi, "π": math.pi, "tau": math.tau, "τ": math.tau, "euler": math.e}
_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}


def _gate_table() -> dict[str, tuple[Any, int, int]]:
    from qiskit.circuit.library import IGate, UGate
    from qiskit_qasm3_import import converter

    table = dict(standard_gate_builders())
    table.update(converter._STDGATES)
    table["id"] = (IGate, 0, 1)
    table["U"] = (UGate, 3, 1)
    return table


_GATES = _gate_table()


class _Unsupported(Exception):
    """The program is outside the flat subset; the caller uses the ANTLR importer."""


#: A number literal Python reads as this float (an integer without leading zeros, a decimal or
#: exponent form): an angle such as ``0.125`` or ``-3`` skips :func:`ast.parse`.
_NUMBER = re.compile(r"[+-]?(?:(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|0|[1-9]\d*)")

#: ``ast.parse`` one thread at a time: CPython 3.11 keeps the AST converter's recursion depth in
#: state shared by threads, and two admissions parsing at once failed one of them with
#: ``SystemError: AST constructor recursion depth mismatch`` (seen with 4 clients on 2 replicas).
_AST_LOCK = threading.Lock()


def _evaluate(node: ast.AST, names: dict[str, Parameter]) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        if isinstance(node.value, bool):
            raise _Unsupported
        return float(node.value)  # floats only: `9**9**9` overflows at once instead of hanging
    if isinstance(node, ast.Name):
        if node.id in names:
            return names[node.id]
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise _Unsupported
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _evaluate(node.operand, names)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left = _evaluate(node.left, names)
        right = _evaluate(node.right, names)
        try:
            return _BINARY[type(node.op)](left, right)
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise _Unsupported from exc
    raise _Unsupported


class _Reader:
    def __init__(self) -> None:
        self.inputs: list[Parameter] = []
        self.names: dict[str, Parameter] = {}
        self.qregs: dict[str, QuantumRegister] = {}
        self.cregs: dict[str, ClassicalRegister] = {}
        self.loose_qubits: dict[str, Qubit] = {}
        self.loose_clbits: dict[str, Clbit] = {}
        self.hardware: dict[int, Qubit] = {}
        self.declared_qubits = False
        self.circuit = QuantumCircuit()
        self.instructions: list[tuple[Any, tuple, tuple]] = []
        self.angle_cache: dict[str, Any] = {}
        self.gate_cache: dict[tuple[str, str | None], Any] = {}
        self.used: set[Parameter] = set()

    # operands -----------------------------------------------------------------------------
    def qubit(self, text: str) -> Qubit:
        match = _OPERAND.match(text.strip())
        if match is None:
            raise _Unsupported
        hw, name, index = match.groups()
        if hw is not None:
            if self.declared_qubits:
                raise _Unsupported
            n = int(hw)
            bit = self.hardware.get(n)
            if bit is None:
                bit = self.hardware[n] = Qubit()
            return bit
        if index is not None:
            register = self.qregs.get(name)
            if register is None or int(index) >= register.size:
                raise _Unsupported
            return register[int(index)]
        bit = self.loose_qubits.get(name)
        if bit is None:
            raise _Unsupported
        return bit

    def clbit(self, text: str) -> Clbit:
        match = _OPERAND.match(text.strip())
        if match is None or match.group(1) is not None:
            raise _Unsupported
        _, name, index = match.groups()
        if index is not None:
            register = self.cregs.get(name)
            if register is None or int(index) >= register.size:
                raise _Unsupported
            return register[int(index)]
        bit = self.loose_clbits.get(name)
        if bit is None:
            raise _Unsupported
        return bit

    def angle(self, text: str) -> Any:
        text = text.strip()
        cached = self.angle_cache.get(text)
        if cached is not None:
            return cached
        if _NUMBER.fullmatch(text):  # a plain literal, as ``ast`` would read it: no parse
            value: Any = float(text)
        else:
            try:
                with _AST_LOCK:
                    tree = ast.parse(text, mode="eval")
            except (SyntaxError, ValueError) as exc:
                raise _Unsupported from exc
            value = _evaluate(tree.body, self.names)
        if hasattr(value, "parameters"):
            self.used.update(value.parameters)
        elif isinstance(value, Parameter):
            self.used.add(value)
        self.angle_cache[text] = value
        return value

    # statements -----------------------------------------------------------------------------
    def statement(self, text: str) -> None:
        if not text:
            return
        head = text.split(None, 1)[0]
        if head == "include":
            if not _INCLUDE.match(text):
                raise _Unsupported
            return
        if head == "input":
            match = _INPUT.match(text)
            if match is None or match.group(1) in self.names:
                raise _Unsupported
            parameter = Parameter(match.group(1))
            self.names[parameter.name] = parameter
            self.inputs.append(parameter)
            return
        if head.startswith("qubit") or head.startswith("bit"):
            self.declaration(text)
            return
        if head == "barrier":
            operands = text[len("barrier") :].strip()
            if operands:
                qubits = tuple(self.qubit(o) for o in operands.split(","))
            else:
                qubits = tuple(self.all_qubits())
            self.instructions.append((Barrier(len(qubits)), qubits, ()))
            return
        if head.startswith("delay"):
            self.delay(text)
            return
        if head == "reset":
            self.instructions.append((Reset(), (self.qubit(text[5:]),), ()))
            return
        if "measure" in text:
            self.measure(text)
            return
        self.call(text)

    def delay(self, text: str) -> None:
        match = _DELAY.match(text)
        if match is None:
            raise _Unsupported
        value, unit, operands = match.groups()
        duration: float | int = int(value) if unit == "dt" else float(value)
        if unit == "dt" and not value.isdigit():
            raise _Unsupported
        for operand in operands.split(","):
            self.instructions.append((Delay(duration, unit), (self.qubit(operand),), ()))

    def all_qubits(self) -> list[Qubit]:
        if self.hardware:
            raise _Unsupported  # `barrier;` on $n: the width is not known yet
        qubits: list[Qubit] = list(self.loose_qubits.values())
        for register in self.qregs.values():
            qubits.extend(register)
        return qubits

    def declaration(self, text: str) -> None:
        match = _DECL.match(text)
        if match is None:
            raise _Unsupported
        kind, size, name = match.groups()
        taken = (*self.qregs, *self.cregs, *self.loose_qubits, *self.loose_clbits, *self.names)
        if name in taken:
            raise _Unsupported
        if kind == "qubit":
            if self.hardware:
                raise _Unsupported
            self.declared_qubits = True
            if size is None:
                self.loose_qubits[name] = bit = Qubit()
                self.circuit.add_bits([bit])
            else:
                self.qregs[name] = register = QuantumRegister(int(size), name)
                self.circuit.add_register(register)
        elif size is None:
            self.loose_clbits[name] = clbit = Clbit()
            self.circuit.add_bits([clbit])
        else:
            self.cregs[name] = creg = ClassicalRegister(int(size), name)
            self.circuit.add_register(creg)

    def measure(self, text: str) -> None:
        match = _MEASURE_ASSIGN.match(text)
        if match is not None:
            target, source = match.groups()
        else:
            match = _MEASURE_ARROW.match(text)
            if match is None:
                raise _Unsupported
            source, target = match.groups()
        self.instructions.append((Measure(), (self.qubit(source),), (self.clbit(target),)))

    def call(self, text: str) -> None:
        match = _CALL.match(text)
        if match is None:
            raise _Unsupported
        name, args, operands = match.groups()
        key = (name, args)
        gate = self.gate_cache.get(key)
        if gate is None:
            entry = _GATES.get(name)
            if entry is None:
                raise _Unsupported
            builder, n_params, _ = entry
            params = (
                [] if args is None or not args.strip() else [self.angle(a) for a in args.split(",")]
            )
            if len(params) != n_params:
                raise _Unsupported
            gate = self.gate_cache[key] = builder(*params)
        qubits = tuple(self.qubit(o) for o in operands.split(","))
        if len(qubits) != gate.num_qubits or len(set(qubits)) != len(qubits):
            raise _Unsupported
        self.instructions.append((gate, qubits, ()))

    def finish(self) -> tuple[QuantumCircuit, tuple[Parameter, ...], bool]:
        circuit = self.circuit
        if self.hardware:
            width = max(self.hardware) + 1
            bits = [self.hardware.get(i) or Qubit() for i in range(width)]
            circuit.add_bits(bits)
        if set(self.inputs) != self.used:
            raise _Unsupported  # unused inputs: let the ANTLR importer keep them as references
        append = circuit._data.append
        for operation, qubits, clbits in self.instructions:
            instruction = CircuitInstruction(operation, qubits, clbits)
            try:
                append(instruction)
            except RuntimeError:  # parameter bookkeeping Qiskit wants done in Python
                circuit._append(instruction)
        circuit._duration = None
        return circuit, tuple(self.inputs), bool(self.hardware)


def _strip_gate_definitions(body: str) -> str:
    def replace(match: re.Match) -> str:
        name, params, qubits = match.groups()
        entry = _GATES.get(name)
        n_params = len([p for p in (params or "").split(",") if p.strip()])
        n_qubits = len([q for q in qubits.split(",") if q.strip()])
        if entry is None or entry[1] != n_params or entry[2] != n_qubits:
            raise _Unsupported
        return ";"

    return _GATE_DEF.sub(replace, body)


def import_flat(text: str) -> tuple[QuantumCircuit, tuple[Parameter, ...], bool] | None:
    """Read a flat program; ``(circuit, inputs in declaration order, uses $n)`` or ``None``."""
    text = _COMMENT.sub("", text)
    header = _HEADER.match(text)
    if header is None:
        return None
    try:
        body = _strip_gate_definitions(text[header.end() :])
        if "{" in body or "}" in body or "@" in body:
            return None
        reader = _Reader()
        for statement in body.split(";"):
            reader.statement(statement.strip())
        return reader.finish()
    except _Unsupported:
        return None
    except Exception:  # noqa: BLE001 - anything unexpected: the ANTLR importer decides
        return None
