"""Layer noise models for PEC and PEA, from the device's own noise model.

PEC and PEA need a Pauli–Lindblad model of the noise of each twirled layer (a box of 2-qubit
gates). On IBM's service it is learned by running layer-fidelity experiments; this server
simulates the device, so it knows the noise the simulation applies and computes the model a
perfect learner would converge to:

1. each gate of the box has an Aer error on its device qubits (depolarizing composed with
   T1/T2 relaxation, :mod:`..backends.noise`); Pauli twirling turns it into the Pauli channel
   with the same Pauli fidelities ``f_P = Tr(P E(P)) / 2**n``;
2. that Pauli channel is exactly a Pauli–Lindblad map with generators on the gate's qubits: with
   ``f_P = exp(-2 * sum of the rates of the generators that anticommute with P)``, the rates are
   the solution of one linear system (negative solutions, which no physical twirled channel
   needs, are clipped at 0);
3. the gates of a box act on disjoint qubits, so the box's map is the sum of their generators, as a
   :class:`qiskit.quantum_info.PauliLindbladMap` on the box's qubits (box-local order).

The boxes are found with qiskit-mitigation's ``find_combined_unique_layers`` and the same boxing
options qiskit-ibm-runtime's ``prepare`` uses, so the maps key the same ``InjectNoise``
annotations the PEC/PEA samplexes read. Not modelled: errors of the single-qubit gates outside
the boxes and of idle qubits (they stay in the mitigated values as a small residual bias).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

__all__ = ["box_noise_map", "layer_noise_model", "pauli_lindblad_rates"]


@cache
def _labels(num_qubits: int) -> tuple[str, ...]:
    return tuple("".join(p) for p in itertools.product("IXYZ", repeat=num_qubits))[1:]


@cache
def _anticommutation(num_qubits: int) -> np.ndarray:
    from qiskit.quantum_info import Pauli

    paulis = [Pauli(label) for label in _labels(num_qubits)]
    return np.array([[0.0 if p.commutes(q) else 1.0 for q in paulis] for p in paulis])


def pauli_lindblad_rates(error: Any, num_qubits: int) -> dict[str, float]:
    """Pauli–Lindblad rates (label -> rate) of the Pauli-twirled ``error`` (an Aer error).

    Example:
        >>> from qiskit_aer.noise import depolarizing_error
        >>> rates = pauli_lindblad_rates(depolarizing_error(0.03, 1), 1)
        >>> sorted(rates), round(rates["X"], 5) == round(rates["Z"], 5)
        (['X', 'Y', 'Z'], True)
    """
    from qiskit.quantum_info import Kraus, Pauli

    kraus = Kraus(error.to_quantumchannel()).data
    dim = 2**num_qubits
    labels = _labels(num_qubits)
    fidelities = []
    for label in labels:
        pauli = Pauli(label).to_matrix()
        evolved = sum(k @ pauli @ k.conj().T for k in kraus)
        fidelities.append(float(np.trace(pauli @ evolved).real) / dim)
    rhs = -np.log(np.clip(fidelities, 1e-12, None)) / 2.0
    rates = np.linalg.solve(_anticommutation(num_qubits), rhs)
    return {label: float(rate) for label, rate in zip(labels, np.clip(rates, 0.0, None))}


def box_noise_map(
    instruction: Any, circuit: Any, model: Any, physical: Sequence[int] | None = None
) -> Any:
    """The ``PauliLindbladMap`` (box-local qubits) of one boxed layer of ``circuit``.

    ``physical[i]`` is the device qubit of the circuit's qubit ``i`` (identity when ``None``).
    """
    from qiskit.quantum_info import PauliLindbladMap

    index = {q: i if physical is None else physical[i] for i, q in enumerate(circuit.qubits)}
    body = instruction.operation.body
    local = {q: j for j, q in enumerate(body.qubits)}
    terms: list[tuple[str, list[int], float]] = []
    errors = getattr(model, "_local_quantum_errors", {})
    for inner in body.data:
        qubits = [local[q] for q in inner.qubits]
        device = tuple(index[instruction.qubits[j]] for j in qubits)
        error = errors.get(inner.operation.name, {}).get(device)
        if error is None or len(qubits) > 2:
            continue
        for label, rate in pauli_lindblad_rates(error, len(qubits)).items():
            if rate <= 0.0:
                continue
            # label character -1 is the error's qubit 0, i.e. qubits[0]
            sparse = [(char, qubits[k]) for k, char in enumerate(reversed(label)) if char != "I"]
            terms.append(("".join(c for c, _ in sparse), [q for _, q in sparse], rate))
    return PauliLindbladMap.from_sparse_list(terms, len(body.qubits))


def layer_noise_model(
    circuit: Any,
    final_options: Any,
    model: Any,
    max_layers: int | None = None,
    physical: Sequence[int] | None = None,
) -> list[tuple[Any, Any]]:
    """``[(boxed layer, PauliLindbladMap), ...]`` for ``circuit`` under finalized options.

    ``final_options`` are qiskit-ibm-runtime's finalized ``EstimatorOptions`` (PEC or PEA on);
    the result is what ``resilience.layer_noise_model`` holds in qiskit-ibm-runtime. With
    ``max_layers`` (``layer_noise_learning.max_layers_to_learn``) only the first that many unique
    layers get their noise; the others get an empty map, so they are neither amplified nor
    mitigated (IBM's meaning of the option).
    """
    from qiskit.quantum_info import PauliLindbladMap
    from qiskit_ibm_runtime.executor_estimator.prepare import choose_task_class
    from qiskit_ibm_runtime.executor_estimator.utils import estimator_options_to_boxing_options
    from qiskit_mitigation import find_combined_unique_layers

    task_class = choose_task_class(final_options.resilience)
    boxing = estimator_options_to_boxing_options(
        final_options.twirling,
        bool(final_options.resilience.measure_mitigation),
        inject_noise=True,
        add_tags=False,
    )
    layers = find_combined_unique_layers([circuit], [task_class()], boxing, box_types="gates")
    out = []
    for index, layer in enumerate(layers):
        if max_layers is not None and index >= max_layers:
            width = len(layer.operation.body.qubits)
            out.append((layer, PauliLindbladMap.from_sparse_list([], width)))
        else:
            out.append((layer, box_noise_map(layer, circuit, model, physical)))
    return out
