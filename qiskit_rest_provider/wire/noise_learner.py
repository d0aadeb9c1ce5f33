"""The ``noise-learner`` program's inputs, checked against IBM's published models.

Two generations of the program share one ``program_id`` (what the official clients send):

* **v2** (``qiskit_ibm_runtime.noise_learner.NoiseLearner``): ``params = {"circuits": [...],
  "options": {...}}`` (``ibm-quantum-schemas`` ``noise_learner_v2`` v0.1); the service finds the
  circuits' unique layers of twirled two-qubit gates and learns each one's noise.
* **v3** (``qiskit_ibm_runtime.NoiseLearnerV3``): ``params = {"schema_version": "v0.3",
  "instructions": <QPY>, "options": {...}}`` (``noise_learner_v3`` v0.1–v0.3); the caller names the
  boxed instructions to learn.

:func:`decode_noise_learner` validates a document with its model and decodes it into a
:class:`NoiseLearnerInput`. Circuits are read with this package's bounded readers
(:mod:`.circuits`: QPY inflated within its cap, OpenQASM within the import limits).

Example:
    >>> decode_noise_learner({"schema_version": "v7"})
    Traceback (most recent call last):
        ...
    qiskit_rest_provider.exceptions.WireFormatError: params.schema_version: 'v7' is not a noise-learner input version this server runs (v0.1, v0.2, v0.3; or no schema_version: v2)
"""  # noqa: E501

from __future__ import annotations

import binascii
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ..exceptions import WireFormatError
from .contract import _check_keys
from .limits import MAX_QPY_BYTES

__all__ = ["NOISE_LEARNER_V3_VERSIONS", "NoiseLearnerInput", "decode_noise_learner"]

NOISE_LEARNER_V3_VERSIONS = ("v0.1", "v0.2", "v0.3")
"""``schema_version`` values of the v3 inputs; a document without one is a v2 input."""


@dataclass
class NoiseLearnerInput:
    """A decoded noise-learner job.

    Attributes:
        generation: ``2`` (circuits; the service finds the layers) or ``3`` (instructions).
        version: the v3 ``schema_version`` (``"v2"`` for a v2 input).
        circuits: v2: the circuits whose layers to learn.
        instructions: v3: the boxed instructions to learn.
        options: the validated options as a plain dict (v3: qiskit-ibm-runtime's
            ``NoiseLearnerV3Options`` dumped; v2: the model's fields).
        v3_options: v3: the ``NoiseLearnerV3Options`` object itself.
    """

    generation: int
    version: str
    circuits: list = field(default_factory=list)
    instructions: list = field(default_factory=list)
    options: dict = field(default_factory=dict)
    v3_options: Any = None


def _raise(exc: ValidationError) -> WireFormatError:
    first = exc.errors(include_url=False)[0]
    path = "params"
    for part in first.get("loc", ()):
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    kind = first.get("type")
    message = "unknown key" if kind == "extra_forbidden" else first.get("msg", "invalid")
    return WireFormatError(f"{path}: {message}")


def _bounded_qpy(value: Any, where: str) -> None:
    """A QPY payload inflates within :data:`MAX_QPY_BYTES` (checked before the model loads it)."""
    if not isinstance(value, str):
        return
    try:
        raw = binascii.a2b_base64(value.encode("ascii"))
    except (binascii.Error, UnicodeEncodeError):
        raise WireFormatError(f"{where}: not base64 data") from None
    if raw[:1] != b"\x78":
        if len(raw) > MAX_QPY_BYTES:
            raise WireFormatError(f"{where}: more than {MAX_QPY_BYTES} bytes")
        return
    inflater = zlib.decompressobj()
    try:
        inflater.decompress(raw, MAX_QPY_BYTES + 1)
    except zlib.error:
        raise WireFormatError(f"{where}: not zlib-compressed data") from None
    if inflater.unconsumed_tail:
        raise WireFormatError(f"{where}: inflates beyond {MAX_QPY_BYTES} bytes")


def _decode_v3(params: Mapping[str, Any], version: str) -> NoiseLearnerInput:
    from qiskit_ibm_runtime.noise_learner_v3.params_converters import (
        NOISE_LEARNER_V3_PARAMS_CONVERTERS,
    )

    converter = NOISE_LEARNER_V3_PARAMS_CONVERTERS[version]
    # qiskit-ibm-runtime's NoiseLearnerV3 adds ``"version": 3`` beside the model's fields
    program_version = params.get("version", 3)
    if program_version != 3:
        raise WireFormatError(
            f"params.version: expected 3 with a schema_version, got {program_version!r}"
        )
    params = {k: v for k, v in params.items() if k != "version"}
    _check_keys(converter.model, params, "params")
    instructions = params.get("instructions")
    if isinstance(instructions, Mapping):
        for key in ("b64_data", "qpy_data", "data"):
            _bounded_qpy(instructions.get(key), f"params.instructions.{key}")
    try:
        model = converter.model.model_validate(params)
    except ValidationError as exc:
        raise _raise(exc) from None
    try:
        decoded, options = converter.decoder(model)
    except Exception as exc:  # noqa: BLE001 - QPY and samplomatic raise their own errors
        raise WireFormatError(f"params.instructions: {exc}") from None
    return NoiseLearnerInput(
        generation=3,
        version=version,
        instructions=list(decoded),
        options=options.model_dump(),
        v3_options=options,
    )


def _decode_v2(params: Mapping[str, Any], num_qubits: int | None) -> NoiseLearnerInput:
    from ibm_quantum_schemas.noise_learner_v2.version_0_1 import ParamsModel

    from .circuits import decode_circuit

    _check_keys(ParamsModel, params, "params")
    circuits = params.get("circuits")
    if not isinstance(circuits, list):
        raise WireFormatError("params.circuits: expected a list of circuits")
    decoded = [
        decode_circuit(c, num_qubits=num_qubits, field=f"params.circuits[{i}]").circuit
        for i, c in enumerate(circuits)
    ]
    try:
        model = ParamsModel.model_validate({**params, "circuits": []})
    except ValidationError as exc:
        raise _raise(exc) from None
    return NoiseLearnerInput(
        generation=2, version="v2", circuits=decoded, options=model.options.model_dump()
    )


def decode_noise_learner(params: Any, *, num_qubits: int | None = None) -> NoiseLearnerInput:
    """Validate and decode the ``params`` of a ``noise-learner`` job (v2 or v3, module doc).

    Args:
        params: the job's ``params``.
        num_qubits: the backend's width (v2 OpenQASM circuits are read on it).

    Raises:
        WireFormatError: the message starts with the offending field.
    """
    if not isinstance(params, Mapping):
        raise WireFormatError(f"params: expected an object, got {type(params).__name__}")
    version = params.get("schema_version")
    if version is None:
        return _decode_v2(params, num_qubits)
    if version not in NOISE_LEARNER_V3_VERSIONS:
        raise WireFormatError(
            f"params.schema_version: {version!r} is not a noise-learner input version this "
            f"server runs ({', '.join(NOISE_LEARNER_V3_VERSIONS)}; or no schema_version: v2)"
        )
    return _decode_v3(params, str(version))
