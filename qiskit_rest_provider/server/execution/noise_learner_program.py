"""Run a ``noise-learner`` job: learn layer noise as Pauli–Lindblad models on the backend's noise.

The learning is the published protocol as implemented by **qiskit-noise-learning** (the
library qiskit-ibm-runtime's own client-side ``NoiseLearnerV3`` uses): its "vanilla" experiment
(:func:`qiskit_noise_learning.protocols.prepare_vanilla_program`) builds twirled learning
circuits that repeat each layer in pairs at the requested depths, plus a 1-local readout (TREX)
model for a measurement layer; the program runs on this server's simulator of the backend (its
noise model restricted to the active qubits) with qiskit-ibm-runtime's local executor, and
:func:`~qiskit_noise_learning.protocols.process_vanilla_result` fits the decays into a 2-local
Pauli–Lindblad model per layer. The standard deviations come from the fit's covariance
(its diagonal, carried through the same symmetrization as the rates).

v3 inputs name the boxed instructions to learn. For v2 inputs the server finds them as IBM's
service does: the circuits are boxed with samplomatic (two-qubit gate layers, the requested
``twirling_strategy``), and the first ``max_layers_to_learn`` unique layers are learned. Rates
act on the layer's qubits in ascending physical order (the library's convention).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from .base import ExecutionOutcome, PreparedJob
from .learning import learning_program, v2_layers

__all__ = ["run_noise_learner_job"]


def _std_maps(fit: Any) -> dict:
    """Per-term standard deviations, as maps keyed like the rates' maps."""
    from qiskit_noise_learning.data import ModelData
    from qiskit_noise_learning.models import split_pauli_lindblad_model

    dataset = fit.model_data.dataset.copy()
    variance = np.clip(np.diag(dataset["covariance"].values), 0.0, None)
    dataset["parameter_values"] = (("parameter_index",), np.sqrt(variance))
    return split_pauli_lindblad_model(fit.model).model.to_pauli_lindblad_maps(
        ModelData(dataset), include_spam=True, restrict_to_qubit_idxs=True
    )


def _terms(plm: Any) -> list[tuple[tuple, float]]:
    """``[((paulis, indices), rate), ...]`` of a ``PauliLindbladMap``."""
    return [
        ((paulis, tuple(indices)), float(rate)) for paulis, indices, rate in plm.to_sparse_list()
    ]


def _learn(instructions: list, settings: dict, spec: Any, seed: int) -> tuple[list, list, float]:
    """Run the learning; ``(rate maps, std maps, simulate seconds)`` in instruction order."""
    from qiskit_ibm_runtime.fake_provider.executor.run_quantum_program import (
        run_quantum_program,
    )
    from qiskit_ibm_runtime.options_models.simulator import SimulatorOptions
    from qiskit_ibm_runtime.quantum_program import QuantumProgram
    from qiskit_noise_learning.protocols import process_vanilla_result

    from .simulators import simulator_for

    if not instructions:
        return [], [], 0.0
    program = QuantumProgram.from_(learning_program(instructions, settings, spec))
    simulator, _ = simulator_for(spec, {}, (item.circuit for item in program.items))
    t0 = time.perf_counter()
    result = run_quantum_program(
        simulator, program, SimulatorOptions(seed_simulator=seed, angle_decimals=12)
    )
    seconds = time.perf_counter() - t0
    maps, names, fit = process_vanilla_result(result)
    stds = _std_maps(fit)
    return maps, [stds.get(name) for name in names], seconds


def _v3_body(decoded: Any, instructions: list, maps: list, stds: list, settings: dict) -> bytes:
    import importlib

    from qiskit.quantum_info import QubitSparsePauli, QubitSparsePauliList
    from qiskit_ibm_runtime.noise_learner_v3.find_learning_protocol import (
        find_learning_protocol,
    )
    from qiskit_ibm_runtime.results import NoiseLearnerV3Result, NoiseLearnerV3Results

    data = []
    for instruction, plm, std in zip(instructions, maps, stds):
        protocol = find_learning_protocol(instruction)
        trex = protocol is not None and "trex" in str(protocol.value).lower()
        std_of = dict(_terms(std)) if std is not None else {}
        terms = _terms(plm)
        generators = [
            QubitSparsePauliList.from_qubit_sparse_paulis(
                [QubitSparsePauli.from_sparse_label(key, plm.num_qubits)]
            )
            for key, _rate in terms
        ]
        depths = [int(d) for d in settings["layer_pair_depths"]]
        # no post-selection runs (admission refuses it): every shot is kept
        kept: Any = 1.0 if trex else dict.fromkeys(depths, 1.0)
        metadata = {
            "learning_protocol": "trex" if trex else "lindblad",
            "post_selection": {"fraction_kept": kept, "success_rates": {}},
        }
        data.append(
            NoiseLearnerV3Result.from_generators(
                generators=generators,
                rates=[rate for _key, rate in terms],
                rates_std=[std_of.get(key, 0.0) for key, _rate in terms],
                metadata=metadata,
            )
        )
    name = decoded.version[1:].replace(".", "_")
    module = importlib.import_module(
        f"qiskit_ibm_runtime.noise_learner_v3.converters.version_{name}"
    )
    model = getattr(module, f"noise_learner_v3_result_to_{name}")(NoiseLearnerV3Results(data))
    return model.model_dump_json().encode()


