"""VQE in a session: minimize the energy of H2 (2 qubits) with EstimatorV2 inside a Session.

Every optimizer step is one Estimator job; the Session keeps them together on one backend, as on
IBM's service. Run it standalone (it starts a local reference server) or against a running one
with ``--url URL --token TOKEN``.
"""

from __future__ import annotations

import argparse

import numpy as np
from local_service import add_service_arguments, local_service
from qiskit.circuit.library import real_amplitudes
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import generate_preset_pass_manager
from scipy.optimize import minimize

from qiskit_rest_provider import EstimatorV2, Session

# H2 at 0.735 Å (STO-3G, parity mapping with two qubits removed)
HAMILTONIAN = SparsePauliOp.from_list(
    [
        ("II", -1.052373245772859),
        ("IZ", 0.39793742484318045),
        ("ZI", -0.39793742484318045),
        ("ZZ", -0.01128010425623538),
        ("XX", 0.18093119978423156),
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_service_arguments(parser)
    parser.add_argument("--backend", default="rest_simulator")
    parser.add_argument("--maxiter", type=int, default=30, help="optimizer steps (jobs)")
    args = parser.parse_args()
    exact = float(np.linalg.eigvalsh(HAMILTONIAN.to_matrix())[0])

    with local_service(args) as service:
        backend = service.backend(args.backend)
        # [vqe]
        ansatz = real_amplitudes(2, reps=1)
        isa = generate_preset_pass_manager(optimization_level=1, backend=backend).run(ansatz)
        observable = HAMILTONIAN.apply_layout(isa.layout)  # as wide as the backend

        jobs = []
        with Session(backend, max_time="10m") as session:
            estimator = EstimatorV2(
                mode=session,
                options={"default_precision": 0.01, "simulator": {"seed_simulator": 7}},
            )

            def energy(theta: np.ndarray) -> float:
                job = estimator.run([(isa, observable, theta)])
                jobs.append(job.job_id())
                return float(job.result()[0].data.evs)

            x0 = np.full(ansatz.num_parameters, 0.1)
            found = minimize(energy, x0, method="COBYLA", options={"maxiter": args.maxiter})
        # [/vqe]
        print(f"session {session.session_id}: {len(jobs)} Estimator jobs")
    print(f"VQE energy {found.fun:.4f} Ha, exact {exact:.4f} Ha, error {found.fun - exact:+.4f}")


if __name__ == "__main__":
    main()
