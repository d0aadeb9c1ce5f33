"""Every executor input version the server names runs, and answers in its own version.

The official client sends v2.0 today; older clients send v0.1–v1.1. Each version's params are
encoded with qiskit-ibm-runtime's own converters, run through admission and the worker's code,
and the result is decoded with the official client's executor decoder.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("qiskit_aer")
pytest.importorskip("qiskit_ibm_runtime.quantum_program")

from qiskit import QuantumCircuit, transpile  # noqa: E402
from qiskit.circuit import Parameter  # noqa: E402
from qiskit_ibm_runtime.decoders.executor.decoder import ExecutorResultDecoder  # noqa: E402
from qiskit_ibm_runtime.options_models import ExecutorOptions  # noqa: E402
from qiskit_ibm_runtime.quantum_program import QuantumProgram  # noqa: E402
from qiskit_ibm_runtime.quantum_program.params_converters import (  # noqa: E402
    QUANTUM_PROGRAM_PARAMS_CONVERTERS,
)

from qiskit_rest_provider.server.backends.catalog import BackendCatalog  # noqa: E402
from qiskit_rest_provider.server.execution.runner import execute_job  # noqa: E402
from qiskit_rest_provider.server.jobs.admission import prepare_job  # noqa: E402
from qiskit_rest_provider.wire.executor import EXECUTOR_VERSIONS  # noqa: E402


def test_the_server_names_every_version_the_official_converters_know():
    assert set(EXECUTOR_VERSIONS) == set(QUANTUM_PROGRAM_PARAMS_CONVERTERS)


@pytest.mark.parametrize("version", sorted(QUANTUM_PROGRAM_PARAMS_CONVERTERS))
def test_each_version_runs_and_answers_in_its_version(version):
    spec = BackendCatalog.load().get("rest_simulator")
    theta = Parameter("t")
    circuit = QuantumCircuit(1)
    circuit.rx(theta, 0)
    circuit.measure_all()
    program = QuantumProgram(shots=100)
    program.append_circuit_item(
        transpile(circuit, target=spec.target), circuit_arguments=np.array([[0.0], [math.pi]])
    )
    converter = QUANTUM_PROGRAM_PARAMS_CONVERTERS[version]
    params = converter.encoder(program, ExecutorOptions()).model_dump(mode="json")
    body = execute_job(prepare_job("executor", params, spec), spec).result_body
    assert f'"schema_version":"{version}"' in body.decode()
    bits = list(ExecutorResultDecoder.decode(body.decode()))[0]["meas"]
    assert bits.shape == (2, 100, 1)
    assert bits[0].mean() == 0.0 and bits[1].mean() == 1.0  # rx(0) -> 0, rx(pi) -> 1
