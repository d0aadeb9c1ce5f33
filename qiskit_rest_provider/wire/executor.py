"""The ``executor`` program's inputs and results, checked against IBM's published models.

qiskit-ibm-runtime 0.50+ sends a ``QuantumProgram`` (circuit items and samplex items) to the
``executor`` program and post-processes the results itself (its ``executor_sampler.Sampler``,
``executor_estimator.Estimator`` and ``Executor``). The inputs and results of every version are
pydantic models in ``ibm-quantum-schemas`` (``executor`` v0.1 … v2.0): the contract (D11).

The models' own validators inflate every compressed tensor and the QPY blob with no size cap,
so :func:`validate_executor_params` first walks the JSON and checks each compressed payload
against the size its own header declares (a tensor's ``shape`` and ``dtype``; the circuits'
QPY within :data:`~.limits.MAX_QPY_BYTES`), inflating at most that many bytes. A compressed bomb
is refused before the models see it.

Example:
    >>> validate_executor_params({"schema_version": "v9"})
    Traceback (most recent call last):
        ...
    qiskit_rest_provider.exceptions.WireFormatError: params.schema_version: 'v9' is not an executor input version this server runs (v0.1, v0.2, v1.0, v1.1, v2.0)
"""  # noqa: E501

from __future__ import annotations

import binascii
import importlib
import math
import zlib
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from ..exceptions import WireFormatError
from .contract import _check_keys
from .limits import MAX_QPY_BYTES

__all__ = [
    "EXECUTOR_VERSIONS",
    "MAX_EXECUTOR_TENSOR_BYTES",
    "decode_program",
    "params_model",
    "result_model",
    "validate_executor_params",
]

EXECUTOR_VERSIONS = ("v0.1", "v0.2", "v1.0", "v1.1", "v2.0")
"""Input (and result) schema versions of the ``executor`` program this server runs."""

MAX_EXECUTOR_TENSOR_BYTES = 256 << 20
"""The most bytes all tensors of one executor job may inflate to (arguments, samplex inputs)."""

_ELEMENT_BYTES = {
    "bool": 0.125,
    "u8": 1,
    "u16": 2,
    "u32": 4,
    "u64": 8,
    "i8": 1,
    "i16": 2,
    "i32": 4,
    "i64": 8,
    "f16": 2,
    "f32": 4,
    "f64": 8,
    "c64": 8,
    "c128": 16,
}


def _module(version: str) -> Any:
    if version not in EXECUTOR_VERSIONS:
        raise WireFormatError(
            f"params.schema_version: {version!r} is not an executor input version this server "
            f"runs ({', '.join(EXECUTOR_VERSIONS)})"
        )
    return importlib.import_module(
        "ibm_quantum_schemas.executor.version_" + version[1:].replace(".", "_")
    )


def params_model(version: str) -> type[BaseModel]:
    """The ``ParamsModel`` of executor input ``version`` (``"v2.0"``)."""
    return _module(version).ParamsModel


def result_model(version: str) -> type[BaseModel]:
    """The ``QuantumProgramResultModel`` of executor ``version``."""
    return _module(version).QuantumProgramResultModel


def _b64(value: str, field: str) -> bytes:
    try:
        return binascii.a2b_base64(value.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise WireFormatError(f"{field}: not base64 data") from exc


def _inflate_within(raw: bytes, limit: int, field: str) -> int:
    """The inflated size of ``raw`` (zlib), reading at most ``limit`` + 1 bytes of output."""
    inflater = zlib.decompressobj()
    size = 0
    try:
        chunk = inflater.decompress(raw, limit + 1)
        size += len(chunk)
        while inflater.unconsumed_tail and size <= limit:
            chunk = inflater.decompress(inflater.unconsumed_tail, limit + 1 - size)
            size += len(chunk)
    except zlib.error as exc:
        raise WireFormatError(f"{field}: not zlib-compressed data") from exc
    if size > limit or inflater.unconsumed_tail:
        raise WireFormatError(f"{field}: inflates beyond {limit} bytes")
    if not inflater.eof:
        raise WireFormatError(f"{field}: compressed data is truncated")
    return size


def _check_payloads(value: Any, field: str, budget: list[int], compressed: bool) -> None:
    """Bound every tensor and QPY payload below ``value`` by its declared size (iteratively)."""
    stack: list[tuple[Any, str]] = [(value, field)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))
            continue
        if not isinstance(item, Mapping):
            continue
        data, shape, dtype = item.get("data"), item.get("shape"), item.get("dtype")
        if isinstance(data, str) and isinstance(shape, list) and dtype is not None:
            if dtype not in _ELEMENT_BYTES or not all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
            ):
                raise WireFormatError(f"{where}: a tensor needs a known dtype and a shape of ints")
            declared = math.ceil(math.prod(shape) * _ELEMENT_BYTES[dtype])
            budget[0] -= declared
            if budget[0] < 0:
                raise WireFormatError(
                    f"{where}: the job's tensors declare more than {MAX_EXECUTOR_TENSOR_BYTES} "
                    "bytes in all"
                )
            if not compressed:
                continue  # plain base64: no bigger than the (capped) body that carried it
            raw = _b64(data, f"{where}.data")
            size = _inflate_within(raw, declared, f"{where}.data")
            if size != declared:
                raise WireFormatError(
                    f"{where}.data: holds {size} bytes but shape {shape} of {dtype} needs "
                    f"{declared}"
                )
            continue
        b64_data = item.get("b64_data")
        if isinstance(b64_data, str) and "num_programs" in item:
            raw = _b64(b64_data, f"{where}.b64_data")
            if raw[:1] == b"\x78":  # a zlib stream (CompressedQpyDataModel)
                _inflate_within(raw, MAX_QPY_BYTES, f"{where}.b64_data")
            elif len(raw) > MAX_QPY_BYTES:
                raise WireFormatError(f"{where}.b64_data: more than {MAX_QPY_BYTES} bytes")
            continue
        stack.extend((v, f"{where}.{k}") for k, v in item.items() if isinstance(v, (dict, list)))


