"""Server-side execution of one remote transpile request (runs in a worker process).

:func:`run_transpile` is a top-level, picklable function that the reference server submits to its
worker pool for ``POST /transpile``. It reads the circuits (OpenQASM 2/3 text, or a Base64 QPY
file), builds Qiskit's preset pass manager against the backend Target with the ``rest_provider``
translation stage, and returns per-circuit results in the transpiler-service form::

    {"qasm": "<OpenQASM 3>", "qpy": "<b64 QPY>" | None,
     "layout": {"initial": [...], "final": [...]}, "success": True}

``layout.initial[v]`` is the physical qubit that virtual qubit ``v`` starts on and
``layout.final[v]`` the physical qubit it ends on after routing, for every qubit of the output
(the circuit's own qubits first, then ancillas): Qiskit's ``initial_index_layout()`` and
``final_index_layout()`` with ``filter_ancillas=False``.

Nothing here raises for a bad request: problems come back as ``{"ok": False, "message": ...}``
so no exception class has to survive pickling.
"""

from __future__ import annotations

import base64
import functools
import io
import logging
import time
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_BASIS = ("cz", "id", "rz", "sx", "x")
"""Basis used when a request gives only a coupling map (the built-in devices' basis)."""

TRANSPILE_OPTIONS = frozenset(
    {
        "approximation_degree",
        "initial_layout",
        "layout_method",
        "routing_method",
        "translation_method",
        "scheduling_method",
        "optimization_method",
        "init_method",
        "seed_transpiler",
        "unitary_synthesis_method",
        "unitary_synthesis_plugin_config",
        "qubits_initially_zero",
        "basis_gates",
        "optimization_level",
    }
)
"""``qiskit_transpile_options`` keys the service accepts (those of
:func:`~qiskit.transpiler.generate_preset_pass_manager` that make sense over the wire)."""


_STAGE_OPTIONS = {
    "init_method": "init",
    "layout_method": "layout",
    "routing_method": "routing",
    "translation_method": "translation",
    "optimization_method": "optimization",
    "scheduling_method": "scheduling",
}


@functools.cache
def _stage_plugins(stage: str) -> frozenset[str]:
    from qiskit.transpiler.preset_passmanagers.plugin import list_stage_plugins

    return frozenset(list_stage_plugins(stage))


def _option_error(name: str, message: str) -> ValueError:
    return ValueError(f"qiskit_transpile_options.{name}: {message}")


def check_option_values(options: dict[str, Any]) -> None:
    """Reject ``qiskit_transpile_options`` values that are knowably wrong, before queuing.

    Raises:
        ValueError: naming the option (``qiskit_transpile_options.layout_method: ...``).
    """
    for name, stage in _STAGE_OPTIONS.items():
        value = options.get(name)
        if value is None:
            continue
        plugins = _stage_plugins(stage)
        if not isinstance(value, str) or value not in plugins:
            raise _option_error(name, f"{value!r} is not one of {sorted(plugins)}")
    seed = options.get("seed_transpiler")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < -1):
        raise _option_error("seed_transpiler", f"expected an integer, got {seed!r}")
    layout = options.get("initial_layout")
    if layout is not None and (
        not isinstance(layout, list)
        or not all(isinstance(q, int) and not isinstance(q, bool) and q >= 0 for q in layout)
        or len(set(layout)) != len(layout)
    ):
        raise _option_error("initial_layout", "expected a list of distinct physical qubit indices")
    degree = options.get("approximation_degree")
    if degree is not None and (
        isinstance(degree, bool) or not isinstance(degree, (int, float)) or not 0 <= degree <= 1
    ):
        raise _option_error("approximation_degree", f"expected a number in [0, 1], got {degree!r}")
    basis = options.get("basis_gates")
    if basis is not None and (
        not isinstance(basis, list) or not all(isinstance(g, str) for g in basis)
    ):
        raise _option_error("basis_gates", "expected a list of gate names")


@dataclass
class TranspileRequest:
    """What a worker needs to transpile one request (plain data, picklable)."""

    backend: str | None
    optimization_level: int
    qasm_circuits: list[str] | None = None
    qpy_circuits: str | None = None
    coupling_map: list[list[int]] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    spec: Any = None  # the catalog BackendSpec (its Target is cached per process by content)


