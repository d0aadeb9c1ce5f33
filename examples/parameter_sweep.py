"""A parameter sweep: one Estimator job evaluates <ZI> and <XX> of a Bell-type state at 21 angles.

The circuit has one parameter; its values and the observables broadcast (observables shaped
``(2, 1)`` against 21 parameter values give 2 x 21 expectation values), so the whole sweep is one
PUB of one job. With matplotlib installed the curves are plotted to ``--plot`` (a PNG); without
it the plot is skipped. Runs standalone (it starts a local server) or with ``--url``/``--token``.
"""

from __future__ import annotations

import argparse

import numpy as np
from local_service import add_service_arguments, local_service
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import generate_preset_pass_manager

from qiskit_rest_provider import EstimatorV2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_service_arguments(parser)
    parser.add_argument("--backend", default="rest_simulator")
    parser.add_argument("--points", type=int, default=21)
    parser.add_argument("--plot", default="parameter_sweep.png", help="PNG to write")
    args = parser.parse_args()

    with local_service(args) as service:
        backend = service.backend(args.backend)
        # [sweep]
        theta = Parameter("θ")
        circuit = QuantumCircuit(2)
        circuit.ry(theta, 0)
        circuit.cx(0, 1)
        isa = generate_preset_pass_manager(optimization_level=1, backend=backend).run(circuit)
        labels = ["ZI", "XX"]  # Qiskit's order: "ZI" is Z on qubit 1
        observables = [[SparsePauliOp(label).apply_layout(isa.layout)] for label in labels]
        angles = np.linspace(0, 2 * np.pi, args.points)

        estimator = EstimatorV2(mode=backend, options={"simulator": {"seed_simulator": 11}})
        job = estimator.run([(isa, observables, angles[:, None])], precision=0.02)
        data = job.result()[0].data  # evs and stds of shape (2, points)
        # [/sweep]
    exact = np.array([np.cos(angles), np.sin(angles)])  # of cos(θ/2)|00> + sin(θ/2)|11>
    print(f"job {job.job_id()}: {data.evs.shape[1]} angles x {len(labels)} observables")
    for label, evs, stds, ref in zip(labels, data.evs, data.stds, exact):
        worst = np.max(np.abs(evs - ref) / stds)
        print(f"<{label}>: largest deviation from the exact curve {worst:.1f} standard errors")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, evs, stds, ref in zip(labels, data.evs, data.stds, exact):
        ax.errorbar(angles, evs, yerr=stds, fmt="o", label=f"<{label}> measured")
        ax.plot(angles, ref, "-", alpha=0.5, label=f"<{label}> exact")
    ax.set_xlabel("θ (rad)")
    ax.set_ylabel("expectation value")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.plot)
    print(f"plot written to {args.plot}")


if __name__ == "__main__":
    main()
