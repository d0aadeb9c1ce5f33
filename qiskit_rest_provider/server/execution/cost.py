"""A cost model of jobs on Qiskit Aer: memory and time, estimated before anything runs.

Why: a 1.4 KB request for 30 qubits makes Aer allocate 16 GiB, and ``bit[100000]`` x 2000 shots
peaks a worker at 2.8 GiB. Admission (:mod:`..jobs.admission`) asks this model what a job will
need and refuses what cannot fit, naming the estimate and the limit, instead of letting a worker
die. The model is pure arithmetic on decoded PUBs: it imports no Aer and allocates nothing.

What it models (per PUB; a job needs its largest PUB's state plus all PUBs' results):

* **active qubits**: only the qubits an instruction touches count (Aer drops idle qubits), so
  a Bell circuit on a 127-qubit device costs what 2 qubits cost;
* **method**, as Aer's automatic choice makes it (or as forced by ``method``):
  ``stabilizer`` for Clifford circuits without noise (memory ~ n² bits); ``density_matrix`` for
  noisy circuits whose final measurements can be sampled when ``shots > 2**n`` (Aer's own rule;
  16 B x 4^n); ``statevector`` otherwise (16 B x 2^n, complex128). ``matrix_product_state``
  is modelled for callers that force it: the bond dimension across each cut is bounded by the
  two-qubit gates crossing it;
* **results**: per shot and parameter set, about 64 B plus 14 B per classical bit (hex strings
  in Aer's memory and on their way out; measured 2.8 GiB for 100,000 bits x 2,000 shots);
* **observables** (estimator): the Pauli terms of a PUB cost about 20 B x terms² (measured:
  12k observables peak at 2.7 GiB), plus the state the estimator simulates (exact statevector or
  stabilizer when ideal; density matrix up to 10 noisy qubits; trajectories beyond);
* **time**: gate count x state size (x shots where Aer cannot sample the final state:
  mid-circuit measurements, resets, control flow or noise), about 1 ns per amplitude update on
  one core. A rough figure, reported rather than enforced.

Example:
    >>> from qiskit import QuantumCircuit
    >>> qc = QuantumCircuit(30)
    >>> _ = qc.h(range(30)); _ = qc.t(range(30)); qc.measure_all()
    >>> est = estimate_circuit(qc, shots=1000)
    >>> est.method, format_bytes(est.state_bytes)
    ('statevector', '16 GiB')
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_JOB_MEMORY_ENV",
    "CircuitEstimate",
    "JobEstimate",
    "PubShape",
    "default_max_job_memory",
    "estimate_circuit",
    "estimate_job",
    "estimate_shapes",
    "format_bytes",
    "max_job_memory",
    "parse_size",
    "pub_shapes",
]

MAX_JOB_MEMORY_ENV = "QISKIT_REST_AER_MAX_MEMORY_MB"
"""Environment variable (MiB): the memory one job may use. The same variable caps Aer's
``max_memory_mb`` in the workers (:data:`..simulators.AER_MAX_MEMORY_ENV`), so the limit
admission refuses by is the limit Aer stops at. ``serve --max-job-memory`` sets it."""

GIB = 1024**3
MIB = 1024**2
AMPLITUDE_BYTES = 16  # complex128
RESULT_BYTES_PER_SHOT = 64
RESULT_BYTES_PER_BIT = 14
OBSERVABLE_BYTES_PER_TERM_PAIR = 20
SECONDS_PER_AMPLITUDE_UPDATE = 1e-9
SECONDS_PER_STABILIZER_OP_QUBIT = 2e-8  # measured: noisy 127-qubit GHZ, 1,000 ops, 4096 shots ~12 s
SECONDS_PER_MPS_OP = 2e-6  # x 2**(mean cut rank); measured: noisy efficient_su2(27), ~25 ms a shot
ESTIMATOR_DENSITY_MATRIX_MAX_QUBITS = 10  # estimator.DENSITY_MATRIX_MAX_QUBITS (no Aer import)
NOISY_BRANCHING_SPEEDUP = 10.0  # shot branching shares trajectories (measured ~10x)

_CLIFFORD = frozenset(
    {
        "id", "x", "y", "z", "h", "s", "sdg", "sx", "sxdg", "cx", "cy", "cz", "swap", "ecr",
        "pauli", "delay", "barrier", "measure", "reset",
    }
)  # fmt: skip
# Clifford operations Aer's stabilizer method runs as they are (it has no p, rx, ry, iswap):
# "Clifford" here means "the stabilizer simulator accepts it", so a chosen method never fails.
_ROTATIONS = frozenset({"rz"})
_NOT_GATES = frozenset({"barrier", "delay"})
_NON_SAMPLING = frozenset({"reset", "initialize"})
_METHODS = ("statevector", "density_matrix", "stabilizer", "matrix_product_state")


@dataclass(frozen=True)
class CircuitEstimate:
    """What one PUB will cost.

    Attributes:
        qubits: active qubits (touched by an instruction).
        method: the simulation method the estimate assumes.
        state_bytes: memory of the simulator state.
        result_bytes: memory of the PUB's results (samples, or observables' work).
        seconds: rough single-core time.
        clbits: classical bits of the circuit.
    """

    qubits: int
    method: str
    state_bytes: int
    result_bytes: int
    seconds: float
    clbits: int = 0

    @property
    def what(self) -> str:
        """E.g. ``"30-qubit statevector"``, for messages."""
        return f"{self.qubits}-qubit {self.method.replace('_', ' ')}"


@dataclass(frozen=True)
class JobEstimate:
    """What a job will cost: its largest PUB's state plus every PUB's results."""

    pubs: tuple[CircuitEstimate, ...]

    @property
    def largest(self) -> int:
        """Index of the PUB with the largest state."""
        return max(range(len(self.pubs)), key=lambda i: self.pubs[i].state_bytes, default=0)

    @property
    def memory_bytes(self) -> int:
        """Peak memory: PUBs run one at a time, results accumulate."""
        if not self.pubs:
            return 0
        return max(p.state_bytes for p in self.pubs) + sum(p.result_bytes for p in self.pubs)

    @property
    def seconds(self) -> float:
        """Rough single-core time of the whole job."""
        return sum(p.seconds for p in self.pubs)


def format_bytes(n: float) -> str:
    """``17179869184`` → ``"16 GiB"``; powers of 1024, at most 3 significant digits.

    Example:
        >>> format_bytes(1536 * 1024**2)
        '1.5 GiB'
    """
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    value = float(n)
    for unit in units:
        if value < 1024 or unit == units[-1]:
            break
        value /= 1024
    if value >= 1e4:
        return f"{value:.3g} {unit}".replace("e+", "e")
    text = f"{value:.3g}" if value < 100 else f"{value:.0f}"
    return f"{text} {unit}"


def parse_size(text: str) -> int:
    """A memory size in bytes from ``"4GiB"``, ``"512 MiB"``, ``"2G"`` or plain MiB (``"4096"``).

    Raises:
        ValueError: naming the text.

    Example:
        >>> parse_size("4GiB") == 4 * 1024**3
        True
    """
    raw = str(text).strip().lower().replace(" ", "")
    factors = {"k": 1024, "m": MIB, "g": GIB, "t": 1024**4}
    number, unit = raw, "m"
    for suffix in ("ib", "b"):
        if (
            number.endswith(suffix)
            and len(number) > len(suffix)
            and number[-len(suffix) - 1] in factors
        ):
            number = number[: -len(suffix)]
            break
    if number and number[-1] in factors:
        number, unit = number[:-1], number[-1]
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"expected a memory size such as 4GiB or 512MiB, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"expected a positive memory size, got {text!r}")
    return int(value * factors[unit])


def _physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def default_max_job_memory(workers: int) -> int:
    """A safe share of RAM for one job: ``min(4 GiB, RAM / (workers + 1))`` bytes.

    ``workers + 1``: every worker may run a job this size at once and the server keeps a share.
    """
    ram = _physical_memory()
    if ram is None:
        return 4 * GIB
    return int(min(4 * GIB, ram / (max(1, workers) + 1)))


def max_job_memory() -> int:
    """The memory one job may use (bytes): :data:`MAX_JOB_MEMORY_ENV`, else a safe default."""
    raw = os.environ.get(MAX_JOB_MEMORY_ENV, "").strip()
    if raw:
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value > 0:
            return value * MIB
    return default_max_job_memory(2)


# ----------------------------------------------------------------------------- circuits
@dataclass
class _Shape:
    qubits: int
    clbits: int
    ops: int
    clifford: bool
    samplable: bool
    cut_ranks: list[int]  # log2 bound of the bond dimension across each cut (active order)


def _clifford_angle(inst: Any) -> bool:
    """Whether every angle of a rotation (instruction or operation) is a multiple of pi/2."""
    try:
        angles = [float(p) for p in inst.params]
    except (TypeError, ValueError):  # unbound parameter
        return False
    return all(abs(a / (math.pi / 2) - round(a / (math.pi / 2))) < 1e-9 for a in angles)


def _shape(circuit: Any) -> _Shape:
    """One pass over the circuit (control-flow bodies included)."""
    index = {q: i for i, q in enumerate(circuit.qubits)}
    active: set[int] = set()
    ops = 0
    clifford = True
    samplable = True
    measured: set[int] = set()
    two_qubit: list[tuple[int, int, int]] = []  # (low, high, log2 operator Schmidt rank)

    def walk(block: Any, qmap: dict) -> None:
        # the instruction's own name and params, not its operation: for a gate Qiskit keeps in
        # Rust, ``inst.operation`` builds a Python gate object (~1 µs each, 5x this walk)
        nonlocal ops, clifford, samplable
        for inst in block.data:
            name = inst.name
            if name in _NOT_GATES:
                continue
            qargs = [qmap[q] for q in inst.qubits]
            active.update(qargs)
            if inst.is_control_flow():
                samplable = False
                clifford = False
                for sub in inst.operation.blocks:
                    walk(sub, {bq: qmap[oq] for bq, oq in zip(sub.qubits, inst.qubits)})
                continue
            ops += 1
            if name == "measure":
                measured.update(qargs)
                continue
            if samplable and (
                name in _NON_SAMPLING or (measured and not measured.isdisjoint(qargs))
            ):
                samplable = False  # a gate after a measurement: shot-by-shot simulation
            if clifford and name not in _CLIFFORD:
                clifford = name in _ROTATIONS and _clifford_angle(inst)
            if len(qargs) >= 2:
                rank = 2 if name in ("swap", "iswap", "dcx") or len(qargs) > 2 else 1
                two_qubit.append((min(qargs), max(qargs), rank * (len(qargs) - 1)))

    walk(circuit, index)
    order = {q: i for i, q in enumerate(sorted(active))}
    n = len(order)
    cuts = [0] * max(n - 1, 0)
    for low, high, rank in two_qubit:
        for cut in range(order[low], order[high]):
            cuts[cut] += rank
    for k in range(len(cuts)):
        cuts[k] = min(cuts[k], k + 1, n - k - 1)
    return _Shape(n, circuit.num_clbits, ops, clifford, samplable, cuts)


def _mps_bytes(cut_ranks: Sequence[int]) -> int:
    """Σ over sites of 2 x χ_left x χ_right complex numbers (χ = 2**rank)."""
    bonds = [0, *cut_ranks, 0]
    return (
        sum(2 * AMPLITUDE_BYTES * 2 ** (bonds[i] + bonds[i + 1]) for i in range(len(bonds) - 1))
        or AMPLITUDE_BYTES
    )


def _state_bytes(method: str, shape: _Shape) -> int:
    n = shape.qubits
    if method == "stabilizer":
        return max(1024, (2 * n) * (2 * n + 1) // 8)
    if method == "density_matrix":
        return AMPLITUDE_BYTES * 4**n
    if method == "matrix_product_state":
        return _mps_bytes(shape.cut_ranks)
    return AMPLITUDE_BYTES * 2**n


def _auto_method(shape: _Shape, *, noisy: bool, shots: int, estimator: bool) -> str:
    """Aer's automatic choice (its controller's rules), or the estimator's own."""
    if shape.clifford and not noisy:
        return "stabilizer"
    if estimator:
        if noisy and shape.qubits <= ESTIMATOR_DENSITY_MATRIX_MAX_QUBITS:
            return "density_matrix"
        return "statevector"
    if noisy and shape.samplable and shape.qubits < 64 and shots > 2**shape.qubits:
        return "density_matrix"
    return "statevector"


