"""Program inputs and result documents checked against IBM's published models.

The PyPI package ``ibm-quantum-schemas`` holds the pydantic models of the ``sampler`` and
``estimator`` programs' ``params`` and results (version 0.1 of each, what ``params.version = 2``
means). They are the contract (D11): the client builds payloads that validate against them, the
server admits ``params`` only if they do and writes results that do. This module applies the
models and turns pydantic's errors into :class:`~qiskit_rest_provider.exceptions.WireFormatError`
whose message starts with the field path, e.g. ``params.options.foo: unknown key`` or
``params.pubs[0][2]: Input should be greater than 0``.

Two kinds of check, for the two places that need one:

* ``validate_params(program_id, params)`` (strict, the default): the payload as a service that
  validates with the models sees it. Tolerated, because qiskit-ibm-runtime 0.51 itself sends them
  and a service must accept its payloads: ``null`` shots in a sampler PUB (the model types the
  slot ``int > 0``; the service applies ``options.default_shots``) and nested lists of observables
  for a PUB whose observables array has two or more dimensions (the model has a flat list; each
  observable is still checked). Tests use this on every payload our client sends.
* ``validate_params(program_id, params, accept_plain=True)``: the server's admission. The plain
  REST JSON form (protocol §4.1: OpenQASM strings, parameter values as plain lists or dicts,
  ``null`` placeholders, short PUBs, top-level ``shots``/``precision``, ``version: "2"``) is a
  documented input the models do not describe, so only the *structure* is checked with them:
  unknown keys at the top level and anywhere in the ``options`` tree are an error (instead of
  being stored). PUBs in the models' form (full length, parameter values as an ndarray wrapper:
  what qiskit-ibm-runtime and our client send) are validated with the models, slot by slot, with
  the two tolerances above; other PUBs are left to :mod:`.pubs`' decoders. Option *values* are
  the options checker's business, not this module's.

The models' own QPY check inflates the whole circuit without a size cap (and lets a zlib error
escape); here it is shown only the circuit's inflated header, so a compressed bomb costs nothing.

Example:
    >>> validate_params("sampler", {"pubs": [], "bogus": 1})
    Traceback (most recent call last):
        ...
    qiskit_rest_provider.exceptions.WireFormatError: params.bogus: unknown key (known here: options, pubs, support_qiskit, version)
"""  # noqa: E501

from __future__ import annotations

import functools
import types
import typing
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from ..exceptions import WireFormatError
from .arrays import b64decode, b64encode
from .options import EXTENSION_OPTIONS, options_model  # the models' options + our extensions
from .protocol import ESTIMATOR, PRIMITIVE_PROGRAMS, SAMPLER

__all__ = [
    "PLAIN_PARAMS_KEYS",
    "input_model",
    "result_model",
    "validate_params",
    "validate_result",
]

PLAIN_PARAMS_KEYS = {SAMPLER: frozenset({"shots"}), ESTIMATOR: frozenset({"precision"})}
"""Top-level keys of the plain REST form (§4.2/§4.3) that the models do not have."""

_VALUES_SLOT = {SAMPLER: 1, ESTIMATOR: 2}
"""Index of the parameter-values slot in each program's PUB model."""

_QPY_HEADER_BYTES = 64
"""More than any QPY file header the model reads (``FILE_HEADER_V10_SIZE`` is 24 bytes)."""


# ----------------------------------------------------------------------------- the models
def _modules(program_id: str) -> Any:
    if program_id == SAMPLER:
        from ibm_quantum_schemas.sampler import version_0_1 as models
    elif program_id == ESTIMATOR:
        from ibm_quantum_schemas.estimator import version_0_1 as models
    else:
        raise WireFormatError(
            f"program_id: no input model for program {program_id!r} "
            f"(known: {', '.join(PRIMITIVE_PROGRAMS)})"
        )
    return models


def input_model(program_id: str) -> type[BaseModel]:
    """The ``ibm_quantum_schemas`` ``ParamsModel`` of ``program_id`` (sampler/estimator v0.1)."""
    return _modules(program_id).ParamsModel