def _layer_circuit(instruction: Any, num_qubits: int) -> tuple[Any, list[int]]:
    """The layer's two-qubit gates on its qubits in ascending physical order, and those qubits."""
    from qiskit.circuit import QuantumCircuit, QuantumRegister
    from samplomatic.utils import undress_box

    register = QuantumRegister(num_qubits, "q")  # the layers' qubits are bits of an equal one
    index = {register[i]: i for i in range(num_qubits)}
    physical = [index[q] for q in instruction.qubits]
    order = sorted(range(len(physical)), key=lambda j: physical[j])
    position = {local: k for k, local in enumerate(order)}
    body = undress_box(instruction.operation).body
    circuit = QuantumCircuit(len(physical))
    for op in body.data:
        if op.operation.name == "barrier":
            continue
        qargs = [position[body.find_bit(q).index] for q in op.qubits]
        circuit.append(op.operation, qargs)
    return circuit, sorted(physical)


def _v2_body(decoded: Any, instructions: list, maps: list, spec: Any) -> bytes:
    from ibm_quantum_schemas.noise_learner_v2.version_0_1 import ResultsModel

    from ...wire._qpy import encode_qpy
    from ...wire.arrays import encode_ndarray

    layers = []
    for instruction, plm in zip(instructions, maps):
        circuit, qubits = _layer_circuit(instruction, spec.num_qubits)
        n = len(qubits)
        labels, rates = [], []
        for (paulis, indices), rate in _terms(plm):
            label = ["I"] * n
            for pauli, index in zip(paulis, indices):
                label[n - 1 - index] = pauli
            labels.append("".join(label))
            rates.append(rate)
        layers.append(
            {
                "__value__": {
                    "circuit": encode_qpy(circuit),
                    "qubits": qubits,
                    "error": {
                        "__value__": {
                            "generators": {"__value__": {"data": labels}},
                            "rates": encode_ndarray(np.asarray(rates, dtype=float)),
                        }
                    },
                }
            }
        )
    options = decoded.options
    document = {
        "data": layers,
        "metadata": {
            "backend": spec.name,
            "input_options": {
                key: options.get(key)
                for key in (
                    "max_layers_to_learn",
                    "shots_per_randomization",
                    "num_randomizations",
                    "layer_pair_depths",
                    "twirling_strategy",
                )
            },
        },
    }
    return ResultsModel.model_validate(document).model_dump_json(by_alias=True).encode()


def run_noise_learner_job(prepared: PreparedJob, backend: Any) -> ExecutionOutcome:
    """Learn the noise of a ``noise-learner`` job's layers; the body is the program's result.

    Raises:
        RuntimeError: the learning failed (the message is the job's failure reason).
    """
    from ...wire.noise_learner import decode_noise_learner

    t0 = time.perf_counter()
    if prepared.decoded is not None:  # prepared in this process: decoded once, at admission
        decoded, instructions = prepared.decoded
    else:  # pickled from the API process without it (see PreparedJob): decode again
        assert prepared.payload is not None
        decoded = decode_noise_learner(prepared.payload, num_qubits=backend.num_qubits)
        if decoded.generation == 2:
            instructions = v2_layers(decoded.circuits, decoded.options, backend.num_qubits)
        else:
            instructions = decoded.instructions
    settings = dict(prepared.options["settings"])
    seed = prepared.options.get("seed_simulator")
    if seed is None:
        seed = int(np.random.default_rng().integers(2**62))
    t_parse = time.perf_counter()
    try:
        maps, stds, seconds = _learn(instructions, settings, backend, seed)
    except MemoryError:
        raise RuntimeError("noise learning failed: out of memory") from None
    except Exception as exc:  # the library's and Aer's errors: keep the reason readable
        raise RuntimeError(f"noise learning failed: {exc}") from exc
    t_sim = time.perf_counter()
    if decoded.generation == 2:
        body = _v2_body(decoded, instructions, maps, backend)
    else:
        body = _v3_body(decoded, instructions, maps, stds, settings)
    t_end = time.perf_counter()
    metrics = {
        "num_circuits": len(instructions),
        "num_qubits": [len(instr.qubits) for instr in instructions],
        "circuit_depths": [1 for _ in instructions],
        "stage_seconds": {
            "parse": t_parse - t0,
            "simulate": t_sim - t_parse,
            "encode": t_end - t_sim,
        },
    }
    return ExecutionOutcome(result_body=body, quantum_seconds=seconds, metrics=metrics)
