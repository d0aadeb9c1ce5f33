"""Legacy ``BackendV2.run`` on top of the sampler.

Code written for ``backend.run(circuits, shots=...)`` and ``result.get_counts()`` keeps working:
the circuits go to the service as one sampler job, and the sampler's per-register
:class:`~qiskit.primitives.BitArray` results are turned into a :class:`qiskit.result.Result`
whose counts look exactly as Qiskit formats them (registers joined by spaces, the last register
leftmost, e.g. ``"01 1"``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from qiskit.circuit import QuantumCircuit
from qiskit.primitives import BitArray, PrimitiveResult
from qiskit.providers import JobStatus, JobV1
from qiskit.result import Result

from ..exceptions import InvalidInputError
from .job import RestPrimitiveJob
from .sampler import SamplerV2

if TYPE_CHECKING:  # pragma: no cover
    from ..backend import RestBackend

logger = logging.getLogger(__name__)

__all__ = ["BackendRunJob", "run_circuits", "primitive_result_to_result"]

_SIMULATOR_KEYS = {"seed_simulator": "seed_simulator", "seed": "seed_simulator"}
_EXECUTION_KEYS = {"init_qubits", "rep_delay", "meas_type"}


def run_circuits(
    backend: RestBackend,
    circuits: QuantumCircuit | Sequence[QuantumCircuit],
    *,
    shots: int | None = None,
    **options: Any,
) -> BackendRunJob:
    """Run ISA circuits as one sampler job; return a job whose ``result()`` is a ``Result``.

    Args:
        backend: the backend to run on.
        circuits: one circuit or a list of circuits (bound, measured, ISA for ``backend``).
        shots: shots per circuit (service default when ``None``).
        **options: ``memory`` (keep per-shot bitstrings), ``seed_simulator``, ``init_qubits``,
            ``rep_delay``; other ``run`` options are ignored with a warning in the log.
    """
    single = isinstance(circuits, QuantumCircuit)
    circuit_list = [circuits] if single else list(circuits)  # type: ignore[list-item]
    for index, circuit in enumerate(circuit_list):
        if not isinstance(circuit, QuantumCircuit):
            raise InvalidInputError(f"circuits[{index}] is not a QuantumCircuit")
    memory = bool(options.pop("memory", False))
    sampler_options: dict[str, Any] = {}
    for key, value in options.items():
        if value is None:
            continue
        if key in _SIMULATOR_KEYS:
            sampler_options.setdefault("simulator", {})[_SIMULATOR_KEYS[key]] = value
        elif key in _EXECUTION_KEYS:
            sampler_options.setdefault("execution", {})[key] = value
        else:
            logger.warning("backend.run option %r is not supported and was ignored", key)
    sampler = SamplerV2(mode=backend, options=sampler_options)
    job = sampler.run([(circuit,) for circuit in circuit_list], shots=shots)
    return BackendRunJob(backend, job, circuit_list, memory=memory)


class BackendRunJob(JobV1):
    """A legacy job around one sampler job; ``result()`` gives a :class:`qiskit.result.Result`."""

    def __init__(
        self,
        backend: RestBackend,
        job: RestPrimitiveJob,
        circuits: list[QuantumCircuit],
        *,
        memory: bool = False,
    ) -> None:
        super().__init__(backend, job.job_id())
        self._job = job
        self._circuits = circuits
        self._memory = memory
        self._result: Result | None = None

    @property
    def primitive_job(self) -> RestPrimitiveJob:
        """The underlying sampler job."""
        return self._job

    def submit(self) -> None:
        """Jobs are submitted when created; this is a no-op kept for the JobV1 interface."""

    def status(self) -> JobStatus:
        """The job's status."""
        return self._job.status()

    def cancel(self) -> None:
        """Cancel the job."""
        self._job.cancel()

    def result(self, timeout: float | None = None) -> Result:
        """Wait for the job and return its :class:`qiskit.result.Result`."""
        if self._result is None:
            primitive = self._job.result(timeout=timeout)
            self._result = primitive_result_to_result(
                primitive,
                self._circuits,
                backend_name=self._backend.name,
                job_id=self.job_id(),
                memory=self._memory,
            )
        return self._result


def primitive_result_to_result(
    primitive: PrimitiveResult,
    circuits: list[QuantumCircuit],
    *,
    backend_name: str,
    job_id: str,
    memory: bool = False,
) -> Result:
    """Convert a sampler :class:`PrimitiveResult` into a legacy :class:`Result` (counts, memory)."""
    experiments = []
    for circuit, pub_result in zip(circuits, primitive, strict=True):
        data = pub_result.data
        arrays = [getattr(data, creg.name) for creg in circuit.cregs]
        shots = arrays[0].num_shots if arrays else 0
        exp_data: dict[str, Any] = {}
        if arrays:
            joined = BitArray.concatenate_bits(arrays) if len(arrays) > 1 else arrays[0]
            exp_data["counts"] = {hex(int(k, 2)): v for k, v in joined.get_counts().items()}
            if memory:
                exp_data["memory"] = [hex(int(k, 2)) for k in joined.get_bitstrings()]
        else:
            exp_data["counts"] = {}
        experiments.append(
            {
                "shots": shots,
                "success": True,
                "status": "DONE",
                "data": exp_data,
                "header": {
                    "name": circuit.name,
                    "creg_sizes": [[creg.name, creg.size] for creg in circuit.cregs],
                    "memory_slots": sum(creg.size for creg in circuit.cregs),
                    "metadata": circuit.metadata or {},
                },
            }
        )
    return Result.from_dict(
        {
            "backend_name": backend_name,
            "backend_version": "2",
            "job_id": job_id,
            "qobj_id": str(uuid.uuid4()),
            "success": True,
            "results": experiments,
            "status": "COMPLETED",
        }
    )
