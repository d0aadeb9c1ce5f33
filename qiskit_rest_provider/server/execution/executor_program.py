"""Run an ``executor`` job (a ``QuantumProgram``) on Qiskit Aer, in a worker process.

The program is decoded with qiskit-ibm-runtime's own converters (the same code the official
client encodes with) and run with qiskit-ibm-runtime's own local executor,
``fake_provider.executor.run_quantum_program``: each samplex item's randomizations are drawn by
**samplomatic** (``Samplex.sample``, broadcast over the item's shape), bound into the template
circuit and sampled, and the samplex's outputs (e.g. measurement-flip masks) are returned
beside the bits, so the official client's post-processing (``executor_sampler``,
``executor_estimator``) undoes the twirl exactly as it would on IBM's service.

What we add: the simulator is this server's (:func:`.simulators.simulator_for`: the backend's
noise model restricted to the circuits' active qubits), the seed is the job's
(``options.experimental.seed_simulator``, drawn at random when absent), and the result is
encoded into the version's ``QuantumProgramResultModel`` with real chunk timing.
"""

from __future__ import annotations

import datetime
import importlib
import time
from typing import Any

import numpy as np

from .base import ExecutionOutcome, PreparedJob

__all__ = ["encode_program_result", "run_executor_job"]


def _results_module(version: str) -> Any:
    return importlib.import_module(
        "ibm_quantum_schemas.executor.version_" + version[1:].replace(".", "_")
    )


def _passthrough(version: str, data: Any) -> Any:
    """The version's encoding of ``passthrough_data`` (its own converter, where it has one)."""
    name = version[1:].replace(".", "_")
    module = importlib.import_module(
        f"qiskit_ibm_runtime.quantum_program.converters.converters_{name}"
    )
    encode = getattr(module, f"passthrough_data_to_{name}", None)
    return encode(data) if encode is not None else data


def encode_program_result(
    result: Any,
    version: str,
    *,
    started: datetime.datetime,
    stopped: datetime.datetime,
    shapes: list[tuple[int, ...]],
) -> bytes:
    """Encode a ``QuantumProgramResult`` as executor ``version``'s result document (JSON).

    Args:
        result: qiskit-ibm-runtime's ``QuantumProgramResult``.
        version: the job's input schema version (results answer in the same version).
        started: when the execution began (UTC); the span is reported as one chunk.
        stopped: when it ended (UTC).
        shapes: each item's shape (its bound circuits are the chunk's parts).
    """
    models = _results_module(version)
    tensor = models.QuantumProgramResultItemModel.model_fields["results"].annotation.__args__[1]
    part_fields = models.ChunkPart.model_fields
    parts = []
    for index, shape in enumerate(shapes):
        size = int(np.prod(shape, dtype=np.int64)) if shape else 1
        part: dict[str, Any] = {"idx_item": index, "size": size}
        if "element_range" in part_fields:
            part.update(permutation=list(range(len(shape))), element_range=(0, size, 1))
        parts.append(models.ChunkPart(**part))
    # v0.1 items carry no metadata (the field is typed None); later ones an (empty) object
    metadata_field = models.QuantumProgramResultItemModel.model_fields["metadata"]
    item_metadata: dict[str, Any] | None = None if metadata_field.annotation is type(None) else {}
    items = []
    for item in list(result):
        arrays = {name: tensor.from_numpy(np.asarray(value)) for name, value in item.items()}
        items.append(models.QuantumProgramResultItemModel(results=arrays, metadata=item_metadata))
    document: dict[str, Any] = {
        "data": items,
        "metadata": models.MetadataModel(
            chunk_timing=[models.ChunkSpan(start=started, stop=stopped, parts=parts)]
        ),
    }
    fields = models.QuantumProgramResultModel.model_fields
    if "passthrough_data" in fields:
        document["passthrough_data"] = _passthrough(version, result.passthrough_data)
    if "semantic_role" in fields:
        document["semantic_role"] = getattr(result, "_semantic_role", None)
    model = models.QuantumProgramResultModel(**document)
    return model.model_dump_json().encode()


