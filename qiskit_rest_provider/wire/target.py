"""Build a Qiskit :class:`~qiskit.transpiler.Target` from IBM-format backend data.

A service speaking the Qiskit Runtime REST API describes each backend by two JSON documents
(protocol §3.3–3.4): ``GET backends/{name}/configuration`` (a legacy ``QasmBackendConfiguration``
dict) and ``GET backends/{name}/properties`` (calibration data as dated "Nduv" records). Both the
client (``RestBackend.target``) and the reference server (ISA checks, noise models) turn them
into a :class:`~qiskit.transpiler.Target` with :func:`target_from_backend_data`.

The rules match what qiskit-ibm-runtime's ``convert_to_target`` produces for the same data (a
test compares both over every snapshot of its fake provider), so a circuit transpiled against our
Target is valid on the real service and vice versa:

* every gate of ``basis_gates`` is available exactly on the qargs the properties list for it, with
  ``InstructionProperties(error=gate_error, duration=gate_length)``; a gate with no properties is
  available on its configuration ``coupling_map`` if it has one, otherwise on every qargs;
* ``measure`` takes its error and duration from each qubit's ``readout_error``/``readout_length``;
* ``reset``/``delay`` (from ``supported_instructions``) are available on every qubit;
* control flow (``if_else``, ``while_loop``, ``for_loop``, ``switch_case``) comes from
  ``supported_instructions``;
* ``QubitProperties(t1=T1, t2=T2, frequency=frequency)`` per qubit;
* qubits and gates marked ``operational: 0`` are left out (unless ``include_faulty``);
* units carry SI prefixes on the wire (``ns``, ``us``/``µs``, ``GHz``) and are converted to SI
  (seconds, Hz); the configuration's ``dt`` is in nanoseconds;
* ``rzz`` gets the angle bounds ``[0, π/2]`` that IBM's fractional ``rzz`` accepts;
* names that are neither standard Qiskit gates nor control flow become opaque instructions when
  ``instruction_signatures`` or ``gates`` describe them (e.g. ``measure_2``), otherwise they are
  skipped with a :class:`RuntimeWarning`.

Fractional gates (``rx``, ``rzz`` ...): qiskit-ibm-runtime drops them unless the user passes
``use_fractional_gates=True`` because IBM's compiler cannot mix them with dynamic circuits. Our
reference server simulates both together, so by default we keep whatever the configuration lists
(``include_fractional_gates=True``, the same choice its fake backends make); pass ``False`` to get
IBM's default filtering.

The function is pure (no I/O, inputs are not modified).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from qiskit.circuit import Delay, Gate, Instruction, Parameter
from qiskit.circuit.controlflow import ForLoopOp, IfElseOp, SwitchCaseOp, WhileLoopOp
from qiskit.circuit.library import PhaseGate, RZGate, U1Gate
from qiskit.circuit.library.standard_gates import get_standard_gate_name_mapping
from qiskit.providers.backend import QubitProperties
from qiskit.transpiler import InstructionProperties, Target
from qiskit.utils.units import apply_prefix

from ..exceptions import InvalidInputError

__all__ = ["target_from_backend_data", "NON_UNITARY_INSTRUCTIONS", "CONTROL_FLOW_INSTRUCTIONS"]

logger = logging.getLogger(__name__)

NON_UNITARY_INSTRUCTIONS = frozenset(("measure", "delay", "reset"))
"""Non-unitary ISA instructions a backend may list in ``supported_instructions``."""

CONTROL_FLOW_INSTRUCTIONS: Mapping[str, type[Instruction]] = {
    "if_else": IfElseOp,
    "while_loop": WhileLoopOp,
    "for_loop": ForLoopOp,
    "switch_case": SwitchCaseOp,
}
"""Control-flow names of ``supported_instructions`` and the Qiskit classes they stand for."""

_DEFAULT_SUPPORTED = ("measure", "reset", "delay")
_TIMING_KEYS = ("granularity", "min_length", "pulse_alignment", "acquire_alignment")
_RZZ_ANGLE_BOUNDS = [(0.0, math.pi / 2)]

# A per-qargs dict of properties; ``None`` as the whole value means "global" (any qargs).
_QargsMap = dict[tuple[int, ...], InstructionProperties | None]


def _is_fractional(gate: Instruction) -> bool:
    """Whether IBM treats ``gate`` as a fractional gate (a continuous angle with a real duration).

    Virtual-Z style gates (``rz``, ``p``, ``u1``) and ``delay`` take parameters but cost nothing
    on hardware, so they are not fractional.
    """
    return bool(gate.params) and not isinstance(gate, (RZGate, PhaseGate, U1Gate, Delay))


def _si(value: Any, unit: str | None, where: str) -> float | None:
    """Convert a wire value with an SI-prefixed unit (``ns``, ``us``, ``GHz``) to SI units.

    Uses Qiskit's :func:`~qiskit.utils.units.apply_prefix` so the floats are bit-identical to
    what qiskit-ibm-runtime computes. An unknown prefix is logged and the value dropped: a value
    whose scale is unknown is worse than a missing one.
    """
    if value is None:
        return None
    try:
        return apply_prefix(value, unit or "")
    except (ValueError, TypeError):
        logger.warning("Ignoring %s: cannot convert value %r with unit %r", where, value, unit)
        return None


def _nduv_map(nduvs: Iterable[Any], where: str) -> dict[str, float | None]:
    """Turn a list of ``{"name", "unit", "value", "date"}`` records into ``{name: SI value}``."""
    out: dict[str, float | None] = {}
    for nduv in nduvs or ():
        if not isinstance(nduv, Mapping) or "name" not in nduv:
            continue
        name = nduv["name"]
        out[name] = _si(nduv.get("value"), nduv.get("unit"), f"{where} {name}")
    return out


def _operational(values: Mapping[str, float | None]) -> bool:
    """Whether an item is operational: only an explicit ``operational`` value of 0 says no."""
    flag = values.get("operational")
    return True if flag is None else bool(flag)


def _parse_properties(
    properties: Mapping[str, Any], num_qubits: int
) -> tuple[list[dict[str, float | None] | None], dict[str, dict[tuple[int, ...], dict]]]:
    """Index the properties document: per-qubit values and ``{gate: {qargs: values}}``.

    Qubits without any record get ``None``. Later gate records for the same ``(gate, qargs)``
    replace earlier ones, as in qiskit-ibm-runtime.
    """
    qubits: list[dict[str, float | None] | None] = [None] * num_qubits
    for index, nduvs in enumerate(properties.get("qubits") or ()):
        if index >= num_qubits:
            logger.warning("Properties list more than n_qubits=%d qubits; ignored", num_qubits)
            break
        if nduvs:
            qubits[index] = _nduv_map(nduvs, f"qubits[{index}]")
    gates: dict[str, dict[tuple[int, ...], dict]] = {}
    for entry in properties.get("gates") or ():
        if not isinstance(entry, Mapping) or "gate" not in entry:
            continue
        qargs = tuple(int(q) for q in entry.get("qubits") or ())
        gates.setdefault(entry["gate"], {})[qargs] = _nduv_map(
            entry.get("parameters") or (), f"gate {entry.get('name', entry['gate'])}"
        )
    return qubits, gates


def _instruction_objects(
    configuration: Mapping[str, Any],
    names: set[str],
    *,
    include_control_flow: bool,
    include_fractional_gates: bool,
    custom_name_mapping: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Resolve each instruction name to the Qiskit object (or control-flow class) to add.

    Names that cannot be resolved are removed from ``names`` (in place), with a warning for names
    nobody describes.
    """
    mapping: dict[str, Any] = get_standard_gate_name_mapping()
    if custom_name_mapping:
        mapping.update(custom_name_mapping)
    gate_configs = {g["name"]: g for g in configuration.get("gates") or () if "name" in g}
    objects: dict[str, Any] = {}
    for name in sorted(names):
        if name in CONTROL_FLOW_INSTRUCTIONS:
            if include_control_flow:
                objects[name] = CONTROL_FLOW_INSTRUCTIONS[name]
            else:
                logger.info("Control flow %s excluded from the Target", name)
                names.discard(name)
        elif name in mapping:
            if not include_fractional_gates and _is_fractional(mapping[name]):
                logger.info("Fractional gate %s excluded from the Target", name)
                names.discard(name)
            else:
                objects[name] = mapping[name]
        elif name in gate_configs:
            # Only a QASM opcode is known: an opaque gate whose width comes from its coupling map.
            config = gate_configs[name]
            coupling = config.get("coupling_map") or []
            objects[name] = Gate(
                name=name,
                num_qubits=len(coupling[0]) if coupling else 0,
                params=[Parameter(p) for p in config.get("parameters") or ()],
            )
        else:
            warnings.warn(
                f"No definition for instruction {name!r} in the backend data; it is left out of "
                "the Target. Pass custom_name_mapping to provide one.",
                RuntimeWarning,
                stacklevel=3,
            )
            names.discard(name)
    for signature in configuration.get("instruction_signatures") or ():
        name = signature.get("name")
        if not name:
            continue
        objects[name] = Instruction(
            name=name,
            num_qubits=int(signature.get("num_qubits") or 0),
            num_clbits=int(signature.get("num_clbits") or 0),
            params=[Parameter(p) for p in signature.get("parameters") or ()],
        )
        names.add(name)
    return objects


