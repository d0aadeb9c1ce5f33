"""Sampler V2 execution on Qiskit Aer: PUBs in, :class:`PrimitiveResult` of BitArrays out.

Why this shape (measured, see the runner's benchmark notes): for 20-qubit circuits nearly all
the time is the simulation itself, so the wins are (1) few ``AerSimulator.run`` calls, handing
Aer many circuits at once (one call for all the PUBs sampled from exact probabilities, one per
run of consecutive PUBs with one shot count otherwise), (2) parameter sets passed as
``parameter_binds`` instead of binding in Python (20–30 % faster, and consecutive PUBs that share
one circuit object are merged into one bound circuit), and (3) Aer's per-shot hex memory turned
into packed ``BitArray`` bytes by one vectorised pass per PUB, never a Python loop per shot.

Seeds: with ``options.simulator.seed_simulator`` every PUB's samples depend on the seed and the
PUB's place in the job only, never on how the job was split across workers (:mod:`.split`):
Aer seeds experiment ``k`` of a run with ``seed + stride * k`` (:func:`aer_seed_stride`), so a
run of consecutive PUBs is seeded with ``seed + stride * offset`` (``offset``: its first
experiment's place in the whole job, :func:`experiment_offsets`) and each experiment gets the
seed it would have in one run of the whole job; PUBs sampled from exact probabilities draw from
a generator seeded by ``(seed, PUB index, chunk index)``; a PUB of many shots (or of expensive
ones, :func:`shot_chunk_size`) is sampled in fixed :func:`pub_shot_chunks`, each seeded by
``(seed, PUB index, chunk index)``. Different
parameter sets still get independent samples.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
from qiskit.circuit import Gate, QuantumCircuit
from qiskit.primitives.containers import BitArray, DataBin, PrimitiveResult, SamplerPubResult
from qiskit.primitives.containers.sampler_pub import SamplerPub

from .simulators import simulator_metadata

logger = logging.getLogger(__name__)

__all__ = [
    "PROBABILITY_PATH_MAX_QUBITS",
    "SMALL_PROBABILITY_QUBITS",
    "final_measurement_map",
    "hex_to_bits",
    "run_sampler_pubs",
]

_HEX_LUT = np.zeros(256, dtype=np.uint8)
for _i, _c in enumerate("0123456789abcdef"):
    _HEX_LUT[ord(_c)] = _i
    _HEX_LUT[ord(_c.upper())] = _i


def hex_to_bits(memory: Sequence[str], num_bits: int) -> np.ndarray:
    """Decode Aer's per-shot hex strings (``"0x1f"``) into an unpacked bit matrix.

    Vectorised: the strings become one fixed-width byte array; no Python work per shot.

    Args:
        memory: hex strings, one per shot.
        num_bits: how many classical bits to produce (the circuit's clbit count).

    Returns:
        ``uint8`` array of shape ``(len(memory), num_bits)``; column ``i`` is clbit ``i``.
    """
    count = len(memory)
    if count == 0 or num_bits == 0:
        return np.zeros((count, num_bits), dtype=np.uint8)
    codes_s = np.array(memory, dtype=np.bytes_)
    width = codes_s.dtype.itemsize
    codes = codes_s.view(np.uint8).reshape(count, width)
    lengths = np.count_nonzero(codes, axis=1).astype(np.intp)
    num_nibbles = (num_bits + 3) // 4
    k = np.arange(num_nibbles, dtype=np.intp)
    pos = lengths[:, None] - 1 - k[None, :]  # nibble k (least significant first)
    valid = pos >= 2  # skip the "0x" prefix
    gathered = np.take_along_axis(codes, np.clip(pos, 0, width - 1), axis=1)
    nibbles = np.where(valid, _HEX_LUT[gathered], 0).astype(np.uint8)
    bit_index = np.arange(num_bits)
    return (nibbles[:, bit_index // 4] >> (bit_index % 4).astype(np.uint8)) & 1


def _pack_register(bits: np.ndarray, clbit_indices: list[int]) -> np.ndarray:
    """Pack the given clbit columns into big-endian bytes (BitArray layout)."""
    num_bits = len(clbit_indices)
    num_bytes = (num_bits + 7) // 8
    padded = np.zeros((bits.shape[0], 8 * num_bytes), dtype=np.uint8)
    if num_bits:
        # register bit j sits at column 8*num_bytes-1-j (most significant bit first)
        padded[:, 8 * num_bytes - num_bits :] = bits[:, clbit_indices[::-1]]
    return np.packbits(padded, axis=1, bitorder="big")


@dataclass
class _Unit:
    """One Aer circuit of a run: a circuit plus the PUB slices that bind it.

    A circuit without parameters is repeated ``size`` times (one Aer experiment per element of
    the PUB's shape) so that every element gets its own, independent samples.
    """

    circuit: QuantumCircuit
    binds: dict  # Parameter -> 1-D values
    size: int  # number of parameter sets (experiments)
    members: list[tuple[int, int]]  # (pub index, number of sets) in order

    @property
    def repeats(self) -> int:
        return 1 if self.binds else self.size


def _num_sets(pub: SamplerPub) -> int:
    """How many parameter sets (elements of the PUB's shape) the PUB has; 1 for shape ()."""
    return int(np.prod(pub.shape, dtype=np.int64)) if pub.shape else 1


def _parameter_table(pub: SamplerPub) -> tuple[dict, int]:
    circuit = pub.circuit
    values = pub.parameter_values
    size = int(np.prod(values.shape, dtype=int)) if values.shape else 1
    if circuit.num_parameters == 0:
        return {}, size
    array = values.as_array(circuit.parameters).reshape(size, circuit.num_parameters)
    return {p: array[:, i] for i, p in enumerate(circuit.parameters)}, size


def _build_units(pubs: Sequence[SamplerPub], indices: list[int]) -> list[_Unit]:
    """Aer circuits for the PUBs ``indices``, experiments laid out in PUB order.

    Only *consecutive* PUBs that share one parameterized circuit object are merged, so the
    experiments keep the job's order (each experiment's seed depends on its position).
    """
    units: list[_Unit] = []
    for index in indices:
        pub = pubs[index]
        binds, size = _parameter_table(pub)
        last = units[-1] if units else None
        if last is not None and binds and last.binds and last.circuit is pub.circuit:
            last.binds = {p: np.concatenate([last.binds[p], binds[p]]) for p in last.binds}
        else:
            # circuits without parameters cannot be merged: Aer runs one experiment per circuit
            last = _Unit(pub.circuit, binds, 0, [])
            units.append(last)
        last.size += size
        last.members.append((index, size))
    return units


def _experiment_memory(result: Any, offset: int, count: int) -> list[str]:
    memory: list[str] = []
    for k in range(offset, offset + count):
        exp = result.results[k]
        status = getattr(exp, "status", "")
        if isinstance(status, str) and status.upper().startswith("ERROR"):
            raise RuntimeError(f"simulation failed: {status}")
        data = getattr(exp.data, "memory", None)
        memory.extend(data if data else ["0x0"] * exp.shots)
    return memory


PROBABILITY_PATH_MAX_QUBITS = 26
"""Most measured qubits for the probability fast path (2**26 float64 = 512 MiB)."""
SMALL_PROBABILITY_QUBITS = 12
"""Most measured qubits for that path on the stabilizer and MPS methods (4,096 probabilities)."""


def final_measurement_map(circuit: QuantumCircuit) -> list[tuple[int, int]] | None:
    """``[(qubit, clbit), ...]`` if the circuit is unitary followed by final measurements.

    Such a circuit's samples are draws from the output distribution of its measured qubits, so
    they can be taken from the exact probabilities (ideal simulation only). ``None`` when any
    non-unitary operation (reset, control flow, mid-circuit measurement, ...) makes that wrong.
    """
    index = {q: i for i, q in enumerate(circuit.qubits)}
    clindex = {c: i for i, c in enumerate(circuit.clbits)}
    measured: dict[int, int] = {}
    written: set[int] = set()
    for inst in circuit.data:
        # the instruction's name, not its operation: for a gate kept in Rust, ``operation``
        # builds a Python gate object (5x the cost of this loop); a standard gate is a Gate
        name = inst.name
        if name == "barrier":
            continue
        if name == "measure":
            qubit, clbit = index[inst.qubits[0]], clindex[inst.clbits[0]]
            if qubit in measured or clbit in written:
                return None
            measured[qubit] = clbit
            written.add(clbit)
            continue
        if inst.clbits or not (
            inst.is_standard_gate() or name == "delay" or isinstance(inst.operation, Gate)
        ):
            return None
        if measured and any(index[q] in measured for q in inst.qubits):
            return None  # an operation after a measurement of that qubit
    if len(measured) > PROBABILITY_PATH_MAX_QUBITS:
        return None
    return sorted(measured.items())


def _sample_from_probabilities(
    pubs: Sequence[SamplerPub],
    indices: list[int],
    maps: dict[int, list[tuple[int, int]]],
    simulator: Any,
    draws: dict[int, list[tuple[int, np.random.Generator]]],
) -> dict[int, list[np.ndarray]]:
    """Ideal, final-measurement PUBs: exact probabilities from Aer, samples drawn with NumPy.

    Aer's own sampling costs about as much as simulating a 20-qubit circuit and returns one
    hex string per shot; drawing ``shots`` indices from the cumulative distribution costs
    milliseconds and yields integers directly (measured ~25 % faster per PUB end to end).
    All the PUBs go to Aer in one run (shots do not matter here); ``draws[i]`` lists, per
    shot chunk of PUB ``i``, its shot count and its random generator.

    Returns:
        Per PUB, per chunk, the clbits as ``uint8`` of shape ``(sets, chunk_shots, clbits)``.
    """
    circuits = []
    binds = []
    sizes = []
    for i in indices:
        pub = pubs[i]
        stripped = pub.circuit.copy_empty_like()
        for inst in pub.circuit.data:
            if inst.name != "measure":
                stripped._append(inst)
        qubits = [q for q, _ in maps[i]]
        if qubits:
            stripped.save_probabilities(qubits, label="probabilities")
        table, size = _parameter_table(pub)
        circuits.append(stripped)
        binds.append(table)
        sizes.append(size)
    result = simulator.run(circuits, shots=1, parameter_binds=binds).result()
    out: dict[int, list[np.ndarray]] = {}
    offset = 0
    for i, size, table in zip(indices, sizes, binds):
        pub = pubs[i]
        mapping = maps[i]
        simulated = size if table else 1  # an unbound circuit is simulated once for all sets
        cdfs: list[np.ndarray | None] = []
        for k in range(size):
            if not mapping:
                cdfs.append(None)
                continue
            position = offset + min(k, simulated - 1)
            status = getattr(result.results[position], "status", "")
            if isinstance(status, str) and status.upper().startswith("ERROR"):
                raise RuntimeError(f"simulation failed: {status}")
            cdfs.append(np.cumsum(np.asarray(result.data(position)["probabilities"], dtype=float)))
        offset += simulated
        chunks = []
        for shots, rng in draws[i]:
            outcomes = np.zeros((size, shots), dtype=np.int64)
            for k, cdf in enumerate(cdfs):
                if cdf is not None:
                    picked = np.searchsorted(cdf, rng.random(shots) * cdf[-1], side="right")
                    outcomes[k] = np.minimum(picked, len(cdf) - 1)
            bits = np.zeros((size, shots, pub.circuit.num_clbits), dtype=np.uint8)
            for j, (_, clbit) in enumerate(mapping):
                bits[:, :, clbit] = (outcomes >> j) & 1
            chunks.append(bits)
        out[i] = chunks
    return out


def _registers(circuit: QuantumCircuit) -> list[tuple[str, list[int]]]:
    return [(creg.name, [circuit.find_bit(b).index for b in creg]) for creg in circuit.cregs]


def _run_with_memory(
    pubs: Sequence[SamplerPub],
    indices: list[int],
    simulator: Any,
    shots: int,
    run_seed: int | None,
) -> dict[int, np.ndarray]:
    """General path: Aer samples every shot (noise, mid-circuit measurements, control flow).

    Returns:
        Per PUB, its clbits as ``uint8`` of shape ``(sets, shots, clbits)``.
    """
    units = _build_units(pubs, indices)
    circuits = [u.circuit for u in units for _ in range(u.repeats)]
    binds = [u.binds for u in units for _ in range(u.repeats)]
    # Aer's shot branching mis-weights branches (qiskit-aer 0.18: `h; measure; if (c) x;
    # measure` gave 25/75 in ~1 run of 8, and final-measurement PUBs of a noisy job went wrong
    # too); it is never used (:func:`.simulators.aer_settings`), and said again per run here.
    extra: dict[str, Any] = {"shot_branching_enable": False}
    result = simulator.run(
        circuits,
        shots=shots,
        memory=True,
        parameter_binds=binds,
        seed_simulator=run_seed,
        **extra,
    ).result()
    if not result.success and not result.results:
        raise RuntimeError(f"simulation failed: {result.status}")
    out: dict[int, np.ndarray] = {}
    offset = 0
    for unit in units:
        for index, size in unit.members:
            memory = _experiment_memory(result, offset, size)
            bits = hex_to_bits(memory, pubs[index].circuit.num_clbits)
            out[index] = bits.reshape(size, shots, bits.shape[-1])
            offset += size
    return out


SHOT_CHUNK = 16_384
"""Shots per chunk of a PUB with at least ``2 * SHOT_CHUNK`` shots (cheap shots; see
:func:`shot_chunk_size` for PUBs whose shots are expensive trajectories).

Such a PUB is sampled chunk by chunk, each chunk with its own seed derived from the job's seed,
the PUB's index and the chunk's index; the chunks are a property of the PUB alone, so a seeded
PUB gives the same bits whether one worker runs all its chunks or several workers share them.
"""

MIN_SHOT_CHUNK = 64
"""The fewest shots per chunk (:func:`shot_chunk_size`)."""

CHUNK_SECONDS = 0.5
"""Estimated single-core seconds a chunk of an expensive PUB should hold at least.

Each chunk is one ``AerSimulator.run`` (~40 ms fixed cost with the 27-qubit device's noise
model, measured), so a chunk of half a second or more keeps that cost to a few percent, while a
2,000-shot noisy 27-qubit matrix-product-state PUB (~40 ms a shot) still gets chunks that
several workers can share (before: one 85 s run on one core next to idle workers).
"""


def shot_chunks(shots: int, size: int = SHOT_CHUNK) -> list[tuple[int, int]]:
    """The ``(start, stop)`` shot ranges a PUB of ``shots`` shots is sampled in.

    Chunks of ``size`` shots (the last may be shorter); fewer than ``2 * size`` shots: one chunk.
    """
    if shots < 2 * size:
        return [(0, shots)]
    return [(start, min(start + size, shots)) for start in range(0, shots, size)]


def shot_chunk_size(pub: SamplerPub, *, method: str, noisy: bool) -> int:
    """Shots per chunk of ``pub`` on a run with ``method`` (``noisy``: a noise model applies).

    A PUB that Aer samples shot by shot (trajectories: noise on a statevector or matrix product
    state, or measurements before the end) gets chunks of at least :data:`CHUNK_SECONDS`
    estimated work (:func:`..cost.estimate_circuit`, rounded up to a power of two, between
    :data:`MIN_SHOT_CHUNK` and :data:`SHOT_CHUNK`), so that a PUB of expensive trajectories can
    be shared by several workers. Everything else (an ideal final-measurement PUB, a density
    matrix evolved once for all its shots): :data:`SHOT_CHUNK`.
    The size depends on the PUB and the job's method only (never on how the job is split), so a
    seeded PUB keeps its bits however its chunks are spread.
    """
    if int(pub.shots) < 2 * MIN_SHOT_CHUNK:
        return SHOT_CHUNK  # one chunk whatever the size: skip the estimate
    if not noisy and final_measurement_map(pub.circuit) is not None:
        return SHOT_CHUNK  # one state, sampled: shots are cheap
    from .cost import _METHODS, _auto_method, _shape, estimate_circuit

    shots, sets = int(pub.shots), max(1, _num_sets(pub))
    shape = _shape(pub.circuit)
    if method not in _METHODS:  # Aer's automatic choice, for this PUB's shots
        method = _auto_method(shape, noisy=noisy, shots=shots, estimator=False)
    one, every = (
        estimate_circuit(shape, shots=n, parameter_sets=sets, noisy=noisy, method=method).seconds
        for n in (1, shots)
    )
    if not every >= 2 * one > 0:
        # one state sampled for all shots (a density matrix of a final-measurement circuit):
        # every chunk would evolve it again
        return SHOT_CHUNK
    per_shot = every / shots
    size = 2 ** max(0, math.ceil(math.log2(CHUNK_SECONDS / per_shot)))
    return int(min(SHOT_CHUNK, max(MIN_SHOT_CHUNK, size)))


def pub_shot_chunks(pub: SamplerPub, *, method: str, noisy: bool) -> list[tuple[int, int]]:
    """:func:`shot_chunks` of ``pub`` with its :func:`shot_chunk_size`."""
    return shot_chunks(int(pub.shots), shot_chunk_size(pub, method=method, noisy=noisy))


def experiment_offsets(pubs: Sequence[SamplerPub]) -> list[int]:
    """Each PUB's position in the job's Aer experiment sequence (one experiment per set)."""
    offsets, total = [], 0
    for pub in pubs:
        offsets.append(total)
        total += _num_sets(pub)
    return offsets


@functools.lru_cache(maxsize=1)
def aer_seed_stride() -> int | None:
    """How far apart Aer seeds the experiments of one run (``seed + stride * k``), measured.

    ``None`` when Aer's seeds are not evenly spaced: then every PUB runs on its own.
    """
    from qiskit_aer import AerSimulator

    circuit = QuantumCircuit(1, 1)
    circuit.measure(0, 0)
    try:
        result = AerSimulator().run([circuit] * 3, shots=1, seed_simulator=1).result()
        seeds = [int(r.seed_simulator) for r in result.results]
    except Exception:  # pragma: no cover - defensive: fall back to one run per PUB
        return None
    stride = seeds[1] - seeds[0]
    return stride if seeds[0] == 1 and seeds[2] - seeds[1] == stride and stride else None


def _derived_seed(seed: int, pub_index: int, chunk: int) -> int:
    """A 62-bit seed from the job's seed, a PUB index and a chunk index (nothing else)."""
    state = np.random.SeedSequence(seed, spawn_key=(pub_index, chunk)).generate_state(1, np.uint64)
    return int(state[0] >> np.uint64(2))


def _pub_rng(seed: int | None, pub_index: int, chunk: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(pub_index, chunk)))


def _segments(
    local: list[int],
    pubs: Sequence[SamplerPub],
    pub_indices: Sequence[int],
    contiguous: bool,
) -> list[list[int]]:
    """Split PUBs into Aer runs: consecutive job PUBs with one shot count share a run."""
    runs: list[list[int]] = []
    for i in local:
        last = runs[-1] if runs else None
        if (
            contiguous
            and last is not None
            and pub_indices[last[-1]] + 1 == pub_indices[i]
            and pubs[last[-1]].shots == pubs[i].shots
        ):
            last.append(i)
        else:
            runs.append([i])
    return runs


def run_sampler_pubs(
    pubs: Sequence[SamplerPub],
    simulator: Any,
    *,
    seed: int | None = None,
    noisy: bool = True,
    pub_indices: Sequence[int] | None = None,
    offsets: Sequence[int] | None = None,
    chunks: Sequence[tuple[int, int] | None] | None = None,
) -> tuple[PrimitiveResult, float, list[tuple[datetime, datetime, dict]]]:
    """Sample every PUB on ``simulator`` (an ``AerSimulator``, noise model already set).

    The PUBs may be a part of a larger job (see :mod:`.split`): then ``pub_indices`` gives each
    PUB's index in the job, ``offsets`` its :func:`experiment_offsets` in the job, and ``chunks``
    which of its :func:`shot_chunks` to run (``(first, stop)``; ``None`` = all). Seeds depend on
    those job positions only, so a seeded job gives identical bits however it is split.

    Args:
        pubs: coerced, validated PUBs with shots filled in.
        simulator: the Aer backend to run on.
        seed: ``seed_simulator`` for reproducible bits, or ``None``.
        noisy: whether the simulator carries a noise model; ideal PUBs that only measure at
            the end are sampled from their exact probabilities (:func:`final_measurement_map`).
        pub_indices: job index of each PUB (default: ``0, 1, ...``).
        offsets: job experiment offset of each PUB (default: computed from ``pubs``).
        chunks: per PUB, the range of its shot chunks to run (default: all); a PUB's result
            then holds those chunks' shots, in order.

    Returns:
        ``(result, simulate_seconds, spans)``: the result (metadata ``{"version": 2,
        "simulator": {"method", "noisy", "noise_approximation"}}``), the time spent inside Aer,
        and per run ``(start, stop, data_slices)`` for execution spans (``data_slices`` keyed by
        job PUB index).
    """
    n = len(pubs)
    pub_indices = list(range(n)) if pub_indices is None else list(pub_indices)
    offsets = experiment_offsets(pubs) if offsets is None else list(offsets)
    method = str(getattr(simulator.options, "method", "automatic"))
    ranges: list[list[tuple[int, int, int]]] = []  # per PUB: (chunk index, start, stop)
    chunked: set[int] = set()
    for i, pub in enumerate(pubs):
        all_chunks = pub_shot_chunks(pub, method=method, noisy=noisy)
        wanted = None if not chunks else chunks[i]
        first, stop = (0, len(all_chunks)) if wanted is None else wanted
        ranges.append([(c, *all_chunks[c]) for c in range(first, stop)])
        if len(all_chunks) > 1:
            chunked.add(i)

    pieces: dict[int, list[np.ndarray]] = {}  # per PUB, per chunk: (sets, shots, clbits)
    spans: list[tuple[datetime, datetime, dict]] = []
    # The probability path holds 2**measured probabilities: free next to a statevector, but not
    # next to a stabilizer tableau or a matrix product state (chosen for wide circuits), which
    # sample their measurements themselves.
    exact_state = method in ("automatic", "statevector")
    most_measured = PROBABILITY_PATH_MAX_QUBITS if exact_state else SMALL_PROBABILITY_QUBITS
    simulate = 0.0

    def span(start: datetime, indices: list[int], shot_range: Any = None) -> None:
        slices = {}
        for i in indices:
            lo, hi = (ranges[i][0][1], ranges[i][-1][2]) if shot_range is None else shot_range
            slices[pub_indices[i]] = (
                (*pubs[i].shape, int(pubs[i].shots)),
                slice(0, _num_sets(pubs[i])),
                slice(lo, hi),
            )
        spans.append((start, datetime.now(timezone.utc), slices))

    maps: dict[int, list[tuple[int, int]]] = {}
    for i, pub in enumerate(pubs):
        if _num_sets(pub) == 0 or not ranges[i]:
            # Zero parameter sets (shape (0,), (2, 0), ...): nothing to run, and Aer must not see
            # an empty parameter table (the worker process dies). Qiskit's reference returns
            # BitArrays of shape (*shape, shots).
            shots = sum(hi - lo for _, lo, hi in ranges[i])
            pieces[i] = [np.zeros((0, shots, pub.circuit.num_clbits), dtype=np.uint8)]
        elif not noisy:
            mapping = final_measurement_map(pub.circuit)
            if mapping is not None and len(mapping) <= most_measured:
                maps[i] = mapping
    if maps:
        start = datetime.now(timezone.utc)
        t0 = time.perf_counter()
        fast = sorted(maps)
        draws = {
            i: [(hi - lo, _pub_rng(seed, pub_indices[i], c)) for c, lo, hi in ranges[i]]
            for i in fast
        }
        pieces.update(_sample_from_probabilities(pubs, fast, maps, simulator, draws))
        simulate += time.perf_counter() - t0
        span(start, fast)
    rest = [i for i in range(n) if i not in pieces]
    stride = aer_seed_stride() if seed is not None else None
    for i in [i for i in rest if i in chunked]:
        for c, lo, hi in ranges[i]:
            start = datetime.now(timezone.utc)
            t0 = time.perf_counter()
            chunk_seed = None if seed is None else _derived_seed(seed, pub_indices[i], c)
            chunk_out = _run_with_memory(pubs, [i], simulator, hi - lo, chunk_seed)
            pieces.setdefault(i, []).append(chunk_out[i])
            simulate += time.perf_counter() - t0
            span(start, [i], (lo, hi))
    whole = [i for i in rest if i not in chunked]
    for group in _segments(whole, pubs, pub_indices, seed is None or stride is not None):
        start = datetime.now(timezone.utc)
        t0 = time.perf_counter()
        if seed is None:
            run_seed = None
        elif stride is None:
            run_seed = _derived_seed(seed, pub_indices[group[0]], 0)
        else:  # the experiment's seed is the one it has in the whole job's single run
            run_seed = (seed + stride * offsets[group[0]]) % (2**63)
        bits_by_pub = _run_with_memory(pubs, group, simulator, int(pubs[group[0]].shots), run_seed)
        for i in group:
            pieces[i] = [bits_by_pub[i]]
        simulate += time.perf_counter() - t0
        span(start, group)

    pub_results = []
    for i, pub in enumerate(pubs):
        shape = tuple(pub.shape)
        chunk_bits = pieces[i]
        joined = chunk_bits[0] if len(chunk_bits) == 1 else np.concatenate(chunk_bits, axis=1)
        shots = joined.shape[1]
        bits = joined.reshape(joined.shape[0] * shots, joined.shape[-1])  # no -1: 0 clbits
        fields = {}
        for name, clbits in _registers(pub.circuit):
            packed = _pack_register(bits, clbits)
            fields[name] = BitArray(packed.reshape(*shape, shots, packed.shape[-1]), len(clbits))
        pub_results.append(
            SamplerPubResult(
                DataBin(**fields, shape=shape),
                metadata={"circuit_metadata": dict(pub.circuit.metadata or {}), "shots": shots},
            )
        )
    spans.sort(key=lambda item: item[0])
    metadata = {"version": 2, "simulator": simulator_metadata(simulator, noisy)}
    return PrimitiveResult(pub_results, metadata=metadata), simulate, spans
