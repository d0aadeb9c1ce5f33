"""Run mitigated programs on the qubits that matter, not on the whole device.

qiskit-mitigation measures (and twirls) *every* qubit of a PUB's circuit, and dynamical
decoupling pads every idle wire. On a 27- or 127-qubit device an ISA circuit has all the device's
qubits, so a one-qubit job would become a 27-qubit (or 127-qubit) simulation. Qubits that no
instruction touches and no observable names are in ``|0>`` throughout and contribute nothing, so:

1. :func:`compact_circuit` keeps the *relevant* qubits (touched by an instruction, or named by an
   observable), in physical order, and :func:`compact_observables` restricts the observables to
   them;
2. the official preparation runs on the compact circuit;
3. :func:`embed` puts each prepared item circuit back on its physical qubits of a full-width
   circuit, so the device's noise model (indexed by physical qubits) and Target durations apply;
4. after dynamical decoupling, :func:`drop_idle_wires` removes what the pass put on the other,
   never-used qubits (delays and pulses on an unmeasured ``|0>`` that no gate couples to anything:
   they cannot change a result), so the simulation stays on the relevant qubits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from qiskit.circuit import QuantumCircuit, QuantumRegister

__all__ = [
    "compact_circuit",
    "compact_observables",
    "drop_idle_wires",
    "embed",
    "relevant_qubits",
]


def relevant_qubits(circuit: QuantumCircuit, observables: Any = None) -> list[int]:
    """Physical indices of the qubits an instruction touches or an observable names (sorted)."""
    index = {q: i for i, q in enumerate(circuit.qubits)}
    keep: set[int] = set()
    for inst in circuit.data:
        if inst.name != "barrier":
            keep.update(index[q] for q in inst.qubits)
    if observables is not None:
        width = circuit.num_qubits
        for k in range(observables.size):
            for label in observables.ravel()[k]:
                keep.update(width - 1 - i for i, ch in enumerate(label) if ch != "I")
    if not keep and circuit.num_qubits:
        keep.add(0)
    return sorted(keep)


def _with_bits(num_qubits: int, like: QuantumCircuit) -> QuantumCircuit:
    out = QuantumCircuit(
        QuantumRegister(num_qubits, "q"),
        name=like.name,
        global_phase=like.global_phase,
        metadata=dict(like.metadata or {}),
    )
    loose = [bit for bit in like.clbits if not like.find_bit(bit).registers]
    if loose:
        out.add_bits(loose)
    for creg in like.cregs:
        out.add_register(creg)
    return out


def compact_circuit(circuit: QuantumCircuit, qubits: Sequence[int]) -> QuantumCircuit:
    """``circuit`` on ``qubits`` only (qubit ``qubits[j]`` becomes qubit ``j``); same clbits."""
    position = {circuit.qubits[p]: j for j, p in enumerate(qubits)}
    out = _with_bits(len(qubits), circuit)
    for inst in circuit.data:
        kept = [q for q in inst.qubits if q in position]
        if inst.name == "barrier":
            if kept:
                out.barrier([position[q] for q in kept])
            continue
        out.append(inst.operation, [position[q] for q in inst.qubits], inst.clbits, copy=False)
    return out


def compact_observables(observables: Any, width: int, qubits: Sequence[int]) -> Any:
    """An ``ObservablesArray`` of the same shape restricted to ``qubits`` (in that order)."""
    from qiskit.primitives.containers.observables_array import ObservablesArray

    chars = [width - 1 - p for p in reversed(qubits)]  # label positions, new little-endian order
    flat = observables.ravel()
    out = []
    for k in range(flat.size):
        out.append({"".join(label[c] for c in chars): coeff for label, coeff in flat[k].items()})
    array = np.empty(len(out), dtype=object)
    array[:] = out
    return ObservablesArray(array.reshape(observables.shape), num_qubits=len(qubits))


def embed(circuit: QuantumCircuit, qubits: Sequence[int], width: int) -> QuantumCircuit:
    """The compact ``circuit`` back on physical ``qubits`` of a ``width``-qubit circuit."""
    out = _with_bits(width, circuit)
    out.compose(circuit, qubits=list(qubits), clbits=circuit.clbits, inplace=True)
    return out


def drop_idle_wires(circuit: QuantumCircuit, qubits: Sequence[int]) -> QuantumCircuit:
    """``circuit`` without the instructions that act only on qubits outside ``qubits``."""
    keep = {circuit.qubits[p] for p in qubits}
    out = circuit.copy_empty_like()
    for inst in circuit.data:
        if inst.qubits and not keep.intersection(inst.qubits):
            continue
        out._append(inst)
    return out
