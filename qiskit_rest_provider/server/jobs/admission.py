"""Checks a job must pass before it is accepted: ISA for the backend's Target, and limits.

Every failure is a :class:`JobInputError` (HTTP 400) whose message starts with the offending
field and says what would be accepted, e.g. which qubit pairs a two-qubit gate exists on.

Limits that keep one request from hogging the server: shots per PUB <= the backend's
``max_shots``; total samples (shots x parameter sets over all PUBs) <= :data:`MAX_TOTAL_SHOTS`;
estimator parameter sets <= :data:`MAX_ESTIMATOR_SETS` and expectation values
<= :data:`MAX_ESTIMATOR_ELEMENTS` per job.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from qiskit.circuit import QuantumCircuit

from ...wire.isa import unsupported_instructions

__all__ = [
    "MAX_ESTIMATOR_ELEMENTS",
    "MAX_ESTIMATOR_SETS",
    "MAX_TOTAL_SHOTS",
    "JobInputError",
    "check_circuits",
    "check_estimator_limits",
    "check_rep_delay",
    "check_sampler_limits",
]

MAX_TOTAL_SHOTS = 10_000_000
"""Sampler: at most this many samples (shots × parameter sets, summed over PUBs) per job."""

MAX_ESTIMATOR_SETS = 100_000
"""Estimator: at most this many parameter sets (circuit simulations), summed over PUBs."""

MAX_ESTIMATOR_ELEMENTS = 10_000_000
"""Estimator: at most this many expectation values (broadcast elements), summed over PUBs."""

_DEFAULT_MAX_SHOTS = 100_000


class JobInputError(ValueError):
    """The job's ``params`` are invalid for this program/backend (HTTP 400).

    Attributes:
        field: the offending field, e.g. ``"params.pubs[0].circuit"`` or
            ``"params.options.twirling.foo"``.
        code: short error code for the D10 error body.
    """

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid_params"):
        super().__init__(message)
        self.field = field
        self.code = code


def _check_isa(circuit: QuantumCircuit, target: Any, pub_index: int, backend_name: str) -> None:
    """Raise :class:`JobInputError` for the first instruction the Target does not accept.

    The rule is the contract's (:func:`qiskit_rest_provider.wire.isa.unsupported_instructions`),
    the one the client checks before it submits, so both halves reject the same circuits.
    """
    rejected = unsupported_instructions(circuit, target, first_only=True)
    if not rejected:
        return
    issue = rejected[0]
    field = f"params.pubs[{pub_index}].circuit"
    if issue.reason == "angle_out_of_bounds":
        raise JobInputError(
            f"{field}: PUB {pub_index}: instruction '{issue.name}' on {list(issue.qargs)} "
            f"{issue.detail}",
            field=field,
            code="angle_out_of_bounds",
        )
    where = f" on {issue.where}" if issue.qargs else ""
    raise JobInputError(
        f"{field}: PUB {pub_index} is not ISA for backend {backend_name!r}: "
        f"instruction '{issue.name}'{where} {issue.detail}. Transpile the circuit for the "
        "backend's Target first.",
        field=field,
        code="non_isa_circuit",
    )


def _max_shots(backend: Any) -> int:
    value = backend.configuration.get("max_shots")
    try:
        return int(value) if value else _DEFAULT_MAX_SHOTS
    except (TypeError, ValueError):
        return _DEFAULT_MAX_SHOTS


def check_circuits(pubs: list, backend: Any) -> None:
    """Every PUB's circuit fits the backend and is ISA for its Target."""
    width = backend.num_qubits
    for i, pub in enumerate(pubs):
        if pub.circuit.num_qubits > width:
            raise JobInputError(
                f"params.pubs[{i}].circuit: the circuit has {pub.circuit.num_qubits} qubits but "
                f"backend {backend.name!r} has {width}",
                field=f"params.pubs[{i}].circuit",
                code="too_many_qubits",
            )
        _check_isa(pub.circuit, backend.target, i, backend.name)


def check_rep_delay(options: dict, backend: Any) -> None:
    """``options.execution.rep_delay`` (seconds) must lie in the backend's range (microseconds)."""
    rep_delay = options["execution"].get("rep_delay")
    bounds = backend.configuration.get("rep_delay_range")
    if rep_delay is None or not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
        return
    low, high = (float(b) * 1e-6 for b in bounds)
    if not low - 1e-15 <= rep_delay <= high + 1e-15:
        key = "params.options.execution.rep_delay"
        raise JobInputError(
            f"{key}: {rep_delay} s is outside the backend's rep_delay_range [{low:g}, {high:g}] s",
            field=key,
            code="invalid_option",
        )


def _pub_sizes(pub: Any) -> int:
    return int(np.prod(pub.parameter_values.shape, dtype=np.int64))


def check_sampler_limits(pubs: list, backend: Any) -> None:
    """Shots per PUB within ``max_shots``; total samples within :data:`MAX_TOTAL_SHOTS`."""
    max_shots = _max_shots(backend)
    total = 0
    for i, pub in enumerate(pubs):
        if not 1 <= pub.shots <= max_shots:
            raise JobInputError(
                f"params.pubs[{i}].shots: must be between 1 and {max_shots} "
                f"(backend max_shots), got {pub.shots}",
                field=f"params.pubs[{i}].shots",
                code="invalid_shots",
            )
        total += int(pub.shots) * max(_pub_sizes(pub), 1)
    if total > MAX_TOTAL_SHOTS:
        raise JobInputError(
            f"params.pubs: the job asks for {total} samples (shots x parameter sets over all "
            f"PUBs); this server accepts at most {MAX_TOTAL_SHOTS} per job. Split the job.",
            field="params.pubs",
            code="job_too_large",
        )


def check_estimator_limits(pubs: list) -> None:
    """Positive precisions; parameter sets and expectation values within the job limits."""
    sets = 0
    elements = 0
    for i, pub in enumerate(pubs):
        if not (math.isfinite(pub.precision) and pub.precision > 0):
            raise JobInputError(
                f"params.pubs[{i}].precision: must be a positive number, got {pub.precision}",
                field=f"params.pubs[{i}].precision",
                code="invalid_precision",
            )
        sets += max(_pub_sizes(pub), 1)
        elements += int(np.prod(pub.shape, dtype=np.int64)) if pub.shape else 1
    if sets > MAX_ESTIMATOR_SETS or elements > MAX_ESTIMATOR_ELEMENTS:
        raise JobInputError(
            f"params.pubs: the job has {sets} parameter sets and {elements} expectation values; "
            f"this server accepts at most {MAX_ESTIMATOR_SETS} and {MAX_ESTIMATOR_ELEMENTS} per "
            "job. Split the job.",
            field="params.pubs",
            code="job_too_large",
        )