def result_model(program_id: str) -> type[BaseModel]:
    """The ``ibm_quantum_schemas`` ``PrimitiveResultWrapperModel`` of ``program_id``."""
    return _modules(program_id).PrimitiveResultWrapperModel


def _pub_model(program_id: str) -> type[BaseModel]:
    models = _modules(program_id)
    return models.SamplerPubModel if program_id == SAMPLER else models.EstimatorPubModel


@functools.cache
def _slot_adapters(program_id: str) -> tuple[TypeAdapter, ...]:
    """One adapter per PUB slot, built from the PUB model's own tuple type."""
    root = _pub_model(program_id).model_fields["root"].annotation
    return tuple(TypeAdapter(arg) for arg in typing.get_args(root))


@functools.cache
def _observable_adapter() -> TypeAdapter:
    from ibm_quantum_schemas.estimator.version_0_1.observables_array import (
        ObservablesArrayModel,
    )

    return TypeAdapter(ObservablesArrayModel)


# ----------------------------------------------------------------------------- error paths
def _path(prefix: str, loc: Sequence[Any], data: Any) -> str:
    """Turn a pydantic ``loc`` into ``prefix.key[0].key``, walking the input it came from.

    ``loc`` also names union members and validators (``'str'``, ``'function-after[...]'``);
    those are dropped by following the actual input: only keys and indices it has are kept.
    """
    out = prefix
    node = data
    for part in loc:
        if isinstance(node, Mapping) and isinstance(part, str) and part in node:
            out += f".{part}"
            node = node[part]
        elif isinstance(node, Mapping) and isinstance(part, str) and not _is_tag(part):
            out += f".{part}"  # a missing key: name it, there is nothing below
            node = None
        elif isinstance(node, (list, tuple)) and isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if 0 <= part < len(node) else None
    return out


def _is_tag(part: str) -> bool:
    return part[:1].isupper() or "[" in part or part in {"str", "int", "float", "bool", "list"}


def _raise(prefix: str, exc: ValidationError, data: Any) -> typing.NoReturn:
    error = exc.errors()[0]
    path = _path(prefix, error.get("loc", ()), data)
    message = str(error.get("msg", "invalid value"))
    if error.get("type") == "extra_forbidden":
        message = "unknown key"
    raise WireFormatError(f"{path}: {message}") from None


# ----------------------------------------------------------------------------- unknown keys
def _model_keys(model: type[BaseModel]) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        keys[name] = info.annotation
        if info.alias:
            keys[info.alias] = info.annotation
    return keys


def _holds_data(model: type[BaseModel]) -> bool:
    """RootModels and ``{"__type__", "__value__"}`` wrappers hold data, not option keys."""
    return "root" in model.model_fields or any(
        info.alias == "__type__" for info in model.model_fields.values()
    )


def _submodels(annotation: Any) -> tuple[list[type[BaseModel]], list[type[BaseModel]]]:
    """(models a dict value may be, models a list's items may be) for a field annotation."""
    direct: list[type[BaseModel]] = []
    items: list[type[BaseModel]] = []
    stack = [annotation]
    while stack:
        ann = stack.pop()
        origin = typing.get_origin(ann)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            if not _holds_data(ann):
                direct.append(ann)
        elif origin is typing.Annotated:
            stack.append(typing.get_args(ann)[0])
        elif origin is typing.Union or origin is types.UnionType:
            stack.extend(typing.get_args(ann))
        elif origin is list:
            inner, inner_items = _submodels(typing.get_args(ann)[0])
            items.extend(inner)
            items.extend(inner_items)
    return direct, items


