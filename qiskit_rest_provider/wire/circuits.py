"""Circuits on the wire: OpenQASM 3 text (with a faithful parameter order) and the QPY wrapper.

Export (client side): :func:`export_qasm3` picks Qiskit's Rust exporter where its output is known
to round-trip (static circuits made of ``stdgates.inc`` gates, measurements and barriers) and the
Python exporter otherwise (the Rust one panics on parameterized circuits). It returns the text
*and* the original circuit's parameters in the order of the text's ``input float[64]``
declarations (decision D3): the exporter renames parameters (``θ[0]`` -> ``_θ_0_``, ``x`` ->
``x_3``) and an importer sorts them by the new names (``_θ_10_`` before ``_θ_2_``), so binding
positionally against ``circuit.parameters`` after a round trip is wrong; binding in declaration
order is right. Register names the exporter had to change (a register called ``output`` is a
keyword in OpenQASM 3) are recorded in a comment pragma so that :func:`import_qasm` restores them.

Import (server side): :func:`import_qasm` handles ``$n`` hardware qubits (padded to the backend
width, D4), ``input`` parameters, several registers and control flow, maps standard gate names to
the standard gate classes, and caches by content (iterative workloads resend the same text).

Example:
    >>> from qiskit.circuit import QuantumCircuit, ParameterVector
    >>> theta = ParameterVector("θ", 12)
    >>> qc = QuantumCircuit(1)
    >>> for t in theta:
    ...     _ = qc.rz(t, 0)
    >>> exported = export_qasm3(qc)
    >>> imported = import_qasm(exported.text)
    >>> [p.name for p in exported.parameters][:3], [p.name for p in imported.parameters][:3]
    (['θ[0]', 'θ[1]', 'θ[2]'], ['_θ_0_', '_θ_1_', '_θ_2_'])
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import re
import threading
import time
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from qiskit import QuantumCircuit, qasm2, qasm3
from qiskit.circuit import ClassicalRegister, Parameter, QuantumRegister

from ..exceptions import WireFormatError
from . import _qasm_flat, _qasm_import
from . import _qasm_limits as limits
from ._qpy import QPY_MAX_VERSION, decode_qpy, encode_qpy

__all__ = [
    "QPY_MAX_VERSION",
    "ExportedCircuit",
    "ImportedCircuit",
    "admission_imports",
    "decode_circuit",
    "encode_qpy",
    "export_qasm3",
    "import_qasm",
]

logger = logging.getLogger(__name__)

PRAGMA = "// qiskit-rest-provider registers "
_PRAGMA_RE = re.compile(r"^// qiskit-rest-provider registers (\{.*\})[ \t]*$", re.M)
_INPUT_RE = re.compile(r"^\s*input\s+(?:float|angle)(?:\[\d+\])?\s+([^\s;]+)\s*;", re.M)
_REG_DECL_RE = re.compile(r"^\s*(bit|qubit)\[(\d+)\]\s+([^\s;]+)\s*;", re.M)
_BAD_CHARS = re.compile(r"\W", re.U)
# Declared sizes, checked before any parser runs: `qubit[100000000] q;` would otherwise make the
# importers allocate gigabytes (a request could take the server down).
_SIZE_COMMENT = limits.COMMENT
_HARDWARE_QUBIT = limits.HARDWARE_QUBIT
_QUBIT_DECL = re.compile(r"^\s*(?:qubit\b|qreg\b)", re.M)

_RUST_SAFE_OPS = {g.name for g in qasm3.STDGATES_INC_GATES} | {"measure", "barrier", "ecr"}


@dataclass(frozen=True)
class ExportedCircuit:
    """An OpenQASM 3 program and the order in which its parameter values must be sent.

    Attributes:
        text: the OpenQASM 3 program.
        parameters: the original circuit's parameters, in the order of the text's
            ``input float[64] NAME;`` declarations (send values in this order, D3).
    """

    text: str
    parameters: tuple[Parameter, ...]

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """The names the text declares, in declaration order (keys for by-name values)."""
        return tuple(_INPUT_RE.findall(self.text))


@dataclass(frozen=True)
class ImportedCircuit:
    """A circuit read from the wire and its positional parameter binding order.

    Attributes:
        circuit: the circuit, registers named exactly as in the original.
        parameters: this circuit's parameters in ``input`` declaration order (QASM) or
            ``circuit.parameters`` order (QPY): bind values positionally in this order.
    """

    circuit: QuantumCircuit
    parameters: tuple[Parameter, ...]


# ----------------------------------------------------------------------------------------------
# Export
# ----------------------------------------------------------------------------------------------
_EXPORT_CACHE: OrderedDict[int, tuple[Any, tuple, ExportedCircuit]] = OrderedDict()
_EXPORT_CACHE_SIZE = 256
_LOCK = threading.Lock()


def _fingerprint(circuit: QuantumCircuit) -> tuple:
    return (
        len(circuit.data),
        circuit.num_qubits,
        circuit.num_clbits,
        circuit.num_parameters,
        tuple((r.name, r.size) for r in circuit.qregs),
        tuple((r.name, r.size) for r in circuit.cregs),
        float(circuit.global_phase) if not circuit.num_parameters else str(circuit.global_phase),
    )


_ASCII_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _rust_exportable(circuit: QuantumCircuit) -> bool:
    if circuit.num_parameters or circuit.num_vars or circuit.num_stretches:
        return False
    # The Rust exporter writes register names verbatim: "π" (a built-in constant) or "c-1"
    # make a program no importer reads; the Python exporter renames them (pragma restores).
    if not all(_ASCII_IDENTIFIER.fullmatch(r.name) for r in (*circuit.qregs, *circuit.cregs)):
        return False
    if not set(circuit.count_ops()) <= _RUST_SAFE_OPS:
        return False
    return all(len(circuit.find_bit(bit).registers) == 1 for bit in circuit.clbits)


def _dumps(circuit: QuantumCircuit) -> str:
    if _rust_exportable(circuit):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return qasm3.dumps_experimental(circuit)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - the Rust exporter panics (BaseException)
            logger.debug("Rust OpenQASM 3 exporter failed (%s); using the Python one", exc)
    try:
        return qasm3.dumps(circuit)
    except Exception as exc:
        raise WireFormatError(f"circuit: cannot be exported to OpenQASM 3 ({exc})") from exc


def _exported_base(name: str) -> str:
    if re.fullmatch(r"[^\W\d]\w*", name, flags=re.U):
        return name
    return "_" + _BAD_CHARS.sub("_", name)


def _declaration_order(circuit: QuantumCircuit, text: str) -> tuple[Parameter, ...] | None:
    names = _INPUT_RE.findall(text)
    params = list(circuit.parameters)
    if len(names) != len(params):
        return None
    for name, param in zip(names, params):
        base = _exported_base(param.name)
        if name != base and not re.fullmatch(re.escape(base) + r"_\d+", name):
            return None
    return tuple(params)


def _register_renames(circuit: QuantumCircuit, text: str) -> dict[str, str]:
    renames: dict[str, str] = {}
    declared = _REG_DECL_RE.findall(text)
    for kind, registers in (("bit", circuit.cregs), ("qubit", circuit.qregs)):
        decls = [(int(size), name) for k, size, name in declared if k == kind]
        if not decls or len(decls) != len(registers):
            continue
        if any(size != reg.size for (size, _), reg in zip(decls, registers)):
            continue
        for (_, name), reg in zip(decls, registers):
            if name != reg.name:
                renames[name] = reg.name
    return renames


def _without_global_phase_gates(circuit: QuantumCircuit) -> QuantumCircuit:
    """Fold ``GlobalPhaseGate`` s into the global phase: the exporter writes them as invalid text.

    Only instructions at the top level are folded; a global phase changes no sample and no
    expectation value, and OpenQASM 3 export drops the circuit's global phase anyway.
    """
    out = circuit.copy_empty_like()
    for instruction in circuit.data:
        if instruction.name == "global_phase":
            out.global_phase += instruction.operation.params[0]
        else:
            out._append(instruction)
    return out


def _declares_no_qubits(text: str) -> bool:
    """Whether a program neither declares a qubit nor uses a ``$n`` hardware qubit."""
    body = _SIZE_COMMENT.sub(" ", text)
    return _QUBIT_DECL.search(body) is None and _HARDWARE_QUBIT.search(body) is None


def _with_width(circuit: QuantumCircuit, text: str) -> str:
    """Declare the qubits of a circuit whose text would otherwise name none.

    The exporters write only the ``$n`` hardware qubits an instruction touches, so a laid-out
    circuit with no instructions (``QuantumCircuit(1)`` transpiled for a 27-qubit device)
    becomes a program without qubits, and the estimator's 27-qubit observable would no longer
    fit it. With nothing acting on them, declaring the qubits as one register is exact.
    """
    if not circuit.num_qubits or not _declares_no_qubits(text):
        return text
    taken = {r.name for r in circuit.cregs}
    name = "q"
    while name in taken:
        name = "_" + name
    return f"{text.rstrip()}\nqubit[{circuit.num_qubits}] {name};\n"


def _export_uncached(circuit: QuantumCircuit) -> ExportedCircuit:
    if "global_phase" in circuit.count_ops():
        circuit = _without_global_phase_gates(circuit)
    text = _dumps(circuit)
    order = _declaration_order(circuit, text)
    if order is None:
        # Names we cannot map back: rename parameters to plain identifiers and map by those.
        fresh = {p: Parameter(f"_p{i}_") for i, p in enumerate(circuit.parameters)}
        text = _dumps(circuit.assign_parameters(fresh, inplace=False))
        by_name = {new.name: old for old, new in fresh.items()}
        names = _INPUT_RE.findall(text)
        if sorted(names) != sorted(by_name):
            raise WireFormatError("circuit: cannot map the exported parameters back to the circuit")
        order = tuple(by_name[name] for name in names)
    text = _with_width(circuit, text)
    renames = _register_renames(circuit, text)
    if renames:
        pragma = PRAGMA + json.dumps(renames, ensure_ascii=True, sort_keys=True)
        head, sep, rest = text.partition("\n")
        text = f"{head}\n{pragma}\n{rest}" if sep else f"{head}\n{pragma}\n"
    return ExportedCircuit(text=text, parameters=order)


def export_qasm3(circuit: QuantumCircuit) -> ExportedCircuit:
    """Export ``circuit`` to OpenQASM 3 with its parameter order (D3), cached per circuit.

    The cache holds the last few hundred circuit objects (weakly) with a cheap content
    fingerprint, so a loop that submits the same circuit with new parameter values exports once,
    and a circuit mutated in place is exported again.

    Raises:
        WireFormatError: Qiskit's exporters cannot express the circuit.
    """
    key = id(circuit)
    fingerprint = _fingerprint(circuit)
    with _LOCK:
        hit = _EXPORT_CACHE.get(key)
        if hit is not None and hit[0]() is circuit and hit[1] == fingerprint:
            _EXPORT_CACHE.move_to_end(key)
            return hit[2]
    exported = _export_uncached(circuit)
    with _LOCK:
        _EXPORT_CACHE[key] = (weakref.ref(circuit), fingerprint, exported)
        while len(_EXPORT_CACHE) > _EXPORT_CACHE_SIZE:
            _EXPORT_CACHE.popitem(last=False)
    return exported


# ----------------------------------------------------------------------------------------------
# Import
# ----------------------------------------------------------------------------------------------
IMPORT_CACHE_BYTES = 64 << 20
"""Estimated bytes of imported circuits the import cache may hold (an entry larger than a quarter
of this is not cached)."""

_IMPORT_CACHE: OrderedDict[tuple[bytes, int | None], tuple[ImportedCircuit, int]] = OrderedDict()
_IMPORT_CACHE_SIZE = 128
_cache_bytes = 0
_GENERAL_IMPORT_LOCK = threading.Lock()
_LARGE_IMPORT_LOCK = threading.Lock()
import_stats = {"fast": 0, "flat": 0, "antlr": 0, "qasm2": 0, "cache_hits": 0}
"""Counters of which import path was taken (for tests and server metrics)."""


def circuit_bytes_estimate(circuit: QuantumCircuit) -> int:
    """An estimate of the memory an imported circuit holds (measured: ~190 B per instruction)."""
    return 256 * (len(circuit.data) + 1) + 64 * (circuit.num_qubits + circuit.num_clbits)


def cache_bytes() -> int:
    """Estimated bytes the import cache holds now (see :data:`IMPORT_CACHE_BYTES`)."""
    return _cache_bytes


@dataclass
class _ImportScope:
    max_total_bytes: int
    total_bytes: int = 0
    pending: list[tuple[tuple[bytes, int | None], ImportedCircuit]] = field(default_factory=list)


_SCOPE: contextvars.ContextVar[_ImportScope | None] = contextvars.ContextVar(
    "qrp_import_scope", default=None
)


@contextmanager
def admission_imports(max_total_bytes: int | None = None) -> Iterator[None]:
    """Import circuits for one job: a byte budget for the job, and caching only if it is accepted.

    Inside the block, :func:`import_qasm` counts the bytes of every program against
    ``max_total_bytes`` (default: ``--max-job-circuit-bytes``, 16 MiB) and keeps new imports
    aside; they enter the cache only when the block exits without an exception, so input that
    fails admission (too wide, not ISA, too large) never stays in memory. The general (ANTLR)
    importer is bounded inside the block only (statements, one at a time, a CPU budget).

    Example:
        >>> with admission_imports():
        ...     _ = import_qasm("OPENQASM 3.0; qubit[1] q; rz(0.25) q[0];")
    """
    scope = _ImportScope(
        limits.MAX_JOB_CIRCUIT_BYTES if max_total_bytes is None else max_total_bytes
    )
    token = _SCOPE.set(scope)
    try:
        yield
    finally:
        _SCOPE.reset(token)
    for key, imported in scope.pending:
        _remember(key, imported)


def _remember(key: tuple[bytes, int | None], imported: ImportedCircuit) -> None:
    global _cache_bytes
    size = circuit_bytes_estimate(imported.circuit)
    if size > IMPORT_CACHE_BYTES // 4:
        return
    with _LOCK:
        if key in _IMPORT_CACHE:
            return
        _IMPORT_CACHE[key] = (imported, size)
        _cache_bytes += size
        while _IMPORT_CACHE and (
            len(_IMPORT_CACHE) > _IMPORT_CACHE_SIZE or _cache_bytes > IMPORT_CACHE_BYTES
        ):
            _, (_, dropped) = _IMPORT_CACHE.popitem(last=False)
            _cache_bytes -= dropped


def _rename_registers(circuit: QuantumCircuit, renames: dict[str, str]) -> QuantumCircuit:
    if not any(r.name in renames for r in (*circuit.qregs, *circuit.cregs)):
        return circuit
    out = QuantumCircuit(
        name=circuit.name, global_phase=circuit.global_phase, metadata=circuit.metadata
    )
    out.add_bits(circuit.qubits)
    out.add_bits(circuit.clbits)
    for reg in circuit.qregs:
        out.add_register(QuantumRegister(name=renames.get(reg.name, reg.name), bits=list(reg)))
    for reg in circuit.cregs:
        out.add_register(ClassicalRegister(name=renames.get(reg.name, reg.name), bits=list(reg)))
    for instruction in circuit.data:
        out._append(instruction)
    out._layout = circuit._layout
    return out


def _import_general(text: str, renames: dict[str, str], statements: int) -> tuple:
    """The ANTLR importer; bounded during admission: statements, one at a time, a CPU budget.

    Outside :func:`admission_imports` (a worker transpiling a request, a client reading a
    transpiled circuit) the work belongs to a job already accepted and nothing else waits on it.
    """
    if _SCOPE.get() is None:
        try:
            return _qasm_import.import_antlr(text, renames)
        except Exception as exc:
            message = str(exc).strip() or type(exc).__name__
            raise WireFormatError(f"invalid OpenQASM 3 program: {message}") from exc
    if statements > limits.MAX_GENERAL_STATEMENTS:
        raise WireFormatError(
            f"the program has {statements} statements and needs the general OpenQASM 3 importer "
            "(it is not flat ISA text: control flow, non-standard gates or broadcasts), which "
            f"takes at most {limits.MAX_GENERAL_STATEMENTS} statements per circuit (limit "
            "--max-general-statements); send it as QPY instead"
        )
    # One at a time per process: concurrent imports would only share the GIL and slow every
    # other request of the process; a waiter gives up rather than hold a worker thread forever.
    if not _GENERAL_IMPORT_LOCK.acquire(timeout=4 * limits.GENERAL_IMPORT_BUDGET):
        raise WireFormatError(
            "the general OpenQASM 3 importer is busy with other programs; retry, or send the "
            "circuit as QPY"
        )
    try:
        deadline = time.thread_time() + limits.GENERAL_IMPORT_BUDGET
        return _qasm_import.import_antlr(text, renames, deadline=deadline)
    except _qasm_import.ImportBudgetExceeded:
        raise WireFormatError(
            f"the program took more than {limits.GENERAL_IMPORT_BUDGET:g} s to import (limit "
            "general_import_budget); send it as QPY instead"
        ) from None
    except Exception as exc:
        message = str(exc).strip() or type(exc).__name__
        raise WireFormatError(f"invalid OpenQASM 3 program: {message}") from exc
    finally:
        _GENERAL_IMPORT_LOCK.release()


def _import_uncached(text: str, num_qubits: int | None, nbytes: int) -> ImportedCircuit:
    body, statements = limits.check_source(text, nbytes)
    limits.check_declared_sizes(body, num_qubits)
    pragma = _PRAGMA_RE.search(text)
    renames: dict[str, str] = {}
    if pragma is not None:
        try:
            loaded = json.loads(pragma.group(1))
            if isinstance(loaded, dict):
                renames = {str(k): str(v) for k, v in loaded.items()}
        except ValueError:
            logger.debug("ignoring malformed register pragma")
    stripped = text.lstrip()
    if not stripped:
        raise WireFormatError("invalid OpenQASM program: the text is empty")
    hardware = False
    if stripped.startswith("OPENQASM 2") or stripped.startswith("OPENQASM2"):
        try:
            circuit = qasm2.loads(text, custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
        except Exception as exc:
            raise WireFormatError(f"invalid OpenQASM 2 program: {exc}") from exc
        parameters: tuple[Parameter, ...] = tuple(circuit.parameters)
        import_stats["qasm2"] += 1
    else:
        # flat reader (ISA texts, with inputs) > Rust importer (static texts) > ANTLR (anything)
        flat = _qasm_flat.import_flat(text)
        native = flat is None and statements <= limits.MAX_NATIVE_STATEMENTS
        fast = _qasm_import.import_fast(text) if native else None
        if flat is not None:
            circuit, parameters, hardware = flat
            if hardware:
                _qasm_import.set_trivial_layout(circuit)
            import_stats["flat"] += 1
        elif fast is not None:
            circuit, hardware = fast
            parameters = ()
            import_stats["fast"] += 1
        else:
            circuit, parameters = _import_general(text, renames, statements)
            hardware = circuit.layout is not None
            import_stats["antlr"] += 1
            renames = {}  # applied while reading
    if num_qubits is not None and circuit.num_qubits == 0 and _declares_no_qubits(text):
        # D4: a program that names no qubit at all runs on the backend's full width, as a
        # program on ``$n`` hardware qubits does (its observables then act on every qubit).
        hardware = True
        _qasm_import.set_trivial_layout(circuit)
    if num_qubits is not None:
        if circuit.num_qubits > num_qubits:
            raise WireFormatError(
                f"circuit uses {circuit.num_qubits} qubits but the backend has {num_qubits}"
            )
        if hardware:
            _qasm_import.pad_hardware_qubits(circuit, num_qubits)
    if renames:
        try:
            circuit = _rename_registers(circuit, renames)
        except Exception as exc:
            raise WireFormatError(f"invalid register pragma ({exc})") from exc
    return ImportedCircuit(circuit=circuit, parameters=parameters)


def import_qasm(text: str, *, num_qubits: int | None = None) -> ImportedCircuit:
    """Read an OpenQASM 3 (or 2) program into a circuit and its parameter binding order.

    Args:
        text: the program. ``$n`` hardware qubits keep their index; registers keep their names
            (a pragma written by :func:`export_qasm3` restores names the exporter had to change).
        num_qubits: the backend's width (D4). A program on ``$n`` qubits is padded to this
            width; any program wider than this is rejected.

    Returns:
        A fresh :class:`ImportedCircuit` (callers may mutate the circuit; the cache keeps its own).

    Raises:
        WireFormatError: the text is not a program we can read, or is too wide.
    """
    if not isinstance(text, str):
        raise WireFormatError(f"circuit: expected OpenQASM text, got {type(text).__name__}")
    data = text.encode("utf-8", "surrogatepass")
    scope = _SCOPE.get()
    if scope is not None:
        scope.total_bytes += len(data)
        if scope.total_bytes > scope.max_total_bytes:
            raise WireFormatError(
                f"the job's OpenQASM circuits total at least {scope.total_bytes} bytes; this "
                f"server accepts at most {scope.max_total_bytes} per job "
                "(--max-job-circuit-bytes)"
            )
    if len(data) > limits.MAX_CIRCUIT_BYTES:
        limits.check_source(text, len(data))  # raises, naming the limit, before hashing 4 MiB+
    nbytes = len(data)
    key = (hashlib.blake2b(data, digest_size=20).digest(), num_qubits)
    del data
    with _LOCK:
        entry = _IMPORT_CACHE.get(key)
        if entry is not None:
            _IMPORT_CACHE.move_to_end(key)
            import_stats["cache_hits"] += 1
    if entry is not None:
        hit = entry[0]
    else:
        if nbytes < limits.LARGE_IMPORT_BYTES:
            hit = _import_uncached(text, num_qubits, nbytes)
        else:
            if not _LARGE_IMPORT_LOCK.acquire(timeout=10.0):
                raise WireFormatError(
                    "the server is busy importing other large programs; retry, or send the "
                    "circuit as QPY"
                )
            try:
                hit = _import_uncached(text, num_qubits, nbytes)
            finally:
                _LARGE_IMPORT_LOCK.release()
        if scope is not None:
            scope.pending.append((key, hit))
        else:
            _remember(key, hit)
    return ImportedCircuit(circuit=hit.circuit.copy(), parameters=hit.parameters)


def clear_caches() -> None:
    """Forget every cached export and import (tests, benchmarks)."""
    global _cache_bytes
    with _LOCK:
        _EXPORT_CACHE.clear()
        _IMPORT_CACHE.clear()
        _cache_bytes = 0


# ----------------------------------------------------------------------------------------------
# Either form
# ----------------------------------------------------------------------------------------------
def decode_circuit(
    obj: Any, *, num_qubits: int | None = None, field: str = "circuit"
) -> ImportedCircuit:
    """Decode a PUB's circuit: OpenQASM text or the QPY wrapper.

    For QPY the binding order is ``circuit.parameters`` (what the official client sends).

    Raises:
        WireFormatError: naming ``field`` (e.g. ``pubs[0].circuit``).
    """
    if isinstance(obj, str):
        try:
            return import_qasm(obj, num_qubits=num_qubits)
        except WireFormatError as exc:
            raise WireFormatError(f"{field}: {exc}") from exc
    if isinstance(obj, dict) and obj.get("__type__") == "QuantumCircuit":
        circuit = decode_qpy(obj.get("__value__"), field)
        if num_qubits is not None and circuit.num_qubits > num_qubits:
            raise WireFormatError(
                f"{field}: circuit uses {circuit.num_qubits} qubits but the backend has "
                f"{num_qubits}"
            )
        return ImportedCircuit(circuit=circuit, parameters=tuple(circuit.parameters))
    raise WireFormatError(
        f"{field}: expected OpenQASM text or a QuantumCircuit wrapper, got {type(obj).__name__}"
    )