def estimate_circuit(
    circuit: Any,
    *,
    shots: int = 1,
    parameter_sets: int = 1,
    noisy: bool = False,
    observable_terms: int = 0,
    estimator: bool = False,
    method: str | None = None,
) -> CircuitEstimate:
    """Estimate one PUB.

    Args:
        circuit: the PUB's ``QuantumCircuit``.
        shots: shots per parameter set (sampler), or trajectories the estimator may run.
        parameter_sets: how many parameter sets the PUB binds (1 without parameters).
        noisy: whether a noise model applies.
        observable_terms: Pauli terms of the PUB's observables (estimator).
        estimator: estimate the estimator's way of running (exact where it can).
        method: force a method (``statevector``, ``density_matrix``, ``stabilizer``,
            ``matrix_product_state``); ``None`` = Aer's automatic choice.
    """
    if method is not None and method not in _METHODS:
        raise ValueError(f"method: expected one of {', '.join(_METHODS)}, got {method!r}")
    shape = circuit if isinstance(circuit, _Shape) else _shape(circuit)
    sets = max(1, int(parameter_sets))
    shots = max(1, int(shots))
    chosen = method or _auto_method(shape, noisy=noisy, shots=shots, estimator=estimator)
    state = _state_bytes(chosen, shape)
    if estimator:
        results = OBSERVABLE_BYTES_PER_TERM_PAIR * observable_terms**2 + 16 * sets
    else:
        results = shots * sets * (RESULT_BYTES_PER_SHOT + RESULT_BYTES_PER_BIT * shape.clbits)
    amplitudes = state / AMPLITUDE_BYTES
    per_run = max(shape.ops, 1) * amplitudes * SECONDS_PER_AMPLITUDE_UPDATE
    if chosen == "stabilizer":
        per_run = max(shape.ops, 1) * max(shape.qubits, 1) * SECONDS_PER_STABILIZER_OP_QUBIT
    elif chosen == "matrix_product_state":
        mean_rank = sum(shape.cut_ranks) / len(shape.cut_ranks) if shape.cut_ranks else 0.0
        per_run = max(shape.ops, 1) * SECONDS_PER_MPS_OP * 2**mean_rank
    repeats = 1.0
    trajectories = noisy and chosen != "density_matrix"
    if not estimator and (not shape.samplable or trajectories):
        # Aer's shot branching shares statevector trajectories; stabilizer and MPS runs do not
        branching = NOISY_BRANCHING_SPEEDUP if noisy and chosen == "statevector" else 1.0
        repeats = shots / branching
    elif estimator and trajectories:
        repeats = 128.0  # the first batch of trajectories, at least
    seconds = per_run * sets * max(repeats, 1.0)
    return CircuitEstimate(shape.qubits, chosen, int(state), int(results), seconds, shape.clbits)


