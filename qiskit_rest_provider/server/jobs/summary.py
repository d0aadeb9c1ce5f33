"""What a person wants to see of a job's PUBs and result: shots, counts, expectation values.

The dashboard (:mod:`qiskit_rest_provider.server.ui`) shows these summaries; they are built here
because decoding a stored result body is the contract's business (:mod:`...wire.results`), which
the dashboard does not import. Everything is reduced to plain numbers and strings, and bounded:
at most :data:`MAX_OUTCOMES` outcomes per register (the rest summed as ``other``) and
:data:`MAX_POINTS` expectation values per PUB, so a million-shot result never reaches a template.

Example:
    >>> from qiskit_rest_provider.server.jobs.summary import pub_inputs
    >>> [p.shots for p in pub_inputs("sampler", {"pubs": [["qasm", None, 100]], "version": 2})]
    [100]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...wire import protocol

logger = logging.getLogger(__name__)

__all__ = ["PubInput", "PubOutcome", "pub_inputs", "result_outcomes"]

#: Most outcomes listed per classical register (the least frequent are summed as ``other``).
MAX_OUTCOMES = 24
#: Most expectation values kept per PUB (a plot of more shows nothing more).
MAX_POINTS = 400


@dataclass(frozen=True)
class PubInput:
    """One PUB as submitted: its index, shots (sampler) or precision (estimator), sizes."""

    index: int
    shots: int | None = None
    precision: float | None = None
    parameter_sets: int | None = None
    observables: int | None = None


@dataclass
class PubOutcome:
    """One PUB's result: counts per register (sampler) or expectation values (estimator)."""

    index: int
    counts: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    shots: int | None = None
    evs: list[float] = field(default_factory=list)
    stds: list[float] = field(default_factory=list)
    shape: tuple[int, ...] = ()


def _length(value: Any) -> int | None:
    """The number of entries of a list-like parameter/observable spec (``None`` if absent)."""
    if value is None:
        return None
    if isinstance(value, list):
        return len(value) if value else 0
    if isinstance(value, dict):  # {"__type__": "ndarray", ...} or {"name": [...]} forms
        inner = value.get("__value__", value)
        if isinstance(inner, dict) and inner:
            first = next(iter(inner.values()))
            return len(first) if isinstance(first, list) else 1
        return 1
    return 1


def pub_inputs(program_id: str, params: Any) -> list[PubInput]:
    """The PUBs of a job's params, as far as they can be read without decoding circuits."""
    if not isinstance(params, dict) or not isinstance(params.get("pubs"), list):
        return []
    raw_options = params.get("options")
    options: dict[str, Any] = raw_options if isinstance(raw_options, dict) else {}
    out = []
    for index, pub in enumerate(params["pubs"]):
        items = pub if isinstance(pub, list) else [pub]
        if program_id == protocol.SAMPLER:
            shots = items[2] if len(items) > 2 and isinstance(items[2], int) else None
            if shots is None and isinstance(options.get("default_shots"), int):
                shots = options["default_shots"]
            sets = _length(items[1]) if len(items) > 1 else None
            out.append(PubInput(index, shots=shots, parameter_sets=sets))
        else:
            prec = items[3] if len(items) > 3 and isinstance(items[3], (int, float)) else None
            if prec is None and isinstance(options.get("default_precision"), (int, float)):
                prec = float(options["default_precision"])
            obs = _length(items[1]) if len(items) > 1 else None
            sets = _length(items[2]) if len(items) > 2 else None
            out.append(PubInput(index, precision=prec, parameter_sets=sets, observables=obs))
    return out


def _top_counts(counts: dict[str, int]) -> list[tuple[str, int]]:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(ranked) <= MAX_OUTCOMES:
        return sorted(ranked)  # few outcomes: in bitstring order, as a histogram reads best
    head = ranked[: MAX_OUTCOMES - 1]
    rest = sum(n for _, n in ranked[MAX_OUTCOMES - 1 :])
    return [*sorted(head), ("other", rest)]


def _floats(values: Any) -> list[float]:
    arr = np.asarray(values, dtype=float).ravel()[:MAX_POINTS]
    return [float(v) for v in arr]


def result_outcomes(program_id: str, body: bytes) -> list[PubOutcome]:
    """Decode a Completed job's result body into bounded per-PUB summaries.

    Raises:
        ValueError: the body is not a result of either encoding (``WireFormatError``).
    """
    from ...wire.results import decode_result  # lazily: the wire code pulls in qiskit

    result = decode_result(body)
    out = []
    for index, pub in enumerate(result):
        data = pub.data
        outcome = PubOutcome(index)
        for name in data.keys():
            bits = data[name]
            if hasattr(bits, "get_counts"):  # a BitArray: one classical register
                outcome.counts[name] = _top_counts(bits.get_counts())
                outcome.shots = int(bits.num_shots)
        if "evs" in data:
            evs = np.asarray(data["evs"])
            outcome.shape = tuple(int(n) for n in evs.shape)
            outcome.evs = _floats(evs)
            if "stds" in data:
                outcome.stds = _floats(data["stds"])
        out.append(outcome)
    return out
