"""OpenQASM 3/2 text -> QuantumCircuit: a fast Rust path and an always-correct ANTLR path.

Internal to :mod:`qiskit_rest_provider.wire.circuits`. Why two paths (perf-notes "Circuits"):

* ``qiskit.qasm3.loads`` (qiskit-qasm3-import on the ANTLR parser) handles everything our
  exporter writes (``$n`` hardware qubits, ``input float[64]`` parameters, control flow, delays)
  but costs ~170 us per gate.
* ``qiskit.qasm3.loads_experimental`` (Rust) is 20-30x faster but rejects ``$n`` and ``input``
  and much else. For plain static programs we rewrite ``$n`` into loose declared qubits (same
  indices) and use it; anything it cannot take goes to the ANTLR path.
* Flat ISA programs (with ``input`` too) are read first by :mod:`._qasm_flat`, which is as fast
  as the Rust path here and takes parameters; the Rust path serves static programs with
  non-standard ``gate`` definitions.

Both paths map gate names of Qiskit's standard library back to the standard gate classes
(``ecr`` -> ``ECRGate``, ``rzz`` -> ``RZZGate``, ``id`` -> ``IGate``...), whether the text
defines them with a ``gate`` block (as Qiskit's exporter does for gates outside
``stdgates.inc``) or uses them undefined (as some services' texts do): a server checks circuits
against its Target by gate name, so a custom ``Gate("ecr")`` or a ``u(0,0,0)`` for ``id`` would be
rejected or mis-counted.
"""

from __future__ import annotations

import re
import time
import warnings
from typing import Any

from qiskit import QuantumCircuit, qasm3
from qiskit.circuit import ClassicalRegister, Parameter, QuantumRegister, Qubit
from qiskit.circuit.library import get_standard_gate_name_mapping
from qiskit.transpiler import Layout, TranspileLayout

__all__ = [
    "ImportBudgetExceeded",
    "import_antlr",
    "import_fast",
    "pad_hardware_qubits",
    "set_trivial_layout",
    "standard_gate_builders",
]


class ImportBudgetExceeded(Exception):
    """An import ran past its CPU-time deadline (:func:`time.thread_time`)."""


def _check_deadline(deadline: float | None) -> None:
    if deadline is not None and time.thread_time() > deadline:
        raise ImportBudgetExceeded


_EXCLUDED = {"measure", "reset", "delay", "barrier", "global_phase", "store"}


def _standard_gates() -> dict[str, tuple[type, int, int]]:
    out: dict[str, tuple[type, int, int]] = {}
    for name, gate in get_standard_gate_name_mapping().items():
        if name in _EXCLUDED or not hasattr(gate, "base_class") or gate.num_qubits == 0:
            continue
        if gate.num_clbits:
            continue
        out[name] = (gate.base_class, len(gate.params), gate.num_qubits)
    return out


_STANDARD = _standard_gates()


def standard_gate_builders() -> dict[str, tuple[type, int, int]]:
    """Standard gate name -> (class, number of parameters, number of qubits)."""
    return dict(_STANDARD)