def _observable_terms(observables: Any) -> int:
    size = int(getattr(observables, "size", 1) or 1)
    if size > 100_000:
        return size  # counting terms one by one would cost more than it tells
    try:
        return sum(max(1, len(obs)) for obs in observables.ravel().tolist())
    except Exception:  # noqa: BLE001 - an unknown container: count elements
        return size


@dataclass(frozen=True)
class PubShape:
    """What the cost model reads of one decoded PUB (computed once, reused per method)."""

    shape: _Shape
    shots: int
    parameter_sets: int
    observable_terms: int

    @property
    def clifford(self) -> bool:
        """Whether every operation is a Clifford (rotations by multiples of pi/2 included)."""
        return self.shape.clifford

    @property
    def qubits(self) -> int:
        """Active qubits."""
        return self.shape.qubits


def pub_shapes(program_id: str, pubs: Iterable[Any]) -> list[PubShape]:
    """One pass over every decoded PUB of a ``sampler`` or ``estimator`` job."""
    out = []
    estimator = program_id == "estimator"
    shapes: dict[int, _Shape] = {}  # PUBs often share one circuit object
    for pub in pubs:
        shape_of = shapes.get(id(pub.circuit))
        if shape_of is None:
            shape_of = shapes[id(pub.circuit)] = _shape(pub.circuit)
        values = getattr(pub, "parameter_values", None)
        shape = getattr(values, "shape", ()) or ()
        sets = math.prod(int(s) for s in shape) if shape else 1
        if estimator:
            precision = float(getattr(pub, "precision", 0.0) or 0.0)
            shots = int(min(1e6, 1.0 / precision**2)) if precision > 0 else 1
            terms = _observable_terms(pub.observables)
        else:
            shots = int(getattr(pub, "shots", 1) or 1)
            terms = 0
        out.append(PubShape(shape_of, shots, max(sets, 1), terms))
    return out