def _check_keys(model: type[BaseModel], data: Any, path: str) -> None:
    """Every key of ``data`` must be a field of ``model``, recursively through sub-models.

    The models declare ``extra="forbid"`` only on the options root; their sub-models (twirling,
    dynamical decoupling, ...) would silently drop a misspelled key, which is exactly the
    mistake a 400 must catch. Free-form ``dict`` fields (``experimental``) are not entered.
    """
    if not isinstance(data, Mapping):
        return
    known = _model_keys(model)
    for key, value in data.items():
        sub = f"{path}.{key}"
        if key not in known:
            names = ", ".join(sorted(model.model_fields))
            raise WireFormatError(f"{sub}: unknown key (known here: {names})")
        direct, items = _submodels(known[key])
        if isinstance(value, Mapping) and len(direct) == 1:
            _check_keys(direct[0], value, sub)
        elif isinstance(value, list) and len(items) == 1:
            for i, item in enumerate(value):
                _check_keys(items[0], item, f"{sub}[{i}]")


# ----------------------------------------------------------------------------- PUBs
def _is_ndarray_wrapper(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and value.get("__type__") == "ndarray"
        and isinstance(value.get("__value__"), str)
    )


def _in_model_form(program_id: str, pub: Any) -> bool:
    """Whether a PUB is in the models' form (as the official client writes it)."""
    slots = len(_slot_adapters(program_id))
    return (
        isinstance(pub, (list, tuple))
        and len(pub) == slots
        and _is_ndarray_wrapper(pub[_VALUES_SLOT[program_id]])
    )


def _validate(adapter: TypeAdapter, value: Any, path: str) -> None:
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        _raise(path, exc, value)


def _check_circuit(adapter: TypeAdapter, value: Any, path: str) -> None:
    if isinstance(value, Mapping) and isinstance(value.get("__value__"), str):
        # Show the model only the inflated header (all its QPY check reads), re-compressed;
        # decode no more of the base64 text than it takes to inflate that header.
        text = value["__value__"]
        size = 1024
        while True:
            raw = b64decode(text[: size - size % 4] if size < len(text) else text, field=path)
            try:
                header = zlib.decompressobj().decompress(raw, _QPY_HEADER_BYTES)
            except zlib.error:
                raise WireFormatError(f"{path}: QPY payload is not zlib-compressed") from None
            if len(header) >= _QPY_HEADER_BYTES or size >= len(text):
                break
            size *= 16
        if len(header) < 24:
            raise WireFormatError(f"{path}: QPY payload is truncated (no file header)")
        value = {**value, "__value__": b64encode(zlib.compress(header))}
    _validate(adapter, value, path)


def _leaf_observables(value: Any, path: str, out: list) -> None:
    if isinstance(value, list):
        for i, item in enumerate(value):
            _leaf_observables(item, f"{path}[{i}]", out)
    else:
        out.append((value, path))


def _check_observables(adapter: TypeAdapter, value: Any, path: str) -> None:
    nested = isinstance(value, list) and any(isinstance(v, list) for v in value)
    if not nested:
        _validate(adapter, value, path)
        return
    # qiskit-ibm-runtime sends ObservablesArray.tolist(): nested for >= 2 dimensions.
    leaves: list = []
    _leaf_observables(value, path, leaves)
    for leaf, leaf_path in leaves:
        if isinstance(leaf, list):
            continue
        _validate(_observable_adapter(), leaf, leaf_path)
    _validate(adapter, [leaf for leaf, _ in leaves], path)


def _check_pub(program_id: str, pub: Any, path: str) -> None:
    adapters = _slot_adapters(program_id)
    if not isinstance(pub, (list, tuple)):
        raise WireFormatError(
            f"{path}: expected a list of {len(adapters)} elements, got {type(pub).__name__}"
        )
    if len(pub) != len(adapters):
        raise WireFormatError(
            f"{path}: expected {len(adapters)} elements, got {len(pub)}"
            + (
                " ([circuit, parameter_values, shots])"
                if program_id == SAMPLER
                else " ([circuit, observables, parameter_values, precision])"
            )
        )
    for slot, (adapter, value) in enumerate(zip(adapters, pub)):
        where = f"{path}[{slot}]"
        if slot == 0:
            _check_circuit(adapter, value, where)
        elif program_id == SAMPLER and slot == 2 and value is None:
            continue  # qiskit-ibm-runtime's "no shots given": the service's default applies
        elif program_id == ESTIMATOR and slot == 1:
            _check_observables(adapter, value, where)
        else:
            _validate(adapter, value, where)


