"""Which layers a noise-learner job learns, and its learning program (Aer-free).

Admission (:mod:`..jobs.noise_learner_admission`) builds the program to size the job, and the
worker (:mod:`.noise_learner_program`) builds it again to run it; both use these functions, which
import samplomatic and qiskit-noise-learning lazily and never Aer.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

__all__ = ["learning_program", "v2_layers"]

_STRATEGIES = {
    "active": "active",
    "active-accum": "active_accum",
    "active-circuit": "active_circuit",
    "all": "all",
}


def _on_backend_register(circuit: Any, num_qubits: int) -> Any:
    """``circuit`` on one register ``q`` of the backend's width (the library indexes by it)."""
    from qiskit.circuit import QuantumCircuit, QuantumRegister

    out = QuantumCircuit(QuantumRegister(num_qubits, "q"), *circuit.cregs)
    out.compose(circuit, qubits=range(circuit.num_qubits), clbits=circuit.clbits, inplace=True)
    return out


def v2_layers(circuits: list, options: dict, num_qubits: int) -> list:
    """The unique twirled two-qubit layers of ``circuits`` (at most ``max_layers_to_learn``)."""
    from samplomatic.transpiler import generate_boxing_pass_manager
    from samplomatic.utils import find_unique_box_instructions, undress_box

    manager = generate_boxing_pass_manager(
        enable_gates=True,
        enable_measures=False,
        twirling_strategy=_STRATEGIES[options.get("twirling_strategy") or "active-accum"],
    )
    boxes: list[Any] = []
    for circuit in circuits:
        boxed = manager.run(_on_backend_register(circuit, num_qubits))
        boxes.extend(instr for instr in boxed.data if instr.operation.name == "box")
    unique = find_unique_box_instructions(boxes)
    layers = [
        instr
        for instr in unique
        if any(op.operation.num_qubits == 2 for op in undress_box(instr.operation).body.data)
    ]
    most = options.get("max_layers_to_learn")
    return layers if most is None else layers[: int(most)]


def learning_program(instructions: list, settings: dict, spec: Any) -> Any:
    """The vanilla learning program of ``instructions`` on backend ``spec``."""
    from qiskit_noise_learning.protocols import prepare_vanilla_program

    proxy = SimpleNamespace(target=spec.target, num_qubits=spec.num_qubits, name=spec.name)
    return prepare_vanilla_program(
        proxy,
        instructions,
        num_randomizations=int(settings["num_randomizations"]),
        shots_per_randomization=int(settings["shots_per_randomization"]),
        fragment_depths=list(settings["layer_pair_depths"]),
    )
