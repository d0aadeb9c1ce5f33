"""PUBs <-> the ``params`` of ``POST /jobs`` (protocol §4), both directions.

The client encodes its coerced :class:`SamplerPub`/:class:`EstimatorPub` with
:func:`encode_sampler_params`/:func:`encode_estimator_params` into ``params`` that validate
against ``ibm-quantum-schemas``' input models (:mod:`.contract`); the server decodes any accepted
form (plain REST JSON or the Qiskit-encoded form of qiskit-ibm-runtime) with
:func:`decode_sampler_params`/:func:`decode_estimator_params` into Qiskit PUB objects. Every
problem raises :class:`~qiskit_rest_provider.exceptions.WireFormatError` with a message that
starts with the field, e.g. ``pubs[1].parameter_values: expected 3 values per set, got 2``.

Parameter values travel with their last axis in the order of the OpenQASM text's ``input``
declarations (D3), never in the re-imported circuit's sorted order.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from qiskit.primitives.containers import BindingsArray, ObservablesArray
from qiskit.primitives.containers.estimator_pub import EstimatorPub
from qiskit.primitives.containers.sampler_pub import SamplerPub

from ..exceptions import WireFormatError
from ._observables import observables_to_lists
from .arrays import decode_ndarray, encode_ndarray
from .circuits import ImportedCircuit, decode_circuit, encode_qpy, export_qasm3
from .protocol import DEFAULT_PRECISION, DEFAULT_SHOTS

__all__ = [
    "DecodedParams",
    "decode_estimator_params",
    "decode_sampler_params",
    "encode_estimator_params",
    "encode_estimator_pub",
    "encode_sampler_params",
    "encode_sampler_pub",
]

CircuitForm = Literal["qasm3", "qpy"]
"""``"qasm3"``: plain REST form (default; ``None`` means the same); ``"qpy"``: official form."""


# ----------------------------------------------------------------------------------------------
# Encoding (client side)
# ----------------------------------------------------------------------------------------------
def _circuit_and_values(pub: SamplerPub | EstimatorPub, circuit_form: CircuitForm | None) -> tuple:
    if circuit_form is None or circuit_form == "qasm3":
        exported = export_qasm3(pub.circuit)
        circuit: Any = exported.text
        order = exported.parameters
    elif circuit_form == "qpy":
        circuit = encode_qpy(pub.circuit)
        order = tuple(pub.circuit.parameters)
    else:
        raise ValueError(f"circuit_form must be 'qasm3' or 'qpy', got {circuit_form!r}")
    # Always an ndarray (the model's type): a PUB without parameters sends shape (*shape, 0),
    # i.e. (0,) for a scalar PUB, exactly as qiskit-ibm-runtime does.
    values = np.asarray(pub.parameter_values.as_array(order), dtype=float)
    return circuit, encode_ndarray(values)


def _resolve_shots(pub_shots: int | None, shots: int | None, options: dict | None) -> int:
    """The PUB's shots, else ``run(shots=...)``, else ``options.default_shots``, else 4096.

    The input model types the slot ``int > 0``, so the client fills it in; the resolution is the
    one the service would apply to a ``null``.
    """
    for candidate in (pub_shots, shots, (options or {}).get("default_shots")):
        if candidate is not None:
            return int(candidate)
    return DEFAULT_SHOTS


def encode_sampler_pub(
    pub: SamplerPub,
    *,
    circuit_form: CircuitForm | None = "qasm3",
    default_shots: int | None = None,
) -> list:
    """Encode a coerced sampler PUB as ``[circuit, parameter_values, shots]`` (the model's form).

    Args:
        pub: the coerced PUB.
        circuit_form: ``"qasm3"`` (OpenQASM 3 text) or ``"qpy"`` (the QPY wrapper).
        default_shots: shots when the PUB has none (default :data:`~.protocol.DEFAULT_SHOTS`).
    """
    circuit, values = _circuit_and_values(pub, circuit_form)
    return [circuit, values, _resolve_shots(pub.shots, default_shots, None)]


def encode_estimator_pub(
    pub: EstimatorPub,
    *,
    circuit_form: CircuitForm | None = "qasm3",
    default_precision: float | None = None,
) -> list:
    """Encode a coerced estimator PUB as ``[circuit, observables, values, precision]``.

    ``precision`` stays ``null`` (the model allows it: the service's ``default_precision``
    applies) unless the PUB or ``default_precision`` names one.
    """
    circuit, values = _circuit_and_values(pub, circuit_form)
    precision = pub.precision if pub.precision is not None else default_precision
    return [
        circuit,
        pub.observables.tolist(),
        values,
        None if precision is None else float(precision),
    ]


def encode_sampler_params(
    pubs: Sequence[SamplerPub],
    *,
    shots: int | None = None,
    options: dict | None = None,
    circuit_form: CircuitForm | None = "qasm3",
) -> dict:
    """Build sampler ``params`` that validate against the sampler input model.

    ``{"pubs", "version": 2, "support_qiskit": True, "options"?}``; every PUB carries its shots
    (its own, else ``shots``, else ``options["default_shots"]``, else 4096): the model has no
    top-level ``shots`` and types the PUB slot ``int > 0``.
    """
    default = _resolve_shots(None, shots, options)
    params: dict[str, Any] = {
        "pubs": [
            encode_sampler_pub(p, circuit_form=circuit_form, default_shots=default) for p in pubs
        ],
        "version": 2,
        "support_qiskit": True,
    }
    if options:
        params["options"] = options
    return params


def encode_estimator_params(
    pubs: Sequence[EstimatorPub],
    *,
    precision: float | None = None,
    options: dict | None = None,
    resilience_level: int | None = None,
    circuit_form: CircuitForm | None = "qasm3",
) -> dict:
    """Build estimator ``params`` that validate against the estimator input model.

    ``precision`` (``run(precision=...)``) goes into the precision slot of each PUB that names
    none: the model has no top-level ``precision``. ``resilience_level`` is top level (§4.3).
    """
    params: dict[str, Any] = {
        "pubs": [
            encode_estimator_pub(p, circuit_form=circuit_form, default_precision=precision)
            for p in pubs
        ],
        "version": 2,
        "support_qiskit": True,
    }
    if resilience_level is not None:
        params["resilience_level"] = int(resilience_level)
    if options:
        params["options"] = options
    return params


# ----------------------------------------------------------------------------------------------
# Decoding (server side)
# ----------------------------------------------------------------------------------------------
@dataclass
class DecodedParams:
    """Decoded ``params``: Qiskit PUB objects with shots/precision filled in, plus the rest."""

    pubs: list = field(default_factory=list)
    options: dict = field(default_factory=dict)
    support_qiskit: bool = False
    version: int = 2
    resilience_level: int | None = None


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WireFormatError(f"{name}: expected a positive integer, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise WireFormatError(f"{name}: expected a positive integer, got {value!r}")
    if value <= 0:
        raise WireFormatError(f"{name}: must be positive, got {value!r}")
    return int(value)


def _positive_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise WireFormatError(f"{name}: expected a positive number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise WireFormatError(f"{name}: must be a positive finite number, got {value!r}")
    return float(value)


def _common(params: Any) -> tuple[list, dict, bool, int]:
    if not isinstance(params, dict):
        raise WireFormatError(f"params: expected an object, got {type(params).__name__}")
    version = params.get("version", 2)
    if version not in (2, "2") or isinstance(version, bool):
        raise WireFormatError(f"params.version: only version 2 is supported, got {version!r}")
    pubs = params.get("pubs")
    if not isinstance(pubs, list) or not pubs:
        raise WireFormatError("params.pubs: expected a non-empty list of PUBs")
    options = params.get("options")
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise WireFormatError(f"params.options: expected an object, got {type(options).__name__}")
    support = params.get("support_qiskit", False)
    if not isinstance(support, bool):
        raise WireFormatError(f"params.support_qiskit: expected a boolean, got {support!r}")
    return pubs, options, support, 2


def _bindings_from_dict(values: dict, imported: ImportedCircuit, name: str) -> BindingsArray:
    by_name = {p.name: p for p in imported.parameters or imported.circuit.parameters}
    arrays: dict[tuple, np.ndarray] = {}
    for key, value in values.items():
        names = [key]
        if key.startswith("["):
            try:
                names = json.loads(key)
            except ValueError:
                names = [key]
        try:
            params = tuple(by_name[n] for n in names)
        except (KeyError, TypeError):
            raise WireFormatError(
                f"{name}: unknown parameter {key!r}; the circuit declares {sorted(by_name)}"
            ) from None
        array = decode_ndarray(value, dtype=float, field=f"{name}[{key!r}]")
        if len(names) > 1 or key.startswith("["):
            if array.ndim == 0 or array.shape[-1] != len(params):
                raise WireFormatError(f"{name}[{key!r}]: last axis must hold {len(params)} values")
        else:
            array = array[..., np.newaxis]
        arrays[params] = array
    missing = set(by_name.values()) - {p for key in arrays for p in key}
    if missing:
        raise WireFormatError(
            f"{name}: no value for parameter(s) {sorted(p.name for p in missing)}"
        )
    try:
        return BindingsArray(arrays)
    except ValueError as exc:
        raise WireFormatError(f"{name}: {exc}") from exc


def _wrapper_shape(shape: Any, name: str) -> tuple[int, ...]:
    """The ``shape`` of a ``BindingsArray`` wrapper (``[]`` or absent: a scalar PUB)."""
    if shape is None:
        return ()
    if not isinstance(shape, (list, tuple)) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise WireFormatError(f"{name}: BindingsArray shape must be a list of sizes, got {shape!r}")
    if math.prod(shape) > np.iinfo(np.intp).max:  # what NumPy refuses for an ndarray, too
        raise WireFormatError(f"{name}: BindingsArray shape {list(shape)} is too large")
    return tuple(shape)


def _bindings(values: Any, imported: ImportedCircuit, name: str) -> BindingsArray:
    order = imported.parameters or tuple(imported.circuit.parameters)
    count = len(order)
    if isinstance(values, dict) and values.get("__type__") == "BindingsArray":
        inner = values.get("__value__") or {}
        if not isinstance(inner, dict) or not isinstance(inner.get("data", {}), dict):
            raise WireFormatError(f"{name}: malformed BindingsArray wrapper")
        if inner.get("data"):
            return _bindings_from_dict(inner["data"], imported, name)
        # No data: a PUB without parameters, whose shape is all the wrapper carries.
        shape = _wrapper_shape(inner.get("shape"), name)
        if count:
            raise WireFormatError(f"{name}: the circuit has {count} parameters but no values given")
        return BindingsArray(shape=shape)
    if isinstance(values, dict) and "__type__" not in values:
        if count == 0 and not values:
            return BindingsArray()
        return _bindings_from_dict(values, imported, name)
    if values is None:
        if count:
            raise WireFormatError(f"{name}: the circuit has {count} parameters but no values given")
        return BindingsArray()
    array = decode_ndarray(values, dtype=float, field=name)
    if count == 0:
        if array.size:
            raise WireFormatError(f"{name}: the circuit has no parameters but values were given")
        return BindingsArray(shape=array.shape[:-1] if array.ndim > 1 else ())
    if array.ndim == 0:
        array = array.reshape(1)
    if array.shape[-1] != count:
        raise WireFormatError(
            f"{name}: expected {count} values per parameter set (last axis), got shape "
            f"{list(array.shape)}"
        )
    if not np.all(np.isfinite(array)):
        raise WireFormatError(f"{name}: values must be finite numbers")
    return BindingsArray({tuple(order): array})


def _pub_list(pub: Any, index: int, lo: int, hi: int) -> list:
    if isinstance(pub, (str, dict)) and lo == 1:
        pub = [pub]
    if not isinstance(pub, (list, tuple)) or not lo <= len(pub) <= hi:
        raise WireFormatError(
            f"pubs[{index}]: expected a list of {lo} to {hi} elements, got {type(pub).__name__}"
            + (f" of length {len(pub)}" if isinstance(pub, (list, tuple)) else "")
        )
    return list(pub) + [None] * (hi - len(pub))


def decode_sampler_params(
    params: dict, *, num_qubits: int | None = None, default_shots: int = DEFAULT_SHOTS
) -> DecodedParams:
    """Decode sampler ``params`` into coerced :class:`SamplerPub` objects.

    Shots: the PUB's > ``params["shots"]`` > ``options.default_shots`` > ``default_shots``.

    Raises:
        WireFormatError: the message starts with the offending field.
    """
    pubs, options, support, version = _common(params)
    shots = default_shots
    if options.get("default_shots") is not None:
        shots = _positive_int(options["default_shots"], "params.options.default_shots")
    if params.get("shots") is not None:
        shots = _positive_int(params["shots"], "params.shots")
    out = []
    for i, raw in enumerate(pubs):
        circuit, values, pub_shots = _pub_list(raw, i, 1, 3)
        imported = decode_circuit(circuit, num_qubits=num_qubits, field=f"pubs[{i}].circuit")
        bindings = _bindings(values, imported, f"pubs[{i}].parameter_values")
        n = shots if pub_shots is None else _positive_int(pub_shots, f"pubs[{i}].shots")
        try:
            out.append(SamplerPub(imported.circuit, bindings, n))
        except ValueError as exc:
            raise WireFormatError(f"pubs[{i}]: {exc}") from exc
    return DecodedParams(pubs=out, options=options, support_qiskit=support, version=version)


def decode_estimator_params(
    params: dict, *, num_qubits: int | None = None, default_precision: float = DEFAULT_PRECISION
) -> DecodedParams:
    """Decode estimator ``params`` into coerced :class:`EstimatorPub` objects.

    Precision: the PUB's > ``params["precision"]`` > ``options.default_precision`` > default.
    Observables must act on exactly the circuit's qubits and broadcast with the parameter
    values' shape.

    Raises:
        WireFormatError: the message starts with the offending field.
    """
    pubs, options, support, version = _common(params)
    precision = default_precision
    if options.get("default_precision") is not None:
        precision = _positive_float(
            options["default_precision"], "params.options.default_precision"
        )
    if params.get("precision") is not None:
        precision = _positive_float(params["precision"], "params.precision")
    level = params.get("resilience_level")
    if level is not None and (isinstance(level, bool) or level not in (0, 1, 2)):
        raise WireFormatError(f"params.resilience_level: must be 0, 1 or 2, got {level!r}")
    out = []
    for i, raw in enumerate(pubs):
        circuit, observables, values, pub_precision = _pub_list(raw, i, 2, 4)
        imported = decode_circuit(circuit, num_qubits=num_qubits, field=f"pubs[{i}].circuit")
        width = imported.circuit.num_qubits
        lists = observables_to_lists(observables, width, f"pubs[{i}].observables")
        try:
            obs = ObservablesArray(lists, validate=True)
        except (ValueError, TypeError) as exc:
            raise WireFormatError(f"pubs[{i}].observables: {exc}") from exc
        bindings = _bindings(values, imported, f"pubs[{i}].parameter_values")
        try:
            np.broadcast_shapes(obs.shape, bindings.shape)
        except ValueError:
            raise WireFormatError(
                f"pubs[{i}]: observables shape {list(obs.shape)} does not broadcast with "
                f"parameter_values shape {list(bindings.shape)}"
            ) from None
        p = (
            precision
            if pub_precision is None
            else _positive_float(pub_precision, f"pubs[{i}].precision")
        )
        try:
            out.append(EstimatorPub(imported.circuit, obs, bindings, p))
        except ValueError as exc:
            raise WireFormatError(f"pubs[{i}]: {exc}") from exc
    return DecodedParams(
        pubs=out,
        options=options,
        support_qiskit=support,
        version=version,
        resilience_level=None if level is None else int(level),
    )
