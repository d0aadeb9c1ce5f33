"""The one checker of the primitives' ``options`` tree, shared by the client and the server.

The tree, its types, bounds and defaults are not written down here: they are read from IBM's
published option models in ``ibm-quantum-schemas`` (``sampler/version_0_1/options.py``,
``estimator/version_0_1/options.py`` and the group models they hold). A value is checked by
validating a minimal dict through its group model, so every ``Field(ge=...)``, ``Literal`` and
field validator of the models applies, and the cross-field rules of a group (for example "PEC and
ZNE cannot both be on", "``exponential`` needs two noise factors") apply to the whole tree.

The client's option setters call :func:`check_option` when a value is set, the client checks the
whole set tree with :func:`check_options` before it sends a job, and the server checks the
``params.options`` it receives with :func:`check_options` and uses the tree it returns (every key
present, the server's defaults filled in). One checker, so both halves give the same verdict on the
same value.

The server's extra rules
------------------------
The models describe IBM's service. This server is a simulator and is stricter in a few places;
these rules are part of the contract, documented here and applied in both halves:

* **JSON types, not coercions.** Values are validated in pydantic's *strict* mode: a boolean is not
  a number (``default_shots=True``), a string is not a number or a boolean (``"100"``, ``"yes"``).
  A whole JSON number is an integer (``4096.0`` is accepted where an integer is expected).
* **Finite numbers.** ``NaN`` and infinities are rejected everywhere.
* **Seeds** (``simulator.seed_simulator``, ``seed_estimator``) are integers in ``[0, 2**63)``:
  Aer seeds its generators with unsigned 64-bit values.
* **Noise models** (``simulator.noise_model``) are Aer ``NoiseModel.to_dict()`` documents, in the
  models' ``{"__type__": "NoiseModel", "__value__": {...}}`` wrapper or bare, that Aer can read
  (the server passes Aer's reader to :func:`check_options`; the client half, which works without
  qiskit-aer, checks the document's form, and an Aer ``NoiseModel`` object is valid as it is).
* **Coupling maps** (``simulator.coupling_map``) name non-negative qubit indices.
* **Layer pair depths** (``resilience.layer_noise_learning.layer_pair_depths``) are ``>= 0`` (the
  rule of qiskit-ibm-runtime's own options; the model leaves it out).
* **Sampler ``execution.meas_type``** must be ``"classified"``: a simulator has no kerneled IQ data.
* **Options not performed** (:data:`NOT_PERFORMED`): the layer-learning experiment's
  ``resilience.layer_noise_learning.num_randomizations``, ``shots_per_randomization`` and
  ``layer_pair_depths``, and ``resilience.measure_noise_learning.shots_per_randomization`` accept
  only their defaults: the server computes the layer noise PEC and PEA need from its device model
  instead of learning it. A given ``resilience.layer_noise_model`` (a ``NoiseLearner`` result) is
  used instead of that model, and then no learning is due, so the learning experiment's options
  are accepted as set (:data:`MOOT_WITH_LAYER_NOISE_MODEL`; :func:`check_options` only, since one
  leaf alone cannot know).
* The ``simulator`` group, ``None`` by default in the models, is filled with its group defaults in
  the server's tree, so the runner never asks "was this set?".

Our extension
-------------
* **``simulator.method``** (both programs): ``"automatic"`` (default: the server chooses the
  simulation method from its cost model) or one of :data:`SIMULATOR_METHODS` to force it. The
  models do not have it; :func:`options_model` returns the models extended with it, and a client
  sends it only when a user sets it (a service without the extension answers 400 for it).

Example:
    >>> check_option("estimator", "resilience.zne.noise_factors", [1, 3, 5])
    [1, 3, 5]
    >>> check_option("sampler", "simulator.seed_simulator", -5)
    Traceback (most recent call last):
    ...
    qiskit_rest_provider.wire.options.OptionsError: options.simulator.seed_simulator must be \
an integer in [0, 2**63), got -5
"""

from __future__ import annotations

import copy
import math
import numbers
import re
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cache
from typing import Any, Literal, NamedTuple

import annotated_types
import numpy as np
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, to_jsonable_python

from .protocol import DEFAULT_PRECISION, DEFAULT_RESILIENCE_LEVEL, DEFAULT_SHOTS

