"""Admission of ``executor`` jobs: the checks :func:`.admission.prepare_job` makes for them.

An executor job carries a ``QuantumProgram`` (IBM's models, :mod:`qiskit_rest_provider.wire.
executor`): circuit items (a circuit and its parameter values) and samplex items (a template
circuit and a samplomatic samplex that draws its randomizations). Admission validates the
document with the version's model, decodes the program with qiskit-ibm-runtime's own converters
(so every version the official client sends reads the way it wrote it), then applies the rules
every job obeys: the circuits are ISA for the backend, shots within ``max_shots``, the work
within the job limits and the memory limit.

Options the simulator cannot perform are refused with a 400 naming them (an option accepted is
an option performed): ``init_qubits = false`` (every simulated shot starts in |0>),
``scheduler_timing`` and ``stretch_values`` (no pulse schedule is simulated), a ``meas_level``
other than ``classified`` (no IQ data), and unknown ``experimental`` keys. The one experimental
key this server reads is ``seed_simulator`` (an integer): it makes a job's randomizations and
shots reproducible.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

from ...exceptions import WireFormatError
from ...wire import protocol
from ...wire.executor import decode_program
from ..execution.base import PreparedJob
from .checks import (
    JobInputError,
    _check_isa,
    _from_wire_error,
    _max_shots,
    check_job_size,
    check_rep_delay,
)

__all__ = ["EXPERIMENTAL_KEYS", "MAX_EXECUTOR_SAMPLES", "prepare_executor_job"]

EXPERIMENTAL_KEYS = ("seed_simulator",)
"""``options.experimental`` keys the server performs."""

MAX_EXECUTOR_SAMPLES = 10_000_000
"""The most shots x bound circuits one executor job may ask for (as the sampler's limit)."""


def _refuse(message: str, field: str, code: str = "invalid_option") -> JobInputError:
    return JobInputError(f"{field}: {message}", field=field, code=code)


def _check_options(params: dict) -> dict[str, Any]:
    """The options the worker needs; a 400 for every option it could not perform."""
    opts = params.get("options") or {}
    if opts.get("init_qubits") is False:
        raise _refuse(
            "false is not supported: every simulated shot starts from |0...0>",
            "params.options.init_qubits",
        )
    for key in ("scheduler_timing", "stretch_values"):
        if opts.get(key):
            raise _refuse(
                "true is not supported: the reference server does not schedule pulses",
                f"params.options.{key}",
            )
    meas_level = (params.get("quantum_program") or {}).get("meas_level", "classified")
    if meas_level != "classified":
        raise _refuse(
            f"{meas_level!r} is not supported: only 'classified' (bits) is simulated",
            "params.quantum_program.meas_level",
        )
    experimental = opts.get("experimental") or {}
    for key in experimental:
        if key not in EXPERIMENTAL_KEYS:
            raise _refuse(
                f"unknown experimental option (this server performs: "
                f"{', '.join(EXPERIMENTAL_KEYS)})",
                f"params.options.experimental.{key}",
            )
    seed = experimental.get("seed_simulator")
    if seed is not None and (
        not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63
    ):
        raise _refuse(
            f"expected a non-negative integer, got {seed!r}",
            "params.options.experimental.seed_simulator",
        )
    return {"seed_simulator": seed, "rep_delay": opts.get("rep_delay")}


def _plan(sizing: dict[str, Any]) -> dict[str, Any]:
    from ..execution.method import PLAN_KEY

    return {PLAN_KEY: sizing[PLAN_KEY]} if PLAN_KEY in sizing else {}


def _item_sets(item: Any) -> int:
    shape = tuple(getattr(item, "shape", ()) or ())
    return max(1, math.prod(int(s) for s in shape))


def prepare_executor_job(params: dict, backend: Any) -> PreparedJob:
    """Validate an ``executor`` job for ``backend``.

    The decoded program rides along in ``PreparedJob.decoded`` for a worker in this process; a
    worker process decodes ``params`` again (cheaper than pickling the program: see
    :class:`..execution.base.PreparedJob`).

    Raises:
        JobInputError: naming the field.
    """
    try:
        program, _options, version = decode_program(params)
    except WireFormatError as exc:
        raise _from_wire_error(exc) from None
    options = _check_options(params)  # after the model: the document's types are known
    check_rep_delay({"execution": {"rep_delay": options["rep_delay"]}}, backend)
    shots = int(program.shots)
    max_shots = _max_shots(backend)
    if not 1 <= shots <= max_shots:
        raise JobInputError(
            f"params.quantum_program.shots: must be between 1 and {max_shots} (backend "
            f"max_shots), got {shots}",
            field="params.quantum_program.shots",
            code="invalid_shots",
        )
    proxies = []
    total = 0
    for i, item in enumerate(program.items):
        field = f"params.quantum_program.items[{i}]"
        circuit = item.circuit
        if circuit.num_qubits > backend.num_qubits:
            raise JobInputError(
                f"{field}: the circuit has {circuit.num_qubits} qubits but backend "
                f"{backend.name!r} has {backend.num_qubits}",
                field=field,
                code="too_many_qubits",
            )
        try:
            _check_isa(circuit, backend.target, i, backend.name)
        except JobInputError as exc:
            raise JobInputError(
                str(exc).replace(f"params.pubs[{i}].circuit", field).replace("PUB", "item"),
                field=field,
                code=exc.code,
            ) from None
        sets = _item_sets(item)
        total += shots * sets
        proxies.append(
            SimpleNamespace(
                circuit=circuit, shots=shots, parameter_values=SimpleNamespace(shape=(sets,))
            )
        )
    if total > MAX_EXECUTOR_SAMPLES:
        raise JobInputError(
            f"params.quantum_program: the job asks for {total} samples (shots x bound circuits "
            f"over all items); this server accepts at most {MAX_EXECUTOR_SAMPLES} per job. "
            "Split the program.",
            field="params.quantum_program",
            code="job_too_large",
        )
    sizing: dict[str, Any] = {"simulator": {}}  # the engine chooses the method, as for sampler
    try:
        check_job_size(protocol.SAMPLER, proxies, backend, sizing)
    except JobInputError as exc:
        raise JobInputError(
            str(exc).replace("params.pubs", "params.quantum_program.items"),
            field=(exc.field or "").replace("params.pubs", "params.quantum_program.items"),
            code=exc.code,
        ) from None
    return PreparedJob(
        program_id=protocol.EXECUTOR,
        backend_name=backend.name,
        pubs=[],
        options={"schema_version": version, **options, **_plan(sizing)},
        support_qiskit=False,
        payload=params,
        shots=total,
        decoded=(program, version),
    )
