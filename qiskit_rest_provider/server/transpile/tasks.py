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

from ...wire.limits import MAX_QPY_BYTES, MAX_QPY_CIRCUITS

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
    qpy_max_bytes: int = MAX_QPY_BYTES  # the inflate cap of the server that took the request

    def to_json(self) -> dict[str, Any]:
        """The request as stored with its task (everything but ``spec``, found again by name)."""
        return {
            "backend": self.backend,
            "optimization_level": self.optimization_level,
            "qasm_circuits": self.qasm_circuits,
            "qpy_circuits": self.qpy_circuits,
            "coupling_map": self.coupling_map,
            "options": self.options,
            "qpy_max_bytes": self.qpy_max_bytes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], spec: Any = None) -> TranspileRequest:
        """A stored request, with the catalog's ``spec`` of its backend."""
        return cls(
            backend=data.get("backend"),
            optimization_level=int(data.get("optimization_level", 3)),
            qasm_circuits=data.get("qasm_circuits"),
            qpy_circuits=data.get("qpy_circuits"),
            coupling_map=data.get("coupling_map"),
            options=dict(data.get("options") or {}),
            spec=spec,
            qpy_max_bytes=int(data.get("qpy_max_bytes") or MAX_QPY_BYTES),
        )


QPY_INFLATE_RATIO = 100
"""A compressed QPY input may inflate to at most this many times its own size ..."""
QPY_INFLATE_FLOOR = 4 << 20
"""... or this many bytes, whichever is larger; never beyond the server's limit
(``--max-transpile-qpy-bytes``, at most :data:`~qiskit_rest_provider.wire.limits.MAX_QPY_BYTES`)."""


def qpy_inflate_cap(compressed_bytes: int, server_limit: int) -> int:
    """How far a compressed QPY input of ``compressed_bytes`` may inflate."""
    return min(server_limit, max(QPY_INFLATE_FLOOR, QPY_INFLATE_RATIO * compressed_bytes))


def read_qpy_input(text: str, server_limit: int) -> bytes:
    """The plain QPY file of a ``qpy_circuits`` input (Base64 of QPY, zlib-compressed or not).

    A compressed input is inflated incrementally and stops at :func:`qpy_inflate_cap`: a zlib
    bomb costs at most that much memory, wherever it is read (the API process checks every input
    this way before queuing it, and the worker again).

    Raises:
        ValueError: naming ``qpy_circuits`` and the limit that was exceeded.
    """
    import zlib

    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise ValueError(f"qpy_circuits: not valid Base64: {exc}") from exc
    if raw.startswith(b"QISKIT"):
        if len(raw) > server_limit:
            raise ValueError(
                f"qpy_circuits: the QPY file is {len(raw)} bytes, more than this server's "
                f"limit of {server_limit} bytes (--max-transpile-qpy-bytes)"
            )
        return raw
    cap = qpy_inflate_cap(len(raw), server_limit)
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(raw, cap)
    except zlib.error as exc:
        raise ValueError(
            "qpy_circuits: the payload is neither QPY nor zlib-compressed QPY"
        ) from exc
    if inflater.unconsumed_tail or (not inflater.eof and inflater.decompress(b"", 1)):
        raise ValueError(
            f"qpy_circuits: the compressed QPY payload ({len(raw)} bytes) inflates beyond "
            f"{cap} bytes, the limit for it: {QPY_INFLATE_RATIO} times its size (at least "
            f"{QPY_INFLATE_FLOOR} bytes), at most this server's --max-transpile-qpy-bytes "
            f"({server_limit} bytes)"
        )
    if not inflater.eof:
        raise ValueError("qpy_circuits: the compressed QPY payload is truncated")
    return out


def count_qpy_circuits(raw: bytes) -> int:
    """Check a plain QPY file's headers (as the worker's reader does); its number of circuits.

    Raises:
        ValueError: naming ``qpy_circuits``.
    """
    from ...exceptions import WireFormatError
    from ...wire._qpy import _FILE_HEADER, _check_header

    try:
        _check_header(raw, "qpy_circuits", MAX_QPY_CIRCUITS)
    except WireFormatError as exc:
        raise ValueError(str(exc)) from exc
    return int(_FILE_HEADER.unpack_from(raw, 0)[5])


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
        raw = read_qpy_input(request.qpy_circuits, request.qpy_max_bytes)
        try:  # plain QPY now; every circuit header is checked before qpy.load
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


def run_stored_transpile(data: dict[str, Any], spec: Any) -> dict[str, Any]:
    """:func:`run_transpile` for a request as the job store keeps it (what the dispatcher runs)."""
    return run_transpile(TranspileRequest.from_json(data, spec))