__all__ = [
    "EXTENSION_OPTIONS",
    "MOOT_WITH_LAYER_NOISE_MODEL",
    "NOT_PERFORMED",
    "SIMULATOR_METHODS",
    "not_performed_default",
    "resolved_mitigation",
    "resolved_twirling",
    "DEFAULT_PRECISION",
    "DEFAULT_SHOTS",
    "OptionField",
    "OptionsError",
    "OptionsTypeError",
    "check_option",
    "check_options",
    "NoiseModelReader",
    "check_resilience_level",
    "option_fields",
    "options_model",
]


SIMULATOR_METHODS = (
    "automatic",
    "statevector",
    "density_matrix",
    "stabilizer",
    "matrix_product_state",
)
"""Values of our ``simulator.method`` extension (``automatic``: the server's cost model picks)."""

EXTENSION_OPTIONS = frozenset({"simulator.method"})
"""Dotted option paths that are our extensions (not in ``ibm-quantum-schemas``)."""


def _extended(root: type[BaseModel]) -> type[BaseModel]:
    """``root`` with the ``simulator`` group extended by ``method`` (same rules otherwise)."""
    from pydantic import Field, create_model

    simulator = _group_model(root.model_fields["simulator"])
    assert simulator is not None
    method_type = Literal[SIMULATOR_METHODS]  # type: ignore[valid-type]
    extended_simulator: Any = create_model(
        simulator.__name__,
        __base__=simulator,
        __module__=__name__,
        method=(
            method_type,
            Field(
                default="automatic",
                description="Simulation method (extension): automatic or one to force.",
            ),
        ),
    )
    simulator_type: Any = typing.Optional[extended_simulator]  # noqa: UP045 - a runtime type
    extended: type[BaseModel] = create_model(
        root.__name__, __base__=root, __module__=__name__, simulator=(simulator_type, None)
    )
    return extended


@cache
def _program_models() -> dict[str, type[BaseModel]]:
    """The ``ibm-quantum-schemas`` model of each program's ``options``, with our extensions.

    Imported on first use: the schema packages pull in samplomatic (about half a second), which
    ``import qiskit_rest_provider.primitives`` should not pay for.
    """
    from ibm_quantum_schemas.estimator.version_0_1.options import OptionsModel as estimator
    from ibm_quantum_schemas.sampler.version_0_1.options import OptionsModel as sampler

    return {"sampler": _extended(sampler), "estimator": _extended(estimator)}


@cache
def _estimator_params() -> type[BaseModel]:
    from ibm_quantum_schemas.estimator.version_0_1.params import ParamsModel

    return ParamsModel


def options_model(program_id: str) -> type[BaseModel]:
    """The ``ibm-quantum-schemas`` model of ``program_id``'s ``options``, with our extensions.

    The models' ``OptionsModel``, its ``simulator`` group extended by :data:`EXTENSION_OPTIONS`.

    Raises:
        ValueError: a program without an options model.
    """
    return _model_for(program_id)


_SEED_LIMIT = 2**63
# Leaves whose content is a document of its own: checked by the model in lax mode (their inner
# encodings are the official client's), never scanned for whole numbers or finiteness.
_OPAQUE = frozenset({"experimental", "simulator.noise_model", "resilience.layer_noise_model"})


class OptionsError(ValueError):
    """An option is unknown or has a value the contract rejects.

    Attributes:
        path: the full key path, e.g. ``"options.twirling.strategy"`` or
            ``"params.options.resilience.zne.noise_factors[0]"``.
    """

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


class OptionsTypeError(OptionsError, TypeError):
    """An option value has the wrong JSON type (also a ``TypeError``, for callers who catch it)."""


class OptionField(NamedTuple):
    """One leaf of a program's options tree, as the models define it.

    Attributes:
        path: dotted path below ``options``, e.g. ``"resilience.zne.noise_factors"``.
        model: the group model that holds the field.
        name: the field's name in that model.
        info: the pydantic field (annotation, constraints, default).
    """

    path: str
    model: type[BaseModel]
    name: str
    info: FieldInfo


# ----------------------------------------------------------------------------- the tree


def _strip_none(annotation: Any) -> list[Any]:
    if _is_union(annotation):
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _group_model(info: FieldInfo) -> type[BaseModel] | None:
    """The sub-model of a field that is a group of options (a model buildable from ``{}``)."""
    members = _strip_none(info.annotation)
    if len(members) != 1:
        return None
    member = members[0]
    if not (isinstance(member, type) and issubclass(member, BaseModel)):
        return None
    if any(f.is_required() for f in member.model_fields.values()):
        return None  # e.g. the NoiseModel wrapper: a value, not a group of options
    return member


