"""Splitting one job across several workers, and merging the parts' results.

A job alone on the server would otherwise run in one worker while the others idle. The
dispatcher (:mod:`qiskit_rest_provider.server.jobs.dispatcher`) cuts such a job into *parts*
with :func:`plan_parts` — runs of consecutive PUBs and, for a sampler PUB of many shots that Aer
samples shot by shot, runs of its :func:`~.sampler.pub_shot_chunks` — and runs each part as its
own executor task. Each worker answers with one encoded piece per PUB (:func:`part_pieces`);
:func:`merge_outcomes` joins them in PUB order into the result body without decoding them (only
a PUB whose shots were split has its chunks' arrays joined and encoded once).

Seeds depend on a PUB's place in the job only (see :mod:`.sampler` and :mod:`.estimator`), so a
seeded job gives the same result whether it ran whole or split, and however it was split.

Example (two parts, run here one after the other):
    >>> from qiskit import QuantumCircuit
    >>> from qiskit.primitives.containers.sampler_pub import SamplerPub
    >>> from qiskit_rest_provider.server.backends.catalog import BackendCatalog
    >>> from qiskit_rest_provider.server.jobs.admission import prepare_job
    >>> from qiskit_rest_provider.server.execution.runner import execute_job
    >>> from qiskit_rest_provider.wire.pubs import encode_sampler_params
    >>> from qiskit_rest_provider.wire.results import decode_result
    >>> bell = QuantumCircuit(2)
    >>> _ = bell.h(0), bell.cx(0, 1), bell.measure_all()
    >>> pubs = [SamplerPub.coerce(bell, shots=64) for _ in range(3)]
    >>> params = encode_sampler_params(pubs, options={"simulator": {"seed_simulator": 7}})
    >>> backend = BackendCatalog.load().get("rest_simulator")
    >>> job = prepare_job("sampler", params, backend)
    >>> len(plan_parts(job, 2))  # three Bell PUBs: too small to be worth splitting
    1
    >>> plan = plan_parts(job, 2, min_seconds=0)
    >>> [part.pub_indices for _, part in plan]
    [[0], [1], [2]]
    >>> outcomes = [execute_job(sub, backend, part) for sub, part in plan]
    >>> merged = merge_outcomes([vars(o) for o in outcomes], plan, qiskit=job.support_qiskit)
    >>> whole = decode_result(execute_job(job, backend).result_body)
    >>> split = decode_result(merged.body)
    >>> all((a.data.meas.array == b.data.meas.array).all() for a, b in zip(whole, split))
    True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...wire import protocol
from .base import JobPart, PreparedJob

__all__ = [
    "PARTS_PER_WORKER",
    "SPLIT_MIN_SECONDS",
    "MergedResult",
    "may_split",
    "merge_outcomes",
    "part_pieces",
    "plan_parts",
]

PARTS_PER_WORKER = 2
"""A split job is cut into up to this many parts per worker it may use. Smaller parts balance
uneven PUBs and bound how long a new job of another instance waits for a worker (at most one
part), at a few milliseconds of overhead per part."""


def _num_sets(pub: Any) -> int:
    shape = tuple(getattr(pub, "shape", ()))
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


SPLIT_MIN_SECONDS = 0.05
"""A job whose estimated simulation time (:func:`_units`) is below this runs whole: each part
costs a few milliseconds of hand-over and encoding, more than a small job would gain (measured:
a 3-PUB Bell job took 31 ms split over two workers against 16 ms whole)."""

_AMPLITUDE_GATE_SECONDS = 1e-9  # one gate on one amplitude (statevector, measured ~1 ns)
_SHOT_SECONDS = 1e-6  # fixed cost of one shot Aer samples shot by shot


def _units(prepared: PreparedJob, noisy: bool) -> list[tuple[int, int | None, float]]:
    """The job's splittable units: ``(pub index, chunk index or None, seconds)`` in job order.

    The seconds are a rough estimate (gates x 2^active qubits per parameter set, 4^n under noise
    for the estimator's density matrix, x shots where Aer samples each shot): good enough to
    balance parts and to leave small jobs whole, not a promise.
    """
    from .sampler import final_measurement_map, pub_shot_chunks
    from .simulators import active_qubits
    from .suppression import sampler_suppression_applies

    sampler = prepared.program_id == protocol.SAMPLER
    method = _method(prepared)
    # [mitigation] twirled/decoupled PUBs run their own shot split (randomizations): whole PUBs
    suppressed = sampler and sampler_suppression_applies(prepared.options)
    units: list[tuple[int, int | None, float]] = []
    for j, pub in enumerate(prepared.pubs):
        sets = max(1, _num_sets(pub))
        gates = max(1, len(pub.circuit.data))
        width = min(len(active_qubits([pub.circuit])), 40)
        state = 2.0**width * _AMPLITUDE_GATE_SECONDS
        if not sampler:
            observables = max(1, int(np.prod(getattr(pub.observables, "shape", ()) or (1,))))
            exact = 4.0**width if noisy and width <= 10 else 2.0**width * (1000 if noisy else 1)
            seconds = sets * (gates + observables) * exact * _AMPLITUDE_GATE_SECONDS
            units.append((j, None, seconds))
            continue
        shots = int(pub.shots)
        chunks = pub_shot_chunks(pub, method=method, noisy=noisy)
        per_shot = noisy or final_measurement_map(pub.circuit) is None
        if per_shot and len(chunks) > 1 and not suppressed:
            # Aer samples shot by shot here: the chunks can run on different workers
            units.extend(
                (j, c, sets * (hi - lo) * (gates * state + _SHOT_SECONDS))
                for c, (lo, hi) in enumerate(chunks)
            )
        elif per_shot:
            units.append((j, None, sets * shots * (gates * state + _SHOT_SECONDS)))
        else:
            units.append((j, None, sets * gates * state))
    return units


def may_split(prepared: PreparedJob) -> bool:
    """Whether a sampler/estimator job has more than one unit (cheap; before :func:`plan_parts`)."""
    from .sampler import MIN_SHOT_CHUNK

    if prepared.program_id not in protocol.PRIMITIVE_PROGRAMS:
        return False  # the executor program (and anything else) runs whole
    if len(prepared.pubs) > 1:
        return True
    return prepared.program_id == protocol.SAMPLER and any(
        int(pub.shots) >= 2 * MIN_SHOT_CHUNK for pub in prepared.pubs
    )


def plan_parts(
    prepared: PreparedJob,
    workers: int,
    *,
    noisy: bool = False,
    min_seconds: float = SPLIT_MIN_SECONDS,
) -> list[tuple[PreparedJob, JobPart]]:
    """Cut a job into parts for up to ``workers`` workers (one part: not worth splitting).

    Parts are runs of consecutive units of about equal estimated time, at most
    :data:`PARTS_PER_WORKER` per worker; a job estimated under ``min_seconds`` runs whole.

    Args:
        prepared: the validated job.
        workers: how many workers the job may use now.
        noisy: whether the job simulates noise (then every sampler PUB is sampled shot by shot
            and a PUB of many shots may be split by shots; ideal final-measurement PUBs are
            sampled from one exact distribution and are never split by shots).
        min_seconds: the least estimated simulation time worth splitting.

    Returns:
        ``(part's PreparedJob, JobPart)`` per part, in job order.
    """
    units = _units(prepared, noisy) if prepared.program_id in protocol.PRIMITIVE_PROGRAMS else []
    count = min(len(units), max(1, workers) * PARTS_PER_WORKER)
    total = sum(weight for _, _, weight in units)
    if workers < 2 or count < 2 or total < min_seconds:
        return [
            (
                prepared,
                JobPart(
                    0,
                    list(range(len(prepared.pubs))),
                    _offsets(prepared),
                    [None] * len(prepared.pubs),
                ),
            )
        ]
    groups: list[list[tuple[int, int | None, float]]] = [[]]
    done = 0.0
    for k, unit in enumerate(units):
        left = len(units) - k  # units not yet placed, this one included
        parts_left = count - len(groups)
        target = total * len(groups) / count
        if groups[-1] and parts_left > 0 and (done + unit[2] / 2 > target or left <= parts_left):
            groups.append([])
        groups[-1].append(unit)
        done += unit[2]
    offsets = _offsets(prepared)
    chunk_counts: dict[int, int] = {}  # per PUB split by shots: how many chunks it has
    for j, c, _ in units:
        if c is not None:
            chunk_counts[j] = chunk_counts.get(j, 0) + 1
    plan = []
    for index, group in enumerate(groups):
        pub_indices: list[int] = []
        chunks: list[tuple[int, int] | None] = []
        for j, c, _ in group:
            if pub_indices and pub_indices[-1] == j:
                first, _stop = chunks[-1] or (0, 0)
                chunks[-1] = (first, (c or 0) + 1)
                continue
            pub_indices.append(j)
            chunks.append(None if c is None else (c, c + 1))
        for k, j in enumerate(pub_indices):  # all of a PUB's chunks in one part: the whole PUB
            rng = chunks[k]
            if rng is not None and rng == (0, chunk_counts[j]):
                chunks[k] = None
        sub = dataclasses.replace(
            prepared,
            pubs=[prepared.pubs[j] for j in pub_indices],
            pub_shots=[prepared.pub_shots[j] for j in pub_indices] if prepared.pub_shots else [],
        )
        plan.append((sub, JobPart(index, pub_indices, [offsets[j] for j in pub_indices], chunks)))
    return plan


def _method(prepared: PreparedJob) -> str:
    """The Aer method the job's simulator runs (what :func:`.simulators.simulator_for` sets)."""
    from .method import plan_of

    plan = plan_of(prepared.options)
    return str(plan["method"]) if plan else "automatic"


def _offsets(prepared: PreparedJob) -> list[int]:
    if prepared.program_id != protocol.SAMPLER:
        return [0] * len(prepared.pubs)
    from .sampler import experiment_offsets

    return experiment_offsets(prepared.pubs)


def part_pieces(
    result: Any, part: JobPart, *, qiskit: bool
) -> tuple[list[bytes | None], dict[int, dict[str, Any]]]:
    """A part's result as pieces (in a worker): one encoded piece per whole PUB.

    A PUB of which the part ran only some shot chunks has ``None`` as its piece and its chunks'
    bit arrays in the second value (keyed by its position in the part), for the merge to join.
    """
    from qiskit.primitives import PrimitiveResult

    from ...wire.results import encode_pub_results

    pieces: list[bytes | None] = []
    arrays: dict[int, dict[str, Any]] = {}
    for i, pub in enumerate(result):
        if part.chunks[i] is None:
            pieces.extend(encode_pub_results(PrimitiveResult([pub]), qiskit=qiskit))
            continue
        pieces.append(None)
        arrays[i] = {
            "fields": {name: (pub.data[name].array, pub.data[name].num_bits) for name in pub.data},
            "shape": tuple(pub.data.shape),
            "metadata": dict(pub.metadata),
        }
    return pieces, arrays


@dataclass
class MergedResult:
    """The merged outcome of a split job."""

    body: bytes
    quantum_seconds: float
    metrics: dict


def _merge_values(values: list[Any]) -> Any:
    """Numbers summed, dicts merged key by key, lists joined, anything else: the first."""
    if all(isinstance(v, bool) for v in values) or not values:
        return values[0] if values else None
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return sum(values)
    if all(isinstance(v, dict) for v in values):
        keys: list[str] = []
        for v in values:
            keys.extend(k for k in v if k not in keys)
        return {k: _merge_values([v[k] for v in values if k in v]) for k in keys}
    if all(isinstance(v, list) for v in values):
        return [item for v in values for item in v]
    return values[0]


def _merge_metrics(
    outcomes: Sequence[dict[str, Any]], plan: Sequence[tuple[PreparedJob, JobPart]]
) -> dict[str, Any]:
    """Per-PUB lists in PUB order (a PUB split by shots counted once); the rest summed."""
    per_pub: dict[str, dict[int, Any]] = {}
    others: dict[str, list[Any]] = {}
    for outcome, (_, part) in zip(outcomes, plan):
        for key, value in (outcome.get("metrics") or {}).items():
            if isinstance(value, list) and len(value) == len(part.pub_indices):
                slot = per_pub.setdefault(key, {})
                for j, item in zip(part.pub_indices, value):
                    slot.setdefault(j, item)
            else:
                others.setdefault(key, []).append(value)
    metrics = {key: _merge_values(values) for key, values in others.items()}
    for key, slot in per_pub.items():
        metrics[key] = [slot[j] for j in sorted(slot)]
    if "num_circuits" in metrics:
        metrics["num_circuits"] = len({j for _, part in plan for j in part.pub_indices})
    return metrics


def _merge_metadata(outcomes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    from ...wire._spans import ExecutionSpans

    metadata = dict(outcomes[0].get("result_metadata") or {})
    spans: list[Any] = []
    for outcome in outcomes:
        execution = (outcome.get("result_metadata") or {}).get("execution") or {}
        spans.extend(execution.get("execution_spans") or [])
    if spans:
        spans.sort(key=lambda span: span.start)
        metadata["execution"] = {
            **metadata.get("execution", {}),
            "execution_spans": ExecutionSpans(spans),
        }
    return metadata


def merge_outcomes(
    outcomes: Sequence[dict[str, Any]],
    plan: Sequence[tuple[PreparedJob, JobPart]],
    *,
    qiskit: bool,
) -> MergedResult:
    """Join the parts' outcomes (worker dicts, in part order) into the job's result.

    Cheap: whole PUBs' pieces are concatenated as bytes; only a PUB split by shots has its
    chunks' packed bit arrays concatenated (shots axis) and encoded once.
    """
    from qiskit.primitives import BitArray, DataBin, PrimitiveResult
    from qiskit.primitives.containers import SamplerPubResult

    from ...wire.results import assemble_result, encode_pub_results

    pieces: dict[int, bytes] = {}
    chunked: dict[int, list[dict[str, Any]]] = {}
    for outcome, (_, part) in zip(outcomes, plan):
        arrays = outcome.get("chunk_arrays") or {}
        for i, (j, piece) in enumerate(zip(part.pub_indices, outcome["pieces"])):
            if piece is not None:
                pieces[j] = piece
            else:
                chunked.setdefault(j, []).append(arrays[i])
    for j, chunks in chunked.items():
        first = chunks[0]
        fields = {}
        for name, (_, num_bits) in first["fields"].items():
            joined = np.concatenate([chunk["fields"][name][0] for chunk in chunks], axis=-2)
            fields[name] = BitArray(joined, num_bits)
        shape = first["shape"]
        shots = next(iter(fields.values())).num_shots if fields else first["metadata"]["shots"]
        pub = SamplerPubResult(
            DataBin(**fields, shape=shape), metadata={**first["metadata"], "shots": shots}
        )
        pieces[j] = encode_pub_results(PrimitiveResult([pub]), qiskit=qiskit)[0]
    body = assemble_result(
        [pieces[j] for j in sorted(pieces)], _merge_metadata(outcomes), qiskit=qiskit
    )
    quantum = float(sum(float(o.get("quantum_seconds") or 0.0) for o in outcomes))
    return MergedResult(body, quantum, _merge_metrics(outcomes, plan))