def _field_of(error: Mapping[str, Any]) -> str:
    path = "params"
    for part in error.get("loc", ()):
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def validate_executor_params(params: Any) -> BaseModel:
    """Check ``params`` of an ``executor`` job and return the validated ``ParamsModel``.

    The version is ``params.schema_version`` (what every official client sends). Compressed
    payloads are bounded first (module doc), then the version's model validates the whole
    document: unknown keys are refused, circuits must be one per item, shapes consistent.

    Raises:
        WireFormatError: the message starts with the offending field.
    """
    if not isinstance(params, Mapping):
        raise WireFormatError(f"params: expected an object, got {type(params).__name__}")
    version = params.get("schema_version")
    if not isinstance(version, str):
        raise WireFormatError(
            f"params.schema_version: required, one of {', '.join(EXECUTOR_VERSIONS)}"
        )
    model = params_model(version)
    compressed = version == "v2.0"
    program = params.get("quantum_program")
    if isinstance(program, Mapping):
        _check_payloads(program, "params.quantum_program", [MAX_EXECUTOR_TENSOR_BYTES], compressed)
    # The models ignore unknown keys below the top level: a misspelled option must be a 400,
    # and padding must not be stored (the top level, options, the program and its items).
    _check_keys(model, params, "params")
    module = _module(version)
    items = program.get("items") if isinstance(program, Mapping) else None
    for i, item in enumerate(items if isinstance(items, list) else ()):
        kind = item.get("item_type", "circuit") if isinstance(item, Mapping) else None
        item_model = {"circuit": "CircuitItemModel", "samplex": "SamplexItemModel"}.get(str(kind))
        if item_model and hasattr(module, item_model):
            _check_keys(getattr(module, item_model), item, f"params.quantum_program.items[{i}]")
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        kind = first.get("type")
        message = "unknown key" if kind == "extra_forbidden" else first.get("msg", "invalid")
        raise WireFormatError(f"{_field_of(first)}: {message}") from None
    except (ValueError, TypeError, zlib.error, binascii.Error) as exc:
        raise WireFormatError(f"params.quantum_program: {exc}") from None


def decode_program(params: dict) -> tuple[Any, Any, str]:
    """Validate ``params`` and decode them with the official converters.

    Returns:
        ``(QuantumProgram, ExecutorOptions, schema_version)``.

    Raises:
        WireFormatError: naming the offending field.
    """
    from qiskit_ibm_runtime.quantum_program.params_converters import (
        QUANTUM_PROGRAM_PARAMS_CONVERTERS,
    )

    model = validate_executor_params(params)
    version = str(params["schema_version"])
    try:
        program, options = QUANTUM_PROGRAM_PARAMS_CONVERTERS[version].decoder(model)
        for index, item in enumerate(program.items):
            samplex = getattr(item, "samplex", None)
            if samplex is not None and not getattr(samplex, "_finalized", True):
                # the JSON form does not record it; a deserialized samplex must be finalized
                # (it validates its graph) before it can draw randomizations
                try:
                    samplex.finalize()
                except Exception as exc:  # noqa: BLE001 - samplomatic's own errors
                    raise WireFormatError(
                        f"params.quantum_program.items[{index}].samplex: {exc}"
                    ) from None
    except (ValueError, TypeError, KeyError) as exc:
        raise WireFormatError(f"params.quantum_program: {exc}") from None
    return program, options, version
