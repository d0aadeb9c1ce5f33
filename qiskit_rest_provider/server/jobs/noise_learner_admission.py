"""Admission of ``noise-learner`` jobs (v2 and v3: :mod:`qiskit_rest_provider.wire.noise_learner`).

The document is validated with its ``ibm-quantum-schemas`` model, the layers to learn are found
(v2) or checked with qiskit-ibm-runtime's own instruction validation (v3: a twirled box of ISA
operations on physical qubits), and the learning program is built once here so that its size
(shots x learning circuits, memory) is held to the same limits as every other job.

Options the server cannot perform are a 400 naming them: v3 ``bit_flip_checks`` and
``post_selection`` (no post-selected learning circuits are simulated), ``init_qubits = false``; v2
``simulator.noise_model`` / ``coupling_map`` / ``basis_gates`` (jobs simulate the backend's own
noise and connectivity), any ``experimental`` key, and ``support_qiskit = false``. A v2
``simulator.seed_simulator`` makes the learning reproducible (the v3 models carry no seed).
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

from ...exceptions import WireFormatError
from ...wire import protocol
from ..execution.base import PreparedJob
from .checks import (
    JobInputError,
    _check_isa,
    _from_wire_error,
    check_job_size,
    check_rep_delay,
)

__all__ = ["MAX_LEARNING_SAMPLES", "prepare_noise_learner_job"]

MAX_LEARNING_SAMPLES = 10_000_000
"""The most shots x learning circuits one noise-learner job may run."""


def _refuse(message: str, field: str) -> JobInputError:
    return JobInputError(f"{field}: {message}", field=field, code="invalid_option")


def _seed(value: Any, field: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise _refuse(f"expected a non-negative integer, got {value!r}", field)
    return value


def _v3_options(params: dict, decoded: Any, backend: Any) -> dict[str, Any]:
    raw = params.get("options") or {}
    for check in ("pre_circuit", "post_circuit"):
        if ((raw.get("bit_flip_checks") or {}).get(check) or {}).get("enable"):
            raise _refuse(
                "true is not supported: the reference server runs no bit-flip checks",
                f"params.options.bit_flip_checks.{check}.enable",
            )
    if (raw.get("post_selection") or {}).get("enable"):
        raise _refuse(
            "true is not supported: the reference server runs no post-selection",
            "params.options.post_selection.enable",
        )
    if raw.get("init_qubits") is False:
        raise _refuse(
            "false is not supported: every simulated shot starts from |0...0>",
            "params.options.init_qubits",
        )
    check_rep_delay({"execution": {"rep_delay": raw.get("rep_delay")}}, backend)
    return {"seed_simulator": None}  # the v3 models carry no seed


def _v2_options(params: dict, decoded: Any) -> dict[str, Any]:
    options = decoded.options
    simulator = options.get("simulator") or {}
    for key in ("noise_model", "coupling_map", "basis_gates"):
        if simulator.get(key) is not None:
            raise _refuse(
                "is not supported: noise-learner jobs simulate the backend's own noise and "
                "connectivity",
                f"params.options.simulator.{key}",
            )
    for key in options.get("experimental") or {}:
        raise _refuse("unknown experimental option", f"params.options.experimental.{key}")
    if options.get("support_qiskit") is False:
        raise _refuse(
            "false is not supported: results are Qiskit-encoded LayerError objects",
            "params.options.support_qiskit",
        )
    most = options.get("max_layers_to_learn")
    if most is not None and most < 0:
        raise _refuse(f"must be >= 0, got {most}", "params.options.max_layers_to_learn")
    return {"seed_simulator": _seed(simulator.get("seed_simulator"), "params.options.simulator")}


def _check_instructions(instructions: list, backend: Any) -> None:
    from qiskit_ibm_runtime.exceptions import IBMInputValueError
    from qiskit_ibm_runtime.noise_learner_v3.validation import validate_instruction

    if not instructions:
        raise JobInputError(
            "params.instructions: no instruction to learn", field="params.instructions"
        )
    for i, instruction in enumerate(instructions):
        try:
            validate_instruction(instruction, backend.target)
        except IBMInputValueError as exc:
            field = f"params.instructions[{i}]"
            raise JobInputError(f"{field}: {exc.message}", field=field) from None


def prepare_noise_learner_job(params: dict, backend: Any) -> PreparedJob:
    """Validate a ``noise-learner`` job for ``backend``.

    The decoded params and their layers ride along in ``PreparedJob.decoded`` for a worker in
    this process; a worker process decodes ``params`` again (see
    :class:`..execution.base.PreparedJob`).

    Raises:
        JobInputError: naming the field.
    """
    from ...wire.noise_learner import decode_noise_learner
    from ..execution.learning import learning_program, v2_layers

    try:
        decoded = decode_noise_learner(params, num_qubits=backend.num_qubits)
    except WireFormatError as exc:
        raise _from_wire_error(exc) from None
    if decoded.generation == 3:
        options = _v3_options(params, decoded, backend)
        _check_instructions(decoded.instructions, backend)
        instructions = decoded.instructions
    else:
        options = _v2_options(params, decoded)
        for i, circuit in enumerate(decoded.circuits):
            try:
                _check_isa(circuit, backend.target, i, backend.name)
            except JobInputError as exc:
                field = f"params.circuits[{i}]"
                raise JobInputError(
                    str(exc).replace(f"params.pubs[{i}].circuit", field).replace("PUB", "circuit"),
                    field=field,
                    code=exc.code,
                ) from None
        instructions = v2_layers(decoded.circuits, decoded.options, backend.num_qubits)
    settings = {
        key: decoded.options[key]
        for key in ("num_randomizations", "shots_per_randomization", "layer_pair_depths")
    }
    total = 0
    if instructions:
        try:
            program = learning_program(instructions, settings, backend)
        except ValueError as exc:
            raise JobInputError(f"params.options: {exc}", field="params.options") from None
        proxies = []
        for item in program.items:
            sets = max(1, math.prod(int(s) for s in (item.shape or ())))
            total += sets * int(program.shots)
            proxies.append(
                SimpleNamespace(
                    circuit=item.circuit,
                    shots=int(program.shots),
                    parameter_values=SimpleNamespace(shape=(sets,)),
                )
            )
        if total > MAX_LEARNING_SAMPLES:
            raise JobInputError(
                f"params.options: the learning needs {total} shots (randomizations x shots per "
                f"randomization x learning circuits); this server runs at most "
                f"{MAX_LEARNING_SAMPLES} per job. Ask for fewer randomizations, shots or depths.",
                field="params.options",
                code="job_too_large",
            )
        check_job_size(protocol.SAMPLER, proxies, backend, {})
    return PreparedJob(
        program_id=protocol.NOISE_LEARNER,
        backend_name=backend.name,
        pubs=[],
        options={**options, "settings": settings, "generation": decoded.generation},
        support_qiskit=decoded.generation == 2,
        payload=params,
        shots=total,
        decoded=(decoded, instructions),
    )
