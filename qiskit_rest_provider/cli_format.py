"""How the client commands show things: tables, backend summaries, job details, results.

Pure formatting over plain dicts and Qiskit objects (no requests): kept apart from
:mod:`qiskit_rest_provider.cli_client`, which talks to the service.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

_CONTROL_FLOW = frozenset({"if_else", "while_loop", "for_loop", "switch_case", "box"})
_NOT_BASIS = frozenset({"measure", "delay"})


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], out: TextIO) -> None:
    """Print ``rows`` as left-aligned columns under ``headers`` (``-`` for empty cells)."""
    cells = [[("-" if v is None or v == "" else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*headers).rstrip(), file=out)
    for row in cells:
        print(line.format(*row).rstrip(), file=out)


def dump_json(obj: Any, out: TextIO) -> None:
    """Print ``obj`` as indented JSON (what ``--json`` gives, stable key order for scripts)."""
    json.dump(obj, out, indent=2, sort_keys=True, default=str)
    out.write("\n")


def status_name(status: Any) -> str | None:
    """A backend status as one word (the listing gives ``{"name": ...}`` or a plain string)."""
    if isinstance(status, dict):
        return status.get("name")
    return status if isinstance(status, str) else None


def job_state(doc: dict[str, Any]) -> str:
    """A job document's state (``state.status``, else the older flat ``status``)."""
    state = doc.get("state")
    if isinstance(state, dict) and state.get("status"):
        return str(state["status"])
    return str(doc.get("status") or state or "?")


def median(values: Iterable[float | None]) -> float | None:
    """Median of the known values (calibration data may lack some), ``None`` if none are."""
    kept = [float(v) for v in values if v is not None]
    return statistics.median(kept) if kept else None


def fmt(value: float | None, scale: float = 1.0, unit: str = "", digits: int = 3) -> str:
    """``value * scale`` to ``digits`` significant digits with ``unit``, or ``-`` if unknown."""
    if value is None:
        return "-"
    return f"{value * scale:.{digits}g}{unit}"


def backend_summary(backend: Any) -> dict[str, Any]:
    """Qubits, basis gates, coupling and median calibration figures of a backend's Target.

    Errors are probabilities; T1/T2 are in seconds (as Qiskit's ``QubitProperties`` keep them).
    """
    target = backend.target
    one_q: list[float | None] = []
    two_q: list[float | None] = []
    readout: list[float | None] = []
    edges: set[tuple[int, ...]] = set()
    for name in target.operation_names:
        props = target[name]
        for qargs, inst_props in props.items():
            if qargs is None or inst_props is None:
                continue
            if name == "measure":
                readout.append(inst_props.error)
            elif len(qargs) == 1 and name not in ("delay", "reset"):
                one_q.append(inst_props.error)
            elif len(qargs) == 2:
                two_q.append(inst_props.error)
                edges.add(tuple(sorted(qargs)))
    qubit_props = target.qubit_properties or []
    status = backend.listing.get("status")
    return {
        "name": backend.name,
        "num_qubits": target.num_qubits,
        "simulator": backend.simulator,
        "status": status_name(status),
        "queue_length": backend.listing.get("queue_length"),
        "basis_gates": sorted(
            n for n in target.operation_names if n not in _NOT_BASIS and n not in _CONTROL_FLOW
        ),
        "control_flow": sorted(n for n in target.operation_names if n in _CONTROL_FLOW),
        "coupled_pairs": len(edges),
        "median_1q_error": median(one_q),
        "median_2q_error": median(two_q),
        "median_readout_error": median(readout),
        "median_t1_s": median(getattr(q, "t1", None) for q in qubit_props if q is not None),
        "median_t2_s": median(getattr(q, "t2", None) for q in qubit_props if q is not None),
        "dt_s": target.dt,
        "max_shots": backend.max_shots,
    }


def print_job(doc: dict[str, Any], metrics: dict[str, Any], out: TextIO) -> None:
    """Print a job's details as ``Key: value`` lines (``-`` for what the service left empty)."""
    stamps = metrics.get("timestamps") or {}
    usage = metrics.get("usage") or {}
    raw_state = doc.get("state")
    state: dict[str, Any] = raw_state if isinstance(raw_state, dict) else {}
    program = doc.get("program")
    lines: list[tuple[str, Any]] = [
        ("Job", doc.get("id")),
        ("State", job_state(doc)),
    ]
    if state.get("reason"):
        code = state.get("reason_code")
        lines.append(("Reason", f"{state['reason']}" + (f" (code {code})" if code else "")))
    lines += [
        ("Backend", doc.get("backend")),
        ("Program", program.get("id") if isinstance(program, dict) else doc.get("program_id")),
        ("Session", doc.get("session_id")),
        ("Tags", ", ".join(doc.get("tags") or []) or None),
        ("Created", stamps.get("created") or doc.get("created")),
        ("Running since", stamps.get("running")),
        ("Finished", stamps.get("finished")),
    ]
    if metrics.get("position_in_queue") is not None:
        lines.append(("Queue position", metrics["position_in_queue"]))
    seconds = usage.get("seconds", (doc.get("usage") or {}).get("seconds"))
    if seconds is not None:
        lines.append(("Usage", f"{float(seconds):.3f} s"))
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key + ':':<{width + 1}} {'-' if value in (None, '') else value}", file=out)


def array_text(values: Any) -> str:
    """A short text of an array (4 digits, elided past 12 values) for result summaries."""
    import numpy as np

    return np.array2string(np.asarray(values), precision=4, threshold=12, separator=", ")


def result_summary(result: Any) -> list[str]:
    """Lines describing a ``PrimitiveResult``: counts per register, or evs and stds."""
    lines: list[str] = []
    for index, pub in enumerate(result):
        data = pub.data
        if hasattr(data, "evs"):
            lines.append(f"PUB {index}: evs {array_text(data.evs)}")
            if hasattr(data, "stds"):
                lines.append(f"        stds {array_text(data.stds)}")
            continue
        for name in data.keys():
            bits = data[name]
            if not hasattr(bits, "get_counts"):
                lines.append(f"PUB {index}: {name} = {array_text(bits)}")
                continue
            counts = bits.get_counts()
            top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:8]
            more = f" (+{len(counts) - len(top)} more outcomes)" if len(counts) > len(top) else ""
            shown = ", ".join(f"{k}: {v}" for k, v in top)
            lines.append(
                f"PUB {index}: {name}: {bits.num_shots} shots, {bits.num_bits} bits; {shown}{more}"
            )
    return lines
