"""A batch: independent Sampler jobs (GHZ states of 2 to 5 qubits) submitted together.

The jobs of a Batch are independent, so the service may run them in parallel; all are submitted
before any result is read. On the noisy 5-qubit line device the GHZ fidelity proxy P(0...0) +
P(1...1) falls as the state grows. Runs standalone or with ``--url``/``--token``.
"""

from __future__ import annotations

import argparse

from local_service import add_service_arguments, local_service
from qiskit import QuantumCircuit
from qiskit.transpiler import generate_preset_pass_manager

from qiskit_rest_provider import Batch, SamplerV2


def ghz(n: int) -> QuantumCircuit:
    """The ``n``-qubit GHZ state, measured."""
    qc = QuantumCircuit(n, name=f"ghz{n}")
    qc.h(0)
    for q in range(n - 1):
        qc.cx(q, q + 1)
    qc.measure_all()
    return qc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_service_arguments(parser)
    parser.add_argument("--backend", default="rest_line_5q")
    parser.add_argument("--shots", type=int, default=1000)
    args = parser.parse_args()

    with local_service(args) as service:
        backend = service.backend(args.backend)
        # [batch]
        pm = generate_preset_pass_manager(optimization_level=1, backend=backend)
        circuits = pm.run([ghz(n) for n in range(2, 6)])

        with Batch(backend) as batch:
            sampler = SamplerV2(mode=batch)
            jobs = [sampler.run([circuit], shots=args.shots) for circuit in circuits]
        # leaving the block closes the batch; its jobs still run
        results = [job.result() for job in jobs]
        # [/batch]
        listed = service.jobs(session_id=batch.session_id, limit=None)
    print(f"batch {batch.session_id}: {len(listed)} jobs")
    for n, job, result in zip(range(2, 6), jobs, results):
        counts = result[0].data.meas.get_counts()
        good = (counts.get("0" * n, 0) + counts.get("1" * n, 0)) / args.shots
        print(f"GHZ-{n} job {job.job_id()}: P(0..0) + P(1..1) = {good:.3f}")


if __name__ == "__main__":
    main()
