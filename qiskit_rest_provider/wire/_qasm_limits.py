"""Structural limits on OpenQASM text, checked before any reader runs (internal).

Part of :mod:`qiskit_rest_provider.wire.circuits` (issue 15): a few cheap passes over the text —
its size, its statements, the operators in each statement, the iterations its ``for`` loops
declare, its register sizes — decide whether a program may be parsed at all, so that no request
can make an importer spend seconds of the API process's CPU, gigabytes of memory, or overflow a
stack. Each refusal is a :class:`~qiskit_rest_provider.exceptions.WireFormatError` naming the
limit (and the ``serve`` flag where there is one). ``serve`` passes its flags to its worker
processes through :data:`LIMIT_ENV`.
"""

from __future__ import annotations

import logging
import os
import re

import numpy as np

from ..exceptions import WireFormatError
from .limits import MAX_CLBITS, MAX_QUBITS

__all__ = ["LIMIT_ENV", "check_declared_sizes", "check_source", "limits_from_env"]

logger = logging.getLogger(__name__)

MAX_CIRCUIT_BYTES = 4 << 20
"""Most bytes of OpenQASM text one circuit may have (checked before anything is parsed)."""

MAX_JOB_CIRCUIT_BYTES = 16 << 20
"""Most bytes of OpenQASM text all circuits of one job may have together (see
:func:`~qiskit_rest_provider.wire.circuits.admission_imports`)."""

MAX_STATEMENTS = 300_000
"""Most statements (``;``) one program may have; the flat reader takes ~9 us each."""

MAX_GENERAL_STATEMENTS = 2_000
"""Most statements a program may have when it needs the general (ANTLR) importer at admission
(inside :func:`~qiskit_rest_provider.wire.circuits.admission_imports`, i.e. in the API process).

That importer costs about 1 ms of the process's CPU (and GIL) per statement: a 583 KiB program of
custom-gate calls took 31-34 s and made every other request of the API process slow (issue 15).
Flat ISA programs and static ``stdgates.inc`` programs take the fast readers and are not bound by
this; anything else (control flow, non-standard gate definitions) of this size can be sent as QPY.
"""

MAX_STATEMENT_OPERATORS = 1_000
"""Most operators and opening brackets (``+-*/%^~!<>&|({``) one statement may hold.

Qiskit's Rust importer overflows its stack (the process dies with SIGSEGV) on one expression of
~10,000 terms, a 20 KiB request; the other importers recurse too.
"""

MAX_LOOP_ITERATIONS = 100_000
"""Most iterations the ``for`` loops of one program may declare, summed over its loops."""

MAX_NATIVE_STATEMENTS = 20_000
"""Most statements a program may have for Qiskit's Rust importer (the reader of static programs
outside the flat subset, e.g. register broadcasts): it holds ~3 KiB per statement while it reads."""

LARGE_IMPORT_BYTES = 64 << 10
"""Programs from this size on are imported one at a time per process (they only share the GIL
otherwise, and every other request of the process waits with them)."""

GENERAL_IMPORT_BUDGET = 2.0
"""Seconds of CPU time one import through the general (ANTLR) importer may take at admission."""

LIMIT_ENV = {
    "MAX_CIRCUIT_BYTES": "QISKIT_REST_MAX_CIRCUIT_BYTES",
    "MAX_JOB_CIRCUIT_BYTES": "QISKIT_REST_MAX_JOB_CIRCUIT_BYTES",
    "MAX_GENERAL_STATEMENTS": "QISKIT_REST_MAX_GENERAL_STATEMENTS",
}
"""Environment variables overriding the limits above (``serve`` sets them from its flags, so its
worker processes, which import the stored circuits again, apply the same limits)."""


def limits_from_env() -> None:
    """Apply the :data:`LIMIT_ENV` variables set in this process (also run at import)."""
    for name, variable in LIMIT_ENV.items():
        value = os.environ.get(variable, "").strip()
        if value:
            try:
                globals()[name] = max(1, int(value))
            except ValueError:
                logger.warning("ignoring %s=%r: not an integer", variable, value)


limits_from_env()

COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
HARDWARE_QUBIT = re.compile(r"\$(\d+)")
_SIZED_DECL = re.compile(r"\b(qubit|bit|qreg|creg)\b\s*(?:[A-Za-z_]\w*\s*)?\[([^\]]*)\]")
_OPERATOR_BYTES = np.zeros(256, dtype=bool)
_OPERATOR_BYTES[list(b"+-*/%^~!<>&|({")] = True
_FOR_RANGE = re.compile(r"\bfor\b[^;{]*?\bin\s*\[\s*([^\]:]*):\s*([^\]:]*)(?::\s*([^\]:]*))?\]")


def check_source(text: str, nbytes: int) -> tuple[str, int]:
    """Cheap structural checks before any parser runs.

    Returns the text with comments blanked out and its number of statements.

    Raises:
        WireFormatError: naming the limit.
    """
    if nbytes > MAX_CIRCUIT_BYTES:
        raise WireFormatError(
            f"the program is {nbytes} bytes; this server accepts at most {MAX_CIRCUIT_BYTES} "
            "bytes of OpenQASM per circuit (--max-circuit-bytes)"
        )
    body = COMMENT.sub(" ", text)
    data = np.frombuffer(body.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    ends = np.flatnonzero(data == ord(";"))
    statements = int(ends.size)
    if statements > MAX_STATEMENTS:
        raise WireFormatError(
            f"the program has {statements} statements; at most {MAX_STATEMENTS} are allowed "
            "per circuit (max_statements)"
        )
    operators = np.flatnonzero(_OPERATOR_BYTES[data])
    if operators.size > MAX_STATEMENT_OPERATORS:
        per_statement = np.bincount(np.searchsorted(ends, operators))
        worst = int(per_statement.max())
        if worst > MAX_STATEMENT_OPERATORS:
            raise WireFormatError(
                f"a statement of the program holds {worst} operators and brackets; at most "
                f"{MAX_STATEMENT_OPERATORS} are allowed per statement (nesting limit)"
            )
    iterations = 0
    for match in _FOR_RANGE.finditer(body):
        bounds = [_integer_literal(g) if g is not None else None for g in match.groups()]
        start, second, third = bounds
        if start is None or second is None or (match.group(3) is not None and third is None):
            raise WireFormatError("for-loop ranges must be integer literals")
        step, stop = (1, second) if third is None else (second, third)
        count = 0 if step == 0 else max(0, (stop - start) // step + 1)
        iterations += count
    if iterations > MAX_LOOP_ITERATIONS:
        raise WireFormatError(
            f"the program's for loops declare {iterations} iterations; at most "
            f"{MAX_LOOP_ITERATIONS} are allowed per circuit (max_loop_iterations)"
        )
    return body, statements


def check_declared_sizes(body: str, num_qubits: int | None) -> None:
    """Reject programs whose declarations alone would exhaust memory, before parsing them.

    ``body`` is the program with its comments blanked out.
    """
    qubits = clbits = 0
    for kind, raw in _SIZED_DECL.findall(body):
        size = _integer_literal(raw)
        if size is None:
            raise WireFormatError(
                f"{kind} register sizes must be integer literals, got [{raw.strip()[:40]}]"
            )
        if kind in ("qubit", "qreg"):
            qubits += size
        else:
            clbits += size
    limit = MAX_QUBITS if num_qubits is None else num_qubits
    bound = f"at most {limit} are allowed" if num_qubits is None else f"the backend has {limit}"
    if qubits > limit:
        raise WireFormatError(f"the program declares {qubits} qubits but {bound}")
    if clbits > MAX_CLBITS:
        raise WireFormatError(
            f"the program declares {clbits} classical bits; at most {MAX_CLBITS} are allowed"
        )
    hardware = [int(index) for index in HARDWARE_QUBIT.findall(body)]
    if hardware and max(hardware) >= limit:
        raise WireFormatError(
            f"the program uses hardware qubit ${max(hardware)} but {bound} qubits"
        )


def _integer_literal(raw: str) -> int | None:
    """An OpenQASM integer literal (decimal, hex, octal, binary, with ``_``), else ``None``."""
    text = raw.strip().replace("_", "")
    try:
        return int(text, 10) if text.isdigit() else int(text, 0)
    except ValueError:
        return None