def _load(request: TranspileRequest) -> list[tuple[str, Any]]:
    """Read the request's circuits as ``(field name, circuit)`` pairs."""
    from ...exceptions import WireFormatError
    from ...wire._qpy import load_qpy_circuits
    from ...wire.circuits import import_qasm

    circuits = []
    for index, text in enumerate(request.qasm_circuits or ()):
        try:
            circuits.append((f"qasm_circuits[{index}]", import_qasm(text).circuit))
        except WireFormatError as exc:
            raise ValueError(f"qasm_circuits[{index}]: {exc}") from exc
    if request.qpy_circuits:
        try:
            raw = base64.b64decode(request.qpy_circuits, validate=True)
        except ValueError as exc:
            raise ValueError(f"qpy_circuits: not valid Base64: {exc}") from exc
        try:  # zlib or plain QPY, inflated within MAX_QPY_BYTES, headers checked first
            loaded = load_qpy_circuits(raw, "qpy_circuits")
        except WireFormatError as exc:
            raise ValueError(str(exc)) from exc
        circuits.extend((f"qpy_circuits[{i}]", circuit) for i, circuit in enumerate(loaded))
    if not circuits:
        raise ValueError("no circuits: give qasm_circuits or qpy_circuits")
    return circuits


def _pass_manager(request: TranspileRequest, target: Any) -> Any:
    from qiskit.transpiler import CouplingMap, generate_preset_pass_manager

    options = dict(request.options)
    level = int(options.pop("optimization_level", request.optimization_level))
    options.setdefault("translation_method", "rest_provider")
    if request.coupling_map:
        coupling_map = CouplingMap(couplinglist=[tuple(edge) for edge in request.coupling_map])
        basis = options.pop("basis_gates", None)
        if basis is None:
            basis = (
                [n for n in target.operation_names if target.operation_from_name(n).num_qubits]
                if target is not None
                else list(DEFAULT_BASIS)
            )
        return generate_preset_pass_manager(
            level, basis_gates=basis, coupling_map=coupling_map, **options
        )
    options.pop("basis_gates", None)  # the backend Target decides
    return generate_preset_pass_manager(level, target=target, **options)


def _layout(circuit: Any) -> dict[str, list[int]]:
    layout = circuit.layout
    if layout is None:
        identity = list(range(circuit.num_qubits))
        return {"initial": identity, "final": list(identity)}
    return {
        "initial": [int(q) for q in layout.initial_index_layout(filter_ancillas=False)],
        "final": [int(q) for q in layout.final_index_layout(filter_ancillas=False)],
    }


def _qpy_b64(circuit: Any) -> str:
    from qiskit import qpy

    from ...wire.circuits import QPY_MAX_VERSION

    buffer = io.BytesIO()
    version = min(QPY_MAX_VERSION, qpy.QPY_VERSION)
    qpy.dump(circuit, buffer, version=version)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def transpile_circuits(request: TranspileRequest, target: Any) -> list[dict[str, Any]]:
    """Transpile the request's circuits for ``target``; raise ``ValueError`` for bad input."""
    from ...transpiler.passes import unsupported_instructions
    from ...wire.circuits import export_qasm3

    named = _load(request)
    width = target.num_qubits if target is not None and not request.coupling_map else None
    if request.coupling_map:
        width = 1 + max(max(edge) for edge in request.coupling_map)
    for name, circuit in named:
        if width is not None and circuit.num_qubits > width:
            where = f"backend {request.backend}" if not request.coupling_map else "coupling_map"
            raise ValueError(
                f"{name}: the circuit has {circuit.num_qubits} qubits but {where} has {width}"
            )
    circuits = [circuit for _name, circuit in named]
    try:
        pm = _pass_manager(request, target)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"qiskit_transpile_options: {exc}") from exc
    outputs = pm.run(circuits, num_processes=1)  # workers are daemons: no nested pools
    results = []
    for output in outputs:
        item: dict[str, Any] = {
            "qasm": export_qasm3(output).text,
            "qpy": _qpy_b64(output) if request.qpy_circuits else None,
            "layout": _layout(output),
            "success": True,
        }
        if target is not None and not request.coupling_map:
            rejected = unsupported_instructions(target, output)
            if rejected:
                item["warnings"] = [
                    f"the backend Target does not accept {name} on qubits {list(qubits)}"
                    for name, qubits in rejected[:10]
                ]
        results.append(item)
    return results


def run_transpile(request: TranspileRequest) -> dict[str, Any]:
    """Transpile one request in a worker.

    Returns:
        ``{"ok": True, "result": [...], "seconds": s}`` or ``{"ok": False, "message": "..."}``.
    """
    started = time.perf_counter()
    try:
        target = None
        if request.backend is not None:
            spec = request.spec  # the route sends the catalog's BackendSpec with the task
            if spec is None:
                return {
                    "ok": False,
                    "message": f"backend: no calibration data for {request.backend!r}",
                }
            target = spec.target
        result = transpile_circuits(request, target)
    except Exception as exc:  # noqa: BLE001 - every failure becomes the task's message
        logger.info("transpile task failed: %s: %s", type(exc).__name__, exc)
        message = str(exc) or type(exc).__name__
        if not isinstance(exc, ValueError):
            message = f"{type(exc).__name__}: {message}"
        return {"ok": False, "message": message}
    return {"ok": True, "result": result, "seconds": time.perf_counter() - started}