# ----------------------------------------------------------------------------------------------
# ANTLR path
# ----------------------------------------------------------------------------------------------
def _make_visitor_class() -> Any:
    from openqasm3 import ast as qasm_ast
    from qiskit_qasm3_import import converter, types
    from qiskit_qasm3_import.data import Scope, Symbol
    from qiskit_qasm3_import.exceptions import raise_from_node

    stdgates = dict(converter._STDGATES)
    # qiskit-qasm3-import turns `id` into `u(0,0,0)`; a Target lists `id`, so keep the name.
    stdgates["id"] = (_STANDARD["id"][0], 0, 1)

    class StandardGateVisitor(converter.ConvertVisitor):
        """ConvertVisitor that keeps standard gate classes and records `input` order."""

        def __init__(self, renames: dict[str, str], deadline: float | None = None) -> None:
            super().__init__()
            self.inputs: list[Parameter] = []
            self.renames = renames
            self.deadline = deadline

        def visit(self, node, context=None):
            _check_deadline(self.deadline)
            return super().visit(node, context)

        # Registers are created with their final names (no ``esc_`` prefix, pragma applied), so
        # that conditions on registers refer to the registers the circuit really has.
        def visit_ClassicalDeclaration(self, node, context):  # noqa: N802
            simple = (
                context.scope is Scope.GLOBAL
                and isinstance(node.type, qasm_ast.BitType)
                and node.type.size is not None
                and node.init_expression is None
            )
            if not simple:
                return super().visit_ClassicalDeclaration(node, context)
            name = node.identifier.name
            size = self._resolve_constant_int(node.type.size, context)
            register = ClassicalRegister(size, name=self.renames.get(name, name))
            context.circuit.add_register(register)
            symbol = Symbol(name, register, types.BitArray(size), context.scope, node)
            context.symbol_table.insert(symbol)
            return context

        def visit_QubitDeclaration(self, node, context):  # noqa: N802
            if node.size is None:
                return super().visit_QubitDeclaration(node, context)
            context.addressing_mode.set_virtual_mode(node)
            name = node.qubit.name
            size = self._resolve_constant_int(node.size, context)
            register = QuantumRegister(size, name=self.renames.get(name, name))
            context.circuit.add_register(register)
            symbol = Symbol(name, register, types.QubitArray(size), Scope.GLOBAL, node)
            context.symbol_table.insert(symbol)
            return context

        def visit_Include(self, node, context):  # noqa: N802 - visitor protocol name
            if node.filename != "stdgates.inc":
                raise_from_node(node, "non-stdgates imports not currently supported")
            for name, (builder, n_params, n_qubits) in stdgates.items():
                context = self._define_gate(name, builder, n_params, n_qubits, node, context)
            return context

        def visit_QuantumGateDefinition(self, node, context):  # noqa: N802
            name = node.name.name
            std = _STANDARD.get(name)
            if std is not None and std[1] == len(node.arguments) and std[2] == len(node.qubits):
                return self._define_gate(name, std[0], std[1], std[2], node, context)
            return super().visit_QuantumGateDefinition(node, context)

        def visit_QuantumGate(self, node, context):  # noqa: N802
            name = node.name.name
            if name in _STANDARD and context.symbol_table.get(name, node) is None:
                builder, n_params, n_qubits = _STANDARD[name]
                self._define_gate(name, builder, n_params, n_qubits, node, context)
            return super().visit_QuantumGate(node, context)

        def visit_IODeclaration(self, node, context):  # noqa: N802
            context = super().visit_IODeclaration(node, context)
            symbol = context.symbol_table.get(node.identifier.name, node)
            if symbol is not None and isinstance(symbol.data, Parameter):
                self.inputs.append(symbol.data)
            return context

    return StandardGateVisitor


_VISITOR_CLASS: Any = None


def import_antlr(
    text: str, renames: dict[str, str] | None = None, *, deadline: float | None = None
) -> tuple[QuantumCircuit, tuple[Parameter, ...]]:
    """Import with the ANTLR-based importer; returns the circuit and its `input` parameters.

    ``renames`` maps register names of the text to the names the circuit must have;
    ``deadline`` is a :func:`time.thread_time` value past which lexing, parsing and conversion
    stop with :class:`ImportBudgetExceeded`.

    Raises:
        ImportBudgetExceeded: past ``deadline``.
        Exception: whatever the parser raises (the caller wraps it in ``WireFormatError``).
    """
    global _VISITOR_CLASS
    if _VISITOR_CLASS is None:
        _VISITOR_CLASS = _make_visitor_class()
    visitor = _VISITOR_CLASS(renames or {}, deadline)
    circuit = visitor.convert(parse_qasm3(text, deadline=deadline), source=text).circuit
    return circuit, tuple(visitor.inputs)


class QasmSyntaxError(ValueError):
    """An OpenQASM 3 program does not parse; the message says where (``line L:C``) and why."""


