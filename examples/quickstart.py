"""Start a local reference server, then run a Sampler and an Estimator job against it over REST.

This is what ``bash scripts/demo`` runs. It needs the ``server`` extra
(``pip install -e ".[server]"``). The server runs as a child process on a free port of
127.0.0.1 with a throw-away data directory, and is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time

from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import generate_preset_pass_manager

from qiskit_rest_provider import EstimatorV2, ProviderService, SamplerV2


def start_server(data_dir: str, token: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``qiskit-rest-provider serve`` and return the process and its base URL.

    The server's output goes to a log file in the data directory (a pipe nobody reads would
    eventually block the server), which we read until it announces its base URL.
    """
    log_path = os.path.join(data_dir, "server.log")
    cmd = [
        sys.executable,
        "-m",
        "qiskit_rest_provider",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--data-dir",
        data_dir,
        f"--token={token}",  # one argument: a token may start with "-"
    ]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            for line in log:
                if line.startswith("Base URL:"):
                    return proc, line.split(":", 1)[1].strip()
        if proc.poll() is not None:
            with open(log_path, encoding="utf-8", errors="replace") as log:
                raise RuntimeError(f"server exited with code {proc.returncode}:\n{log.read()}")
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start within 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="rest_line_5q", help="backend name on the server")
    parser.add_argument("--shots", type=int, default=2000)
    args = parser.parse_args()

    token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="qrp-demo-") as data_dir:
        proc, url = start_server(data_dir, token)
        try:
            service = ProviderService(url=url, token=token)
            names = [b.name for b in service.backends()]
            print(f"server {url} offers backends: {', '.join(names)}")
            backend = service.backend(args.backend)
            pm = generate_preset_pass_manager(optimization_level=1, backend=backend)

            bell = QuantumCircuit(2, name="bell")
            bell.h(0)
            bell.cx(0, 1)
            bell.measure_all()
            job = SamplerV2(mode=backend).run([pm.run(bell)], shots=args.shots)
            counts = job.result()[0].data.meas.get_counts()
            counts = dict(sorted(counts.items()))
            print(f"Sampler job {job.job_id()} on {backend.name}: counts {counts}")

            bell.remove_final_measurements()
            isa = pm.run(bell)
            observables = [SparsePauliOp(p).apply_layout(isa.layout) for p in ("ZZ", "XX", "ZI")]
            job = EstimatorV2(mode=backend).run([(isa, observables)])
            data = job.result()[0].data
            for label, ev, std in zip(("ZZ", "XX", "ZI"), data.evs, data.stds):
                print(f"Estimator job {job.job_id()}: <{label}> = {ev:+.4f} ± {std:.4f}")
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
