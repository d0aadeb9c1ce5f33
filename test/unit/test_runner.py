"""``admission.prepare_job``: every way a job's params can be rejected, and what is accepted."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from qiskit import QuantumCircuit, qasm3
from qiskit.circuit import Parameter

from qiskit_rest_provider.server.backends.catalog import BackendCatalog
from qiskit_rest_provider.server.execution import runner
from qiskit_rest_provider.server.execution.base import PreparedJob
from qiskit_rest_provider.server.execution.simulators import aer_settings
from qiskit_rest_provider.server.jobs import admission
from qiskit_rest_provider.server.jobs.admission import JobInputError, prepare_job
from qiskit_rest_provider.wire import encode_qpy

BELL = (
    'OPENQASM 3.0; include "stdgates.inc"; bit[2] meas; h $0; cx $0, $1; '
    "meas[0] = measure $0; meas[1] = measure $1;"
)


@pytest.fixture(scope="module")
def catalog():
    return BackendCatalog.load()


@pytest.fixture(scope="module")
def sim(catalog):
    return catalog.get("rest_simulator")


@pytest.fixture(scope="module")
def line(catalog):
    return catalog.get("rest_line_5q")


def _line_circuit() -> QuantumCircuit:
    qc = QuantumCircuit(5, 2)
    qc.x(0)
    qc.sx(1)
    qc.cz(0, 1)
    qc.measure([0, 1], [0, 1])
    return qc


def test_sampler_params_are_prepared_with_defaults(sim):
    prepared = prepare_job("sampler", {"pubs": [[BELL]], "version": "2"}, sim)
    assert isinstance(prepared, PreparedJob)
    assert prepared.program_id == "sampler"
    assert prepared.backend_name == "rest_simulator"
    assert prepared.pubs[0].shots == 4096
    assert prepared.options["default_shots"] == 4096
    assert prepared.support_qiskit is False
    assert prepared.resilience_level is None
    # travels to worker processes
    again = pickle.loads(pickle.dumps(prepared))
    assert again.pubs[0].circuit == prepared.pubs[0].circuit


def test_shots_precedence(sim):
    params = {"pubs": [[BELL], [BELL, None, 7]], "options": {"default_shots": 11}}
    prepared = prepare_job("sampler", params, sim)
    assert [p.shots for p in prepared.pubs] == [11, 7]
    params["shots"] = 13
    assert [p.shots for p in prepare_job("sampler", params, sim).pubs] == [13, 7]


def test_estimator_defaults_and_resilience_level(sim):
    qc = QuantumCircuit(2)
    qc.h(0)
    params = {"pubs": [[encode_qpy(qc), "ZZ"]], "version": 2}
    prepared = prepare_job("estimator", params, sim)
    assert prepared.pubs[0].precision == 0.015625
    assert prepared.resilience_level == 1
    params["resilience_level"] = 0
    assert prepare_job("estimator", params, sim).resilience_level == 0
    params["resilience_level"] = 3
    with pytest.raises(JobInputError, match="resilience_level"):
        prepare_job("estimator", params, sim)


def test_estimator_default_shots_sets_precision(sim):
    qc = QuantumCircuit(2)
    qc.h(0)
    params = {
        "pubs": [[encode_qpy(qc), "ZZ"], [encode_qpy(qc), "XX", None, 0.2]],
        "options": {"default_shots": 400},
    }
    prepared = prepare_job("estimator", params, sim)
    assert prepared.pubs[0].precision == pytest.approx(1 / math.sqrt(400))
    assert prepared.pubs[1].precision == 0.2
    # every PUB reports its shots (result model): an explicit precision 0.2 stands for 25
    assert prepared.pub_shots == [400, 25]


def test_unknown_program_is_rejected(sim):
    with pytest.raises(JobInputError) as info:
        prepare_job("circuit-runner", {"pubs": [[BELL]]}, sim)
    assert info.value.code == "program_not_found"
    assert info.value.field == "program_id"


def test_non_isa_gate_names_gate_qubits_and_pub(line):
    qasm = qasm3.dumps(_line_circuit())
    bad = 'OPENQASM 3.0; include "stdgates.inc"; bit[1] c; h $3; c[0] = measure $3;'
    with pytest.raises(JobInputError) as info:
        prepare_job("sampler", {"pubs": [[qasm], [bad]]}, line)
    message = str(info.value)
    assert "'h'" in message and "qubit 3" in message and "PUB 1" in message
    assert info.value.field == "params.pubs[1].circuit"
    assert info.value.code == "non_isa_circuit"


def test_gate_on_uncoupled_qubits_is_not_isa(line):
    qc = QuantumCircuit(5, 1)
    qc.cz(0, 2)  # the line couples 0-1, 1-2, ...
    qc.measure(0, 0)
    with pytest.raises(JobInputError) as info:
        prepare_job("sampler", {"pubs": [[encode_qpy(qc)]]}, line)
    assert "'cz'" in str(info.value) and "[0, 2]" in str(info.value)


def test_non_isa_inside_control_flow_is_found(line):
    qc = QuantumCircuit(5, 1)
    qc.x(0)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.h(4)
    with pytest.raises(JobInputError, match=r"'h' on qubit 4"):
        prepare_job("sampler", {"pubs": [[encode_qpy(qc)]]}, line)
    ok = QuantumCircuit(5, 1)
    ok.x(0)
    ok.measure(0, 0)
    with ok.if_test((ok.clbits[0], 1)):
        ok.x(4)
    assert prepare_job("sampler", {"pubs": [[encode_qpy(ok)]]}, line).pubs[0].shots == 4096


def test_too_wide_circuit_is_rejected(line):
    qc = QuantumCircuit(6, 1)
    qc.x(5)
    qc.measure(5, 0)
    with pytest.raises(JobInputError) as info:
        prepare_job("sampler", {"pubs": [[encode_qpy(qc)]]}, line)
    assert "pubs[0]" in (info.value.field or "")
    assert "6" in str(info.value) and "5" in str(info.value)


@pytest.mark.parametrize("shots", [0, -5, 2.5, "many", 100_001])
def test_bad_shots_are_rejected(sim, shots):
    with pytest.raises(JobInputError) as info:
        prepare_job("sampler", {"pubs": [[BELL, None, shots]]}, sim)
    assert "pubs[0]" in str(info.value) and "shots" in str(info.value)


def test_total_work_cap(sim):
    theta = Parameter("t")
    qc = QuantumCircuit(1, 1)
    qc.rx(theta, 0)
    qc.measure(0, 0)
    values = np.zeros((200, 1))
    with pytest.raises(JobInputError) as info:
        prepare_job("sampler", {"pubs": [[encode_qpy(qc), values.tolist(), 100_000]]}, sim)
    assert info.value.code == "job_too_large"
    assert str(admission.MAX_TOTAL_SHOTS) in str(info.value)


@pytest.mark.parametrize("precision", [0, -0.1, "fine"])
def test_bad_precision_is_rejected(sim, precision):
    qc = QuantumCircuit(2)
    qc.h(0)
    with pytest.raises(JobInputError) as info:
        prepare_job("estimator", {"pubs": [[encode_qpy(qc), "ZZ", None, precision]]}, sim)
    assert "precision" in str(info.value)
    with pytest.raises(JobInputError, match="precision"):
        prepare_job("estimator", {"pubs": [[encode_qpy(qc), "ZZ"]], "precision": precision}, sim)


def test_unknown_option_names_the_key_path(sim):
    with pytest.raises(JobInputError) as info:
        prepare_job("sampler", {"pubs": [[BELL]], "options": {"twirling": {"foo": True}}}, sim)
    assert info.value.field == "params.options.twirling.foo"
    assert "params.options.twirling.foo" in str(info.value)
    with pytest.raises(JobInputError) as info:
        prepare_job("estimator", {"pubs": [[BELL, "ZZ"]], "options": {"default_shots": 0}}, sim)
    assert info.value.field == "params.options.default_shots"


def test_wire_errors_keep_the_field(sim):
    with pytest.raises(JobInputError) as info:
        prepare_job("sampler", {"pubs": [["OPENQASM 3.0; qubit[1] q; bogus q[0];"]]}, sim)
    assert info.value.field.startswith("params.pubs[0]")
    with pytest.raises(JobInputError) as info:
        prepare_job("sampler", {"pubs": "nope"}, sim)
    assert str(info.value).startswith("params.pubs")
    with pytest.raises(JobInputError):
        prepare_job("sampler", ["not", "a", "dict"], sim)


def test_isa_check_is_cached_per_instruction_and_fast_for_big_circuits(catalog):
    backend = catalog.get("rest_hex_27q")
    qc = QuantumCircuit(27, 27)
    for _ in range(200):
        for q in range(27):
            qc.rz(0.1, q)
            qc.sx(q)
    qc.measure(range(27), range(27))
    prepared = prepare_job("sampler", {"pubs": [[encode_qpy(qc), None, 10]]}, backend)
    assert prepared.pubs[0].circuit.num_qubits == 27


def test_rep_delay_must_be_in_the_backend_range(line):
    qasm = qasm3.dumps(_line_circuit())
    low, high = line.configuration["rep_delay_range"]
    ok = {"pubs": [[qasm]], "options": {"execution": {"rep_delay": high * 1e-6}}}
    assert prepare_job("sampler", ok, line).options["execution"]["rep_delay"] == high * 1e-6
    bad = {"pubs": [[qasm]], "options": {"execution": {"rep_delay": high * 1e-6 * 2}}}
    with pytest.raises(JobInputError) as info:
        prepare_job("sampler", bad, line)
    assert info.value.field == "params.options.execution.rep_delay"


def test_aer_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv(runner.AER_THREADS_ENV, "1")
    monkeypatch.setenv(runner.AER_MAX_MEMORY_ENV, "bogus")
    assert aer_settings() == {"shot_branching_enable": False, "max_parallel_threads": 1}
    monkeypatch.setenv(runner.AER_THREADS_ENV, "0")
    monkeypatch.setenv(runner.AER_MAX_MEMORY_ENV, "512")
    assert aer_settings() == {"shot_branching_enable": False, "max_memory_mb": 512}