@cache
def _groups(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    out = {}
    for name, info in model.model_fields.items():
        sub = _group_model(info)
        if sub is not None:
            out[name] = sub
    return out


def option_fields(program_id: str) -> list[OptionField]:
    """Every leaf option of ``program_id``'s tree, in the models' order.

    Useful to generate documentation and test tables from the models.

    Example:
        >>> [f.path for f in option_fields("sampler")][:2]
        ['default_shots', 'dynamical_decoupling.enable']
    """
    return list(_walk(_model_for(program_id), ""))


def _walk(model: type[BaseModel], prefix: str) -> Iterator[OptionField]:
    groups = _groups(model)
    for name, info in model.model_fields.items():
        if name in groups:
            yield from _walk(groups[name], f"{prefix}{name}.")
        else:
            yield OptionField(f"{prefix}{name}", model, name, info)


def _model_for(program_id: str) -> type[BaseModel]:
    models = _program_models()
    try:
        return models[program_id]
    except KeyError:
        raise ValueError(
            f"program {program_id!r} has no options model (known: {', '.join(models)})"
        ) from None


def _resolve(program_id: str, dotted: str) -> tuple[type[BaseModel], str]:
    model = _model_for(program_id)
    *groups, leaf = dotted.split(".")
    walked = "options"
    for group in groups:
        sub = _groups(model).get(group)
        if sub is None:
            raise _unknown(f"{walked}.{group}", model)
        model, walked = sub, f"{walked}.{group}"
    if leaf not in model.model_fields:
        raise _unknown(f"{walked}.{leaf}", model)
    if leaf in _groups(model):
        raise OptionsError(
            f"{walked}.{leaf} is a group of options, not a value", f"{walked}.{leaf}"
        )
    return model, leaf


def _unknown(path: str, model: type[BaseModel]) -> OptionsError:
    known = ", ".join(sorted(model.model_fields))
    return OptionsError(f"unknown option {path} (known keys here: {known})", path)


# ----------------------------------------------------------------------------- plain values


def _plain(value: Any) -> Any:
    """Turn Python/numpy containers and numbers into JSON types (lists, dicts, int, float)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "get_edges") and callable(value.get_edges):  # a qiskit CouplingMap
        return [[int(a), int(b)] for a, b in value.get_edges()]
    return value


def _whole_to_int(value: Any) -> Any:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_whole_to_int(v) for v in value]
    return value


def _has_whole_float(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value) and value.is_integer()
    return isinstance(value, list) and any(_has_whole_float(v) for v in value)


def _first_non_finite(value: Any, path: str) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return path
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _first_non_finite(item, f"{path}[{i}]")
            if found:
                return found
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# ----------------------------------------------------------------------------- descriptions

_BOUND_WORDS = (
    (annotated_types.Gt, "gt", ">"),
    (annotated_types.Ge, "ge", ">="),
    (annotated_types.Lt, "lt", "<"),
    (annotated_types.Le, "le", "<="),
)


def _flat_metadata(metadata: Sequence[Any]) -> list[Any]:
    out: list[Any] = []
    for item in metadata:
        if isinstance(item, FieldInfo):  # ``Annotated[int, Field(ge=1)]`` keeps a FieldInfo
            out.extend(_flat_metadata(item.metadata))
        else:
            out.append(item)
    return out


def _bounds(metadata: Sequence[Any]) -> str:
    parts = []
    for item in _flat_metadata(metadata):
        for kind, attr, sign in _BOUND_WORDS:
            if isinstance(item, kind):
                parts.append(f"{sign} {getattr(item, attr)}")
        if isinstance(item, annotated_types.MinLen) and item.min_length:
            parts.append(f"with at least {item.min_length} items")
        if isinstance(item, annotated_types.MaxLen):
            parts.append(f"with at most {item.max_length} items")
    return (" " + " and ".join(parts)) if parts else ""


def _describe(annotation: Any, metadata: Sequence[Any] = ()) -> str:
    """Say in words which values ``annotation`` accepts (for error messages)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner, *extra = typing.get_args(annotation)
        return _describe(inner, [*metadata, *extra])
    if _is_union(annotation):
        return " or ".join(_describe(a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return "null"
    if origin is Literal:
        choices = typing.get_args(annotation)
        if len(choices) == 1:
            return repr(choices[0])
        return "one of " + ", ".join(repr(v) for v in choices)
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "an integer" + _bounds(metadata)
    if annotation is float:
        return "a finite number" + _bounds(metadata)
    if annotation is str:
        return "a string"
    if annotation is dict or origin is dict:
        return "an object"
    if origin in (list, Sequence, tuple) or annotation in (list, tuple):
        args = typing.get_args(annotation)
        item = _describe(args[0]) if args else "anything"
        return f"a list{_bounds(metadata)} whose items are each {item}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation.__name__ == "NoiseModel":
            return "a NoiseModel document (NoiseModel.to_dict())"
        return f"a {annotation.__name__} object"
    return str(annotation)


def _accepted(model: type[BaseModel], name: str) -> str:
    info = model.model_fields[name]
    return _describe(info.annotation, info.metadata)


def _item_annotation(annotation: Any) -> Any:
    """The item type of the list alternative of ``annotation`` (``None`` if it has none)."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _item_annotation(typing.get_args(annotation)[0])
    if _is_union(annotation):
        for member in typing.get_args(annotation):
            found = _item_annotation(member)
            if found is not None:
                return found
        return None
    if typing.get_origin(annotation) in (list, Sequence, tuple):
        args = typing.get_args(annotation)
        return args[0] if args else None
    return None


# ----------------------------------------------------------------------------- model checks


def _field_errors(
    model: type[BaseModel], name: str, value: Any, *, strict: bool
) -> list[ErrorDetails]:
    """The model's errors about field ``name`` alone (cross-field rules are left to the group)."""
    try:
        model.model_validate({name: value}, strict=strict)
    except ValidationError as exc:
        return [e for e in exc.errors() if tuple(e["loc"][:1]) == (name,)]
    return []


def _index_path(loc: Sequence[Any]) -> str:
    return "".join(f"[{part}]" for part in loc if isinstance(part, int))


def _pick(errors: list[ErrorDetails]) -> ErrorDetails:
    """Of a union's alternatives, the error that went deepest into the value."""
    return max(errors, key=lambda e: sum(isinstance(p, int) for p in e["loc"]))


def _model_message(error: ErrorDetails) -> str:
    message = str(error.get("msg", ""))
    return message.removeprefix("Value error, ")


def _raise_field_error(
    model: type[BaseModel],
    name: str,
    value: Any,
    errors: list[ErrorDetails],
    path: str,
    strict: bool,
) -> typing.NoReturn:
    error = _pick(errors)
    indices = [p for p in error["loc"][1:] if isinstance(p, int)]
    if error["type"] == "value_error" and isinstance(value, list) and len(error["loc"]) == 1:
        # A field validator rejected the list as a whole: name the first item it rejects alone.
        for i, item in enumerate(value):
            if _field_errors(model, name, [item], strict=strict):
                indices = [i]
                break
    detail = f" ({_model_message(error)})" if error["type"] == "value_error" else ""
    cls = OptionsTypeError if error["type"].endswith("_type") else OptionsError
    item_type = _item_annotation(model.model_fields[name].annotation)
    if indices and item_type is not None and isinstance(value, list) and indices[0] < len(value):
        # Name the first rejected item and what an item may be.
        where = f"{path}[{indices[0]}]"
        accepted = _describe(item_type)
        got = value[indices[0]]
    else:
        where = path + _index_path(error["loc"][1:])
        accepted, got = _accepted(model, name), value
    raise cls(f"{where} must be {accepted}, got {_short(got)}{detail}", where)


# ----------------------------------------------------------------------------- extra rules


def _rule_seed(value: Any, path: str) -> None:
    if value is not None and not 0 <= value < _SEED_LIMIT:
        raise OptionsError(f"{path} must be an integer in [0, 2**63), got {_short(value)}", path)


def _rule_coupling_map(value: Any, path: str) -> None:
    for i, edge in enumerate(value or ()):
        if any(q < 0 for q in edge):
            where = f"{path}[{i}]"
            raise OptionsError(
                f"{where} must be a pair of non-negative qubit indices, got {_short(edge)}", where
            )


def _rule_layer_pair_depths(value: Any, path: str) -> None:
    for i, depth in enumerate(value):
        if depth < 0:
            where = f"{path}[{i}]"
            raise OptionsError(f"{where} must be an integer >= 0, got {depth}", where)


def _rule_meas_type(value: Any, path: str) -> None:
    if value != "classified":
        raise OptionsError(
            f"{path}={value!r} is not supported by this simulator (no IQ data exists); "
            "use 'classified'",
            path,
        )


NOT_PERFORMED: dict[str, str] = {
    "resilience.layer_noise_learning.num_randomizations": "no layer-learning experiment runs",
    "resilience.layer_noise_learning.shots_per_randomization": "no layer-learning experiment runs",
    "resilience.layer_noise_learning.layer_pair_depths": "no layer-learning experiment runs",
    "resilience.measure_noise_learning.shots_per_randomization": (
        "the TREX calibration uses the twirled circuits' shots per randomization"
    ),
}
"""Estimator options the reference server cannot perform, and why: only their defaults are
accepted (the layer noise PEC/PEA need is computed from the device model, not learned). With a
given ``resilience.layer_noise_model`` no learning is due (IBM's service skips it too), so the
learning experiment's options are then accepted as set (:data:`MOOT_WITH_LAYER_NOISE_MODEL`)."""

MOOT_WITH_LAYER_NOISE_MODEL = frozenset(
    {
        "resilience.layer_noise_learning.num_randomizations",
        "resilience.layer_noise_learning.shots_per_randomization",
        "resilience.layer_noise_learning.layer_pair_depths",
    }
)
"""Options of the layer-learning experiment, which no job with a given layer noise model runs."""


def not_performed_default(dotted: str) -> Any:
    """The only value of a :data:`NOT_PERFORMED` option that is accepted (the model's default)."""
    model, leaf = _resolve("estimator", dotted)
    return _default(model.model_fields[leaf])


def _rule_not_performed(dotted: str, before: Callable[[Any, str], None] | None = None):
    def rule(value: Any, path: str) -> None:
        if before is not None:
            before(value, path)
        default = not_performed_default(dotted)
        if value != default:
            raise OptionsError(
                f"{path}={_short(value)} is not performed by this server "
                f"({NOT_PERFORMED[dotted]}); leave it unset (default {default!r})",
                path,
            )

    return rule


_Rule = Callable[[Any, str], None]
_EXTRA_RULES: dict[tuple[str | None, str], _Rule] = {
    (None, "simulator.seed_simulator"): _rule_seed,
    ("estimator", "seed_estimator"): _rule_seed,
    (None, "simulator.coupling_map"): _rule_coupling_map,
    **{("estimator", dotted): _rule_not_performed(dotted) for dotted in NOT_PERFORMED},
    ("estimator", "resilience.layer_noise_learning.layer_pair_depths"): _rule_not_performed(
        "resilience.layer_noise_learning.layer_pair_depths", _rule_layer_pair_depths
    ),
    ("sampler", "execution.meas_type"): _rule_meas_type,
}


def _extra_rule(program_id: str, dotted: str, relaxed: bool = False) -> _Rule | None:
    """The server's extra rule of an option; ``relaxed``: a layer noise model is given."""
    if relaxed and program_id == "estimator" and dotted in MOOT_WITH_LAYER_NOISE_MODEL:
        # moot, not refused; the depths keep their own rule (>= 0)
        return _rule_layer_pair_depths if dotted.endswith(".layer_pair_depths") else None
    return _EXTRA_RULES.get((program_id, dotted)) or _EXTRA_RULES.get((None, dotted))


def _is_aer_noise_model(value: Any) -> bool:
    cls = type(value)
    return cls.__name__ == "NoiseModel" and cls.__module__.startswith("qiskit_aer")


NoiseModelReader = Callable[[dict], Any]
"""Reads a ``NoiseModel.to_dict()`` document (the server passes Aer's reader), raising if bad."""


def _check_noise_model(
    value: Any, path: str, reader: NoiseModelReader | None
) -> tuple[Any, Any, Any]:
    """(client form, model input, server form) of a noise model value.

    The document's form is checked here; whether Aer can read it only where ``reader`` is given
    (the server: the client half works without qiskit-aer, so it cannot ask Aer).
    """
    if value is None:
        return None, None, None
    if _is_aer_noise_model(value):  # a client-side object: valid by construction
        as_dict = value.to_dict(serializable=True)
        return value, {"__type__": "NoiseModel", "__value__": as_dict}, as_dict
    value = _plain(value)
    if isinstance(value, dict) and "__type__" not in value and "__value__" not in value:
        value = {"__type__": "NoiseModel", "__value__": value}  # the bare form (our extension)
    simulator = _groups(_model_for("sampler"))["simulator"]
    errors = _field_errors(simulator, "noise_model", value, strict=False)
    inner = value.get("__value__") if isinstance(value, dict) else None
    if errors or not isinstance(inner, dict) or not isinstance(inner.get("errors", []), list):
        raise OptionsError(
            f"{path} must be a NoiseModel document (NoiseModel.to_dict(), bare or as "
            f'{{"__type__": "NoiseModel", "__value__": ...}}), got {_short(value)}',
            path,
        )
    if reader is not None:
        try:
            reader(inner)
        except Exception as exc:  # noqa: BLE001 - Aer raises many kinds of errors for bad dicts
            raise OptionsError(f"{path} is not a valid noise model: {exc}", path) from None
    return value, value, copy.deepcopy(inner)


def _layer_error_wire(entry: Any) -> Any:
    """A ``LayerError``-like object (qiskit-ibm-runtime's) in its wire form; else as it is.

    The form is the ``ibm-quantum-schemas`` model's (``LayerNoiseModelWrapperModel``), what the
    official client's ``RuntimeEncoder`` writes: the layer circuit as QPY, the physical qubits,
    the ``PauliLindbladError`` (generator labels, rates as an ndarray) or ``null``.
    """
    if isinstance(entry, Mapping) or not all(hasattr(entry, a) for a in ("circuit", "qubits")):
        return entry
    from ibm_quantum_schemas.estimator.version_0_1.layer_noise_model import (
        LayerNoiseModelWrapperModel,
    )

    from ._qpy import encode_qpy
    from .arrays import encode_ndarray

    error = getattr(entry, "error", None)
    wire_error = None
    if error is not None:
        wire_error = {
            "__value__": {
                "generators": {"__value__": {"data": list(error.generators.to_labels())}},
                "rates": encode_ndarray(np.asarray(error.rates, dtype=float)),
            }
        }
    document = {
        "__value__": {
            "circuit": encode_qpy(entry.circuit),
            "qubits": [int(q) for q in entry.qubits],
            "error": wire_error,
        }
    }
    return LayerNoiseModelWrapperModel.model_validate(document).model_dump(
        by_alias=True, mode="json"
    )


def _layer_noise_model_wire(value: Any) -> Any:
    """A ``NoiseLearnerResult`` or ``LayerError`` objects as the option's wire form (a list)."""
    if not isinstance(value, (Mapping, list, tuple)) and hasattr(value, "data"):
        value = list(value.data)  # a NoiseLearnerResult: its layers are the model
    if isinstance(value, (list, tuple)):
        return [_layer_error_wire(entry) for entry in value]
    return value


# ----------------------------------------------------------------------------- leaves


class _Leaf(NamedTuple):
    client: Any  # what the client stores and sends
    model: Any  # what the group model validates (cross-field rules)
    server: Any  # what the server's tree holds


def _check_leaf(
    program_id: str,
    model: type[BaseModel],
    name: str,
    value: Any,
    dotted: str,
    path: str,
    reader: NoiseModelReader | None = None,
    relaxed: bool = False,
) -> _Leaf:
    if dotted == "simulator.noise_model":
        return _Leaf(*_check_noise_model(value, path, reader))
    if dotted == "resilience.layer_noise_model":
        value = _layer_noise_model_wire(value)
    opaque = dotted in _OPAQUE
    strict = not opaque
    plain = _plain(value)
    errors = _field_errors(model, name, plain, strict=strict)
    if errors and strict and _has_whole_float(plain):
        whole = _whole_to_int(plain)
        if not _field_errors(model, name, whole, strict=True):
            plain, errors = whole, []
    if errors:
        _raise_field_error(model, name, plain, errors, path, strict)
    if not opaque:
        bad = _first_non_finite(plain, path)
        if bad:
            raise OptionsError(f"{bad} must be finite, got {_short(value)}", bad)
    rule = _extra_rule(program_id, dotted, relaxed)
    if rule is not None:
        rule(plain, path)
    return _Leaf(plain, plain, copy.deepcopy(plain))


def check_option(program_id: str, dotted_path: str, value: Any) -> Any:
    """Check one option value as it is set, and return the value to store and send.

    Only what can be known from the value itself is checked here; rules across several options
    (``pec_mitigation`` with ``zne_mitigation``, extrapolators needing enough noise factors) are
    checked by :func:`check_options` on the whole tree.

    Args:
        program_id: ``"sampler"`` or ``"estimator"``.
        dotted_path: the option below ``options``, e.g. ``"twirling.strategy"``;
            ``"resilience_level"`` for the estimator's top-level ``params.resilience_level``.
        value: the value; numpy numbers and tuples are accepted and returned as JSON types, a
            Qiskit ``CouplingMap`` as its edge list, an Aer ``NoiseModel`` object as it is.

    Returns:
        The value in its wire form.

    Raises:
        OptionsError: a ``ValueError`` naming ``options.<path>`` and the accepted values
            (:class:`OptionsTypeError`, also a ``TypeError``, for a wrong JSON type).

    Example:
        >>> check_option("sampler", "default_shots", 4096.0)
        4096
    """
    if program_id == "estimator" and dotted_path == "resilience_level":
        return check_resilience_level(value)
    model, name = _resolve(program_id, dotted_path)
    return _check_leaf(program_id, model, name, value, dotted_path, f"options.{dotted_path}").client


def check_resilience_level(value: Any, path: str = "resilience_level") -> int:
    """Check the estimator's top-level ``resilience_level`` against the estimator params model.

    Raises:
        OptionsError: naming ``path`` and the accepted values.
    """
    plain = _whole_to_int(_plain(value))
    params = _estimator_params()
    errors = _field_errors(params, "resilience_level", plain, strict=True)
    if errors:
        _raise_field_error(params, "resilience_level", plain, errors, path, True)
    return int(plain)


# ----------------------------------------------------------------------------- the whole tree


def _default(info: FieldInfo) -> Any:
    return to_jsonable_python(info.get_default(call_default_factory=True))


def _check_group(
    program_id: str,
    model: type[BaseModel],
    given: Any,
    prefix: str,
    path: str,
    reader: NoiseModelReader | None,
    relaxed: bool = False,
) -> dict[str, Any]:
    if given is None:
        given = {}
    if not isinstance(given, Mapping):
        raise OptionsTypeError(f"{path} must be an object, got {_short(given)}", path)
    fields = model.model_fields
    for key in given:
        if not isinstance(key, str) or key not in fields:
            raise _unknown(f"{path}.{key}", model)
    groups = _groups(model)
    out: dict[str, Any] = {}
    model_input: dict[str, Any] = {}
    for name, info in fields.items():
        sub_path = f"{path}.{name}"
        if name in groups:
            out[name] = _check_group(
                program_id,
                groups[name],
                given.get(name),
                f"{prefix}{name}.",
                sub_path,
                reader,
                relaxed,
            )
        elif name in given:
            leaf = _check_leaf(
                program_id,
                model,
                name,
                given[name],
                f"{prefix}{name}",
                sub_path,
                reader,
                relaxed,
            )
            out[name] = leaf.server
            model_input[name] = leaf.model
        else:
            out[name] = _default(info)
    if model_input:
        _check_across(
            model, model_input, path, strict=not any(f"{prefix}{n}" in _OPAQUE for n in model_input)
        )
    return out


def _check_across(model: type[BaseModel], given: dict[str, Any], path: str, strict: bool) -> None:
    """The group model's rules across its fields (model validators), on the set values."""
    try:
        model.model_validate(given, strict=strict)
    except ValidationError as exc:
        error = exc.errors()[0]
        message = _model_message(error)
        # Name the option the user set that the rule is about: the first one the message
        # mentions, else the first one set (the rule then involves a default, e.g. too few
        # default noise factors for the extrapolator that was set).
        mentioned = sorted(
            (m.start(), n)
            for n in given
            if (m := re.search(rf"\b{re.escape(n)}\b", message)) is not None
        )
        name = mentioned[0][1] if mentioned else next(iter(given))
        where = f"{path}.{name}"
        raise OptionsError(f"{where}: {message}", where) from None


def check_options(
    program_id: str,
    options: Any,
    path: str = "options",
    *,
    noise_model_reader: NoiseModelReader | None = None,
) -> dict[str, Any]:
    """Check a whole ``options`` tree and return it with every key present, defaults filled in.

    Args:
        program_id: ``"sampler"`` or ``"estimator"``.
        options: the raw ``options`` object (``None`` means "nothing set").
        path: prefix of the paths in error messages, e.g. ``"params.options"``.
        noise_model_reader: reads a ``simulator.noise_model`` document and raises if it is bad
            (the server passes Aer's; without it only the document's form is checked).

    Returns:
        A new, JSON-compatible dict (noise models in their bare ``NoiseModel.to_dict()`` form, the
        ``simulator`` group filled with its defaults).

    Raises:
        OptionsError: naming the full key path of the first unknown or rejected option.

    Example:
        >>> check_options("sampler", {"default_shots": 100})["twirling"]["strategy"]
        'active-accum'
    """
    resilience = options.get("resilience") if isinstance(options, Mapping) else None
    relaxed = (
        program_id == "estimator"
        and isinstance(resilience, Mapping)
        and resilience.get("layer_noise_model") is not None
    )
    return _check_group(
        program_id, _model_for(program_id), options, "", path, noise_model_reader, relaxed
    )


# Estimator twirling and mitigation by resilience level when the options leave them unset
# (qiskit-ibm-runtime's own defaults: level 1 twirls measurements, level 2 gates as well).
_LEVEL_DEFAULTS = {
    0: {"enable_gates": False, "enable_measure": False, "measure_mitigation": False},
    1: {"enable_gates": False, "enable_measure": True, "measure_mitigation": True},
    2: {"enable_gates": True, "enable_measure": True, "measure_mitigation": True},
}
_ZNE_BY_LEVEL = {0: False, 1: False, 2: True}


def resolved_twirling(options: dict, level: int | None) -> dict:
    """The estimator's ``twirling`` options with ``enable_*`` decided (never ``None``).

    Unset flags take the resilience level's default; measurement mitigation requires twirled
    measurements, so it forces ``enable_measure``. This is what result metadata reports (the
    result model types ``twirling.enable_measure`` as a boolean).
    """
    defaults = _LEVEL_DEFAULTS.get(DEFAULT_RESILIENCE_LEVEL if level is None else level)
    defaults = defaults or _LEVEL_DEFAULTS[DEFAULT_RESILIENCE_LEVEL]
    twirling = dict(options.get("twirling") or {})
    for key in ("enable_gates", "enable_measure"):
        if twirling.get(key) is None:
            twirling[key] = defaults[key]
    mitigation = (options.get("resilience") or {}).get("measure_mitigation")
    if mitigation is None:
        mitigation = defaults["measure_mitigation"]
    if mitigation:
        twirling["enable_measure"] = True
    return twirling


def resolved_mitigation(options: dict, level: int | None) -> dict:
    """Which estimator techniques a job asks for once the level's defaults fill the unset ones.

    Returns ``{"twirling", "measure_mitigation", "zne_mitigation", "pec_mitigation",
    "dynamical_decoupling"}`` as booleans (qiskit-ibm-runtime's per-level defaults: level 1 TREX
    with measurement twirling, level 2 adds gate twirling and ZNE). The server's admission sizes the
    sampled (mitigated) path with it; the runner decides the path with it.

    Example:
        >>> resolved_mitigation({"twirling": {}, "resilience": {}}, 2)["zne_mitigation"]
        True
    """
    level = DEFAULT_RESILIENCE_LEVEL if level is None else level
    twirling = resolved_twirling(options, level)
    resilience = options.get("resilience") or {}
    measure = resilience.get("measure_mitigation")
    zne = resilience.get("zne_mitigation")
    return {
        "twirling": bool(twirling["enable_gates"] or twirling["enable_measure"]),
        "measure_mitigation": bool(
            _LEVEL_DEFAULTS.get(level, _LEVEL_DEFAULTS[1])["measure_mitigation"]
            if measure is None
            else measure
        ),
        "zne_mitigation": bool(_ZNE_BY_LEVEL.get(level, False) if zne is None else zne),
        "pec_mitigation": bool(resilience.get("pec_mitigation")),
        "dynamical_decoupling": bool((options.get("dynamical_decoupling") or {}).get("enable")),
    }