def estimate_shapes(
    program_id: str, shapes: Sequence[PubShape], *, noisy: bool, method: str | None = None
) -> JobEstimate:
    """Estimate a job from its :func:`pub_shapes` (see :func:`estimate_job`)."""
    return JobEstimate(
        tuple(
            estimate_circuit(
                s.shape,
                shots=s.shots,
                parameter_sets=s.parameter_sets,
                noisy=noisy,
                observable_terms=s.observable_terms,
                estimator=program_id == "estimator",
                method=method,
            )
            for s in shapes
        )
    )


def estimate_job(
    program_id: str, pubs: Iterable[Any], *, noisy: bool, method: str | None = None
) -> JobEstimate:
    """Estimate every decoded PUB of a ``sampler`` or ``estimator`` job.

    Args:
        program_id: ``"sampler"`` or ``"estimator"``.
        pubs: Qiskit ``SamplerPub`` / ``EstimatorPub`` objects (as decoded by ``wire.pubs``).
        noisy: whether the job runs with a noise model.
        method: force a simulation method (see :func:`estimate_circuit`).
    """
    return estimate_shapes(program_id, pub_shapes(program_id, pubs), noisy=noisy, method=method)


_AER_MEMORY = re.compile(r"Required memory: (\d+)M, max memory: (\d+)M")


def out_of_memory_reason(exc: BaseException) -> str:
    """A failure's reason, with Aer's memory errors said plainly ("out of memory: ...").

    Aer reports ``Insufficient memory to run circuit ... Required memory: 16384M, max memory:
    4096M`` (or an overflowed ``18446744073709551615M`` for very wide circuits); the job's reason
    names what was needed and the per-job limit instead.
    """
    text = getattr(exc, "message", None) or str(exc)
    match = _AER_MEMORY.search(text)
    if match is None and "Insufficient memory" not in text:
        return text
    allows = f"this server allows {format_bytes(max_job_memory())} per job (--max-job-memory)"
    if match is None:
        return f"out of memory: the simulation needs more memory than {allows}"
    need = int(match.group(1))
    needs = "more than 16 EiB" if need >= 2**63 // 2**20 else f"~{format_bytes(need * 2**20)}"
    return f"out of memory: the simulation needs {needs}; {allows}"