def parse_qasm3(text: str, *, deadline: float | None = None) -> Any:
    """Parse OpenQASM 3 text into the reference AST, reporting *where* a syntax error is.

    ``openqasm3.parse`` raises a bare ``QASM3ParsingError()`` on syntax errors and leaves the
    location to ANTLR's console listener, i.e. the server's stderr, where a client never sees it
    (and client text lands in server output). This runs the same lexer/parser with the console
    listeners replaced by a collecting one, and puts the location into the exception.

    Raises:
        QasmSyntaxError: the text does not parse.
        ImportBudgetExceeded: past ``deadline`` (a :func:`time.thread_time` value).
    """
    from antlr4 import CommonTokenStream, InputStream
    from antlr4.error.ErrorListener import ErrorListener
    from antlr4.error.Errors import ParseCancellationException, RecognitionException
    from antlr4.error.ErrorStrategy import BailErrorStrategy
    from openqasm3 import parser as oq_parser

    class _Collect(ErrorListener):  # noqa: D101 - local
        def __init__(self) -> None:
            self.errors: list[str] = []

        def syntaxError(self, recognizer, offendingSymbol, line, column, msg, e):  # noqa: N802
            self.errors.append(f"line {line}:{column}: {msg}")

    if not text.strip():
        raise QasmSyntaxError("empty program")

    class _BudgetedTokens(CommonTokenStream):  # noqa: D101 - local
        count = 0

        def consume(self) -> None:
            self.count += 1
            if not self.count & 255:
                _check_deadline(deadline)
            super().consume()

    listener = _Collect()
    lexer = oq_parser.qasm3Lexer(InputStream(text))
    tokens = CommonTokenStream(lexer) if deadline is None else _BudgetedTokens(lexer)
    parser = oq_parser.qasm3Parser(tokens)
    for recognizer in (lexer, parser):
        recognizer.removeErrorListeners()
        recognizer.addErrorListener(listener)
    parser._errHandler = BailErrorStrategy()
    try:
        tree = parser.program()
    except (RecognitionException, ParseCancellationException) as exc:
        raise QasmSyntaxError(listener.errors[0] if listener.errors else _where(exc)) from exc
    if listener.errors:  # the lexer recovers from bad characters; the program is still wrong
        raise QasmSyntaxError(listener.errors[0])
    return oq_parser.QASMNodeVisitor().visitProgram(tree)


def _where(exc: Exception) -> str:
    """Describe a bail-out of ANTLR's parser by its offending token."""
    cause = exc.args[0] if exc.args and isinstance(exc.args[0], Exception) else exc
    token = getattr(cause, "offendingToken", None)
    if token is None:
        return "syntax error"
    text = token.text
    if text == "<EOF>":
        return f"line {token.line}:{token.column}: unexpected end of program"
    return f"line {token.line}:{token.column}: unexpected {text!r}"


# ----------------------------------------------------------------------------------------------
# Fast (Rust) path
# ----------------------------------------------------------------------------------------------
_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_UNSUPPORTED = re.compile(
    r"\b(?:input|output|if|else|while|for|switch|case|reset|delay|box|duration|stretch|let|const"
    r"|def|defcal|cal|extern|return|break|continue|ctrl|negctrl|inv|pow|gphase|float|int|uint"
    r"|angle|bool|complex|array|opaque|creg|qreg)\b|[@#{}>]|->"
)
_BUILTIN_U = re.compile(r"\bU\s*\(")  # the Rust importer cannot resolve the builtin U
_GATE_DEF = re.compile(r"\bgate\s+([A-Za-z_]\w*)[^{]*\{[^}]*\}", re.S)
_STATEMENT_HEAD = re.compile(r"(?:^|;)\s*([A-Za-z_$][\w$]*)")
_HARDWARE = re.compile(r"\$(\d+)")
_HEADER = re.compile(r"\A\s*OPENQASM\s+3(?:\.0)?\s*;\s*(?:include\s+\"stdgates\.inc\"\s*;\s*)?")
_DECL = re.compile(r"\b(?:qubit|bit)\s*(?:\[\s*\d+\s*\])?\s+([A-Za-z_]\w*)\s*;")
_STDGATES_NAMES = {gate.name for gate in qasm3.STDGATES_INC_GATES}
_KEYWORDS = {"OPENQASM", "include", "gate", "qubit", "bit", "measure", "barrier"}
_HW_PREFIX = "__qrp_hw"