def _dry_run(program: Any, seed: int) -> Any:
    """Randomized data of the exact shapes a real run returns (what a dry run answers).

    Samplex items still draw their randomizations (their outputs, e.g. measurement-flip masks,
    are part of the result); no circuit is simulated and the bits are uniformly random.
    """
    from qiskit_ibm_runtime.fake_provider.executor.broadcast_sample import broadcast_sample
    from qiskit_ibm_runtime.results import QuantumProgramItemResult, QuantumProgramResult

    rng = np.random.default_rng(seed)
    items = []
    for item in program.items:
        data: dict[str, Any] = {}
        shape = _item_shape(item)
        if getattr(item, "samplex", None) is not None:
            data = broadcast_sample(item.samplex, item.samplex_arguments, item.shape, rng)
            data.pop("parameter_values", None)
        for register in item.circuit.cregs:
            data[register.name] = rng.integers(
                0, 2, size=(*shape, int(program.shots), register.size), dtype=np.uint8
            ).astype(bool)
        items.append(QuantumProgramItemResult(result=data, metadata=None))
    result = QuantumProgramResult(
        data=items, metadata=None, passthrough_data=program.passthrough_data
    )
    result._semantic_role = getattr(program, "_semantic_role", None)
    return result


def _item_shape(item: Any) -> tuple[int, ...]:
    shape = tuple(int(s) for s in (getattr(item, "shape", ()) or ()))
    if not shape and getattr(item, "circuit_arguments", None) is not None:
        shape = tuple(int(s) for s in np.shape(item.circuit_arguments)[:-1])
    return shape


def run_executor_job(prepared: PreparedJob, backend: Any) -> ExecutionOutcome:
    """Simulate an executor job; the outcome's body is the version's result document.

    Raises:
        RuntimeError: the simulation failed (the message is the job's failure reason).
    """
    from qiskit_ibm_runtime.fake_provider.executor.run_quantum_program import (
        run_quantum_program,
    )
    from qiskit_ibm_runtime.options_models.simulator import SimulatorOptions

    from ...wire.executor import decode_program
    from .method import PLAN_KEY
    from .simulators import simulator_for

    t0 = time.perf_counter()
    if prepared.decoded is not None:  # prepared in this process: decoded once, at admission
        program, version = prepared.decoded
    else:  # pickled from the API process without it (see PreparedJob): decode again
        assert prepared.payload is not None
        program, _options, version = decode_program(prepared.payload)
    t_parse = time.perf_counter()
    seed = prepared.options.get("seed_simulator")
    if seed is None:
        seed = int(np.random.default_rng().integers(2**62))
    simulator = None
    if not getattr(backend, "dry_run_of", None):
        # the engine's method choice (admission sized the job with it): the official estimator
        # and sampler measure every qubit of a device-wide ISA circuit, which a statevector
        # would simulate as one 27- or 127-qubit state; the plan picks what fits
        plan = {k: v for k, v in prepared.options.items() if k == PLAN_KEY}
        simulator, _noisy = simulator_for(backend, plan, (item.circuit for item in program.items))
    options = SimulatorOptions(seed_simulator=seed, angle_decimals=12)
    started = datetime.datetime.now(datetime.timezone.utc)
    t_sim = time.perf_counter()
    try:
        if getattr(backend, "dry_run_of", None):
            result = _dry_run(program, seed)
        else:
            result = run_quantum_program(simulator, program, options)
    except MemoryError:
        raise RuntimeError("simulation failed: out of memory") from None
    except Exception as exc:  # Aer, samplomatic: keep the reason readable
        raise RuntimeError(f"simulation failed: {exc}") from exc
    t_sim_end = time.perf_counter()
    stopped = datetime.datetime.now(datetime.timezone.utc)
    body = encode_program_result(
        result,
        version,
        started=started,
        stopped=stopped,
        shapes=[_item_shape(item) for item in program.items],
    )
    t_end = time.perf_counter()
    metrics = {
        "num_circuits": len(program.items),
        "num_qubits": [int(item.circuit.num_qubits) for item in program.items],
        "circuit_depths": [int(item.circuit.depth()) for item in program.items],
        "stage_seconds": {
            "parse": t_parse - t0,
            "simulate": t_sim_end - t_sim,
            "encode": t_end - t_sim_end,
        },
    }
    return ExecutionOutcome(result_body=body, quantum_seconds=t_sim_end - t_sim, metrics=metrics)