def target_from_backend_data(
    configuration: Mapping[str, Any],
    properties: Mapping[str, Any] | None = None,
    *,
    include_faulty: bool = False,
    include_control_flow: bool = True,
    include_fractional_gates: bool = True,
    custom_name_mapping: Mapping[str, Any] | None = None,
    add_delay: bool = True,
) -> Target:
    """Build the :class:`~qiskit.transpiler.Target` described by a backend's JSON documents.

    Args:
        configuration: IBM-format configuration dict (``GET backends/{name}/configuration``);
            ``n_qubits`` is required, ``dt`` is in nanoseconds.
        properties: IBM-format properties dict (``GET backends/{name}/properties``), or ``None``
            for a backend without calibration data (an ideal simulator): then every instruction is
            ideal and global, or pinned to its configuration ``coupling_map``.
        include_faulty: keep qubits and gates whose ``operational`` Nduv is 0 (default: drop them,
            so the transpiler never routes through them).
        include_control_flow: keep ``if_else``/``while_loop``/``for_loop``/``switch_case``.
        include_fractional_gates: keep gates with a continuous angle and a real duration (``rx``,
            ``rzz``). IBM's client drops them by default; we keep what the service lists.
        custom_name_mapping: extra ``{name: Instruction}`` for non-standard names.
        add_delay: include ``delay`` when the backend supports it.

    Returns:
        A new Target (``dt`` and durations in seconds, frequencies in Hz).

    Raises:
        InvalidInputError: (a ``ValueError``) the configuration has no valid ``n_qubits``.

    Example:
        >>> conf = {"n_qubits": 2, "basis_gates": ["cz", "sx", "rz"], "gates": [],
        ...         "coupling_map": [[0, 1]], "dt": 0.5}
        >>> target = target_from_backend_data(conf)
        >>> sorted(target.operation_names)
        ['cz', 'delay', 'measure', 'reset', 'rz', 'sx']
    """
    num_qubits = configuration.get("n_qubits", configuration.get("num_qubits"))
    if not isinstance(num_qubits, int) or isinstance(num_qubits, bool) or num_qubits < 0:
        raise InvalidInputError(
            f"configuration.n_qubits must be a non-negative integer, got {num_qubits!r}"
        )
    filter_faulty = not include_faulty

    target_kwargs: dict[str, Any] = {"num_qubits": num_qubits}
    if configuration.get("dt") is not None:
        target_kwargs["dt"] = configuration["dt"] * 1e-9
    timing = configuration.get("timing_constraints")
    if isinstance(timing, Mapping):
        for key, value in timing.items():
            if key in _TIMING_KEYS:
                target_kwargs[key] = value
            else:
                logger.warning("Ignoring unknown timing constraint %r", key)

    basis_gates = set(configuration.get("basis_gates") or ())
    supported = set(configuration.get("supported_instructions") or _DEFAULT_SUPPORTED)
    names = (
        basis_gates
        | (supported & NON_UNITARY_INSTRUCTIONS)
        | (supported & set(CONTROL_FLOW_INSTRUCTIONS))
    )
    objects = _instruction_objects(
        configuration,
        names,
        include_control_flow=include_control_flow,
        include_fractional_gates=include_fractional_gates,
        custom_name_mapping=custom_name_mapping,
    )

    # qargs maps: None = global; a dict pins the instruction to those qargs.
    qargs_maps: dict[str, _QargsMap | None] = dict.fromkeys(names)
    for gate_config in configuration.get("gates") or ():
        name = gate_config.get("name")
        coupling = gate_config.get("coupling_map")
        if name in qargs_maps and coupling:
            qargs_maps[name] = dict.fromkeys(tuple(int(q) for q in qargs) for qargs in coupling)

    faulty_qubits: set[int] = set()
    if properties is not None:
        qubit_values, gate_values = _parse_properties(properties, num_qubits)
        faulty_qubits = {
            q for q, values in enumerate(qubit_values) if values and not _operational(values)
        }
        qubit_props = []
        for values in qubit_values:
            values = values or {}
            qubit_props.append(
                QubitProperties(
                    t1=values.get("T1"), t2=values.get("T2"), frequency=values.get("frequency")
                )
            )
        target_kwargs["qubit_properties"] = qubit_props

        for name in names:
            for qargs, values in gate_values.get(name, {}).items():
                current = qargs_maps[name]
                faulty = faulty_qubits.intersection(qargs) or not _operational(values)
                if current is None:
                    # Calibrated gates exist only where calibrated (never global once listed).
                    current = qargs_maps[name] = {}
                if filter_faulty and faulty:
                    current.pop(qargs, None)
                    continue
                current[qargs] = InstructionProperties(
                    error=values.get("gate_error"), duration=values.get("gate_length")
                )
        # Readout calibration lives with the qubits; it replaces any "measure" gate records.
        measure: _QargsMap = {}
        for q, values in enumerate(qubit_values):
            if filter_faulty and q in faulty_qubits:
                continue
            values = values or {}
            measure[(q,)] = InstructionProperties(
                error=values.get("readout_error"), duration=values.get("readout_length")
            )
        qargs_maps["measure"] = measure

    for name in supported & NON_UNITARY_INSTRUCTIONS:
        if name in qargs_maps and qargs_maps[name] is None:
            qargs_maps[name] = {
                (q,): None for q in range(num_qubits) if not (filter_faulty and q in faulty_qubits)
            }

    target = Target(**target_kwargs)
    for name in sorted(names):
        if name == "delay" and not add_delay:
            continue
        if name in CONTROL_FLOW_INSTRUCTIONS:
            target.add_instruction(objects[name], name=name)
        else:
            target.add_instruction(
                objects[name],
                properties=qargs_maps.get(name),
                name=name,
                angle_bounds=_RZZ_ANGLE_BOUNDS if name == "rzz" else None,
            )
    return target