def _custom_gates() -> list:
    gates = [g for g in qasm3.STDGATES_INC_GATES if g.name != "id"]
    gates.append(qasm3.CustomGate(_STANDARD["id"][0], "id", 0, 1))
    known = {g.name for g in gates}
    for name, (cls, n_params, n_qubits) in _STANDARD.items():
        if name not in known:
            gates.append(qasm3.CustomGate(cls, name, n_params, n_qubits))
    return gates


_CUSTOM_GATES = _custom_gates()


def _fast_path_text(text: str) -> tuple[str, int] | None:
    """Rewrite ``text`` for the Rust importer, or ``None`` if it may not be supported.

    Returns the rewritten text and the number of hardware qubits it declares (0 if the program
    uses declared qubits instead).
    """
    text = _COMMENT.sub("", text)
    header = _HEADER.match(text)
    if header is None or "stdgates" not in header.group(0):
        return None
    body = text[header.end() :]
    defined = set(_GATE_DEF.findall(body))
    if defined - _STDGATES_NAMES - set(_STANDARD):
        return None  # the Rust importer cannot handle any non-built-in gate definition
    statements = _GATE_DEF.sub(";", body)
    if _UNSUPPORTED.search(statements) or _BUILTIN_U.search(body):
        return None
    declared = set(_DECL.findall(statements))
    allowed = _KEYWORDS | _STDGATES_NAMES | defined | declared
    for head in _STATEMENT_HEAD.findall(statements):
        if head not in allowed and not head.startswith("$"):
            return None
    hardware = [int(n) for n in _HARDWARE.findall(statements)]
    if not hardware:
        return text, 0
    if "qubit" in statements or _HW_PREFIX in text:
        return None
    width = max(hardware) + 1
    declarations = "".join(f"qubit {_HW_PREFIX}{i};" for i in range(width))
    rewritten = _HARDWARE.sub(lambda m: f"{_HW_PREFIX}{m.group(1)}", text[header.end() :])
    return f'OPENQASM 3.0;\ninclude "stdgates.inc";\n{declarations}\n{rewritten}', width


def import_fast(text: str) -> tuple[QuantumCircuit, bool] | None:
    """Import with the Rust importer when the text is within what it supports.

    Returns ``(circuit, uses_hardware_qubits)`` or ``None`` when the caller must use the ANTLR
    path (text outside the supported subset, or the Rust importer failed on it).
    """
    prepared = _fast_path_text(text)
    if prepared is None:
        return None
    source, width = prepared
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            circuit = qasm3.loads_experimental(source, custom_gates=_CUSTOM_GATES)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # noqa: BLE001 - Rust panics are BaseException; ANTLR path decides
        return None
    if width:
        set_trivial_layout(circuit)
    return circuit, bool(width)


def set_trivial_layout(circuit: QuantumCircuit) -> None:
    """Mark a ``$n`` circuit as laid out (qubit i = physical qubit i), as ANTLR import does."""
    circuit._layout = TranspileLayout(
        initial_layout=Layout.from_qubit_list(circuit.qubits),
        input_qubit_mapping={bit: i for i, bit in enumerate(circuit.qubits)},
        final_layout=None,
    )


def pad_hardware_qubits(circuit: QuantumCircuit, num_qubits: int) -> None:
    """Add idle qubits so that a ``$n`` circuit is ``num_qubits`` wide (in place)."""
    missing = num_qubits - circuit.num_qubits
    if missing <= 0:
        return
    layout = circuit._layout
    circuit._layout = None
    extra = [Qubit() for _ in range(missing)]
    circuit.add_bits(extra)
    if layout is not None:
        start = circuit.num_qubits - missing
        for offset, bit in enumerate(extra):
            layout.initial_layout.add(bit, start + offset)
            layout.input_qubit_mapping[bit] = start + offset
        circuit._layout = layout