# ----------------------------------------------------------------------------- entry points
def _without_extensions(params: dict) -> dict:
    """``params`` without our option extensions (``options.simulator.method``), for the models."""
    options = params.get("options")
    if not isinstance(options, Mapping):
        return params
    options = dict(options)
    for dotted in EXTENSION_OPTIONS:
        group, leaf = dotted.split(".")
        sub = options.get(group)
        if isinstance(sub, Mapping) and leaf in sub:
            options[group] = {k: v for k, v in sub.items() if k != leaf}
    return {**params, "options": options}


def validate_params(program_id: str, params: Any, *, accept_plain: bool = False) -> None:
    """Check a job's ``params`` against the program's ``ibm_quantum_schemas`` input model.

    Args:
        program_id: ``"sampler"`` or ``"estimator"``.
        params: the ``params`` object of ``POST /jobs`` (parsed JSON).
        accept_plain: the server's admission: also accept the plain REST JSON form and check
            only the structure (unknown keys) outside model-form PUBs (see the module doc).

    Raises:
        WireFormatError: the message starts with the offending field (``params.<key>``,
            ``params.options.<path>``, ``params.pubs[i][slot]``).

    Example:
        >>> validate_params("estimator", {"pubs": [], "options": {"twirling": {"bogus": 1}}})
        Traceback (most recent call last):
            ...
        qiskit_rest_provider.exceptions.WireFormatError: params.options.twirling.bogus: unknown key (known here: enable_gates, enable_measure, num_randomizations, shots_per_randomization, strategy)
    """  # noqa: E501
    model = input_model(program_id)
    if not isinstance(params, Mapping):
        raise WireFormatError(f"params: expected an object, got {type(params).__name__}")
    extra = PLAIN_PARAMS_KEYS[program_id] if accept_plain else frozenset()
    known = _model_keys(model)
    for key in params:
        if key not in known and key not in extra:
            names = ", ".join(sorted(set(model.model_fields) | extra))
            raise WireFormatError(f"params.{key}: unknown key (known here: {names})")
    if "options" in params and params["options"] is not None:
        _check_keys(options_model(program_id), params["options"], "params.options")
    pubs = params.get("pubs")
    if not accept_plain:
        rest = {k: v for k, v in params.items() if k != "pubs"}
        rest = _without_extensions(rest)
        try:
            model.model_validate({**rest, "pubs": []})
        except ValidationError as exc:
            _raise("params", exc, params)
        if not isinstance(pubs, list):
            raise WireFormatError("params.pubs: expected a list of PUBs")
    if not isinstance(pubs, list):
        return  # the decoder names what is wrong with it
    for i, pub in enumerate(pubs):
        if not accept_plain or _in_model_form(program_id, pub):
            _check_pub(program_id, pub, f"params.pubs[{i}]")


def validate_result(program_id: str, document: Any) -> None:
    """Check a Qiskit-encoded result document (§5.2) against the program's result model.

    Args:
        program_id: ``"sampler"`` or ``"estimator"``.
        document: the parsed JSON of ``GET /jobs/{id}/results`` (or its bytes/text). Only the
            Qiskit-encoded form has a published model; a plain (§5.1) document is refused.

    Raises:
        WireFormatError: naming the offending field (``result.__value__.pub_results[0]...``).
    """
    model = result_model(program_id)
    if isinstance(document, (bytes, bytearray, memoryview, str)):
        from .json import loads

        document = loads(bytes(document) if not isinstance(document, str) else document)
    if not isinstance(document, Mapping) or document.get("__type__") != "PrimitiveResult":
        raise WireFormatError(
            "result: not a Qiskit-encoded PrimitiveResult (only that form has a result model)"
        )
    try:
        model.model_validate(document)
    except ValidationError as exc:
        _raise("result", exc, document)
