"""Bounded circuit import (issue 15): structural checks before any parser runs, a CPU budget on the
general importer, a job byte budget, and an import cache bounded in bytes that never keeps input
a job's admission refused."""

from __future__ import annotations

import time

import pytest

from qiskit_rest_provider.exceptions import WireFormatError
from qiskit_rest_provider.server.backends.catalog import BackendCatalog
from qiskit_rest_provider.server.jobs.admission import JobInputError, prepare_job
from qiskit_rest_provider.wire import _qasm_limits as limits
from qiskit_rest_provider.wire import circuits
from qiskit_rest_provider.wire.circuits import admission_imports, cache_bytes, import_qasm

HEAD = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] b;\n'
BELL = HEAD + "h q[0];\ncx q[0], q[1];\nb[0] = measure q[0];\nb[1] = measure q[1];\n"


def flat(n: int, tag: str = "") -> str:
    """A flat ISA-style program of ``n`` gates (the fast reader takes it)."""
    return HEAD + f"// {tag}\n" + "rz(0.5) q[0];\n" * n


def general(n: int) -> str:
    """A program of ``n`` custom-gate calls: only the general (ANTLR) importer reads it."""
    return HEAD + "gate g(a) x { rz(a) x; }\n" + "g(0.5) q[0];\n" * n


@pytest.fixture(autouse=True)
def _fresh_cache():
    circuits.clear_caches()
    yield
    circuits.clear_caches()


# ------------------------------------------------------------------ checks before any parser
def test_a_program_over_the_byte_cap_is_refused_before_parsing(monkeypatch):
    monkeypatch.setattr(limits, "MAX_CIRCUIT_BYTES", 10_000)
    text = flat(2000)
    stats = dict(circuits.import_stats)
    started = time.perf_counter()
    with pytest.raises(WireFormatError, match=r"at most 10000 bytes .*--max-circuit-bytes"):
        import_qasm(text)
    assert time.perf_counter() - started < 0.1
    assert circuits.import_stats == stats  # no reader ran


def test_statement_cap(monkeypatch):
    monkeypatch.setattr(limits, "MAX_STATEMENTS", 100)
    with pytest.raises(WireFormatError, match=r"\d+ statements; at most 100 .*max_statements"):
        import_qasm(flat(200))
    assert import_qasm(flat(90)).circuit.size() == 90


def test_one_huge_expression_is_refused_not_a_crash():
    """10,240 terms in one angle: Qiskit's Rust importer overflows its stack (SIGSEGV) on it."""
    text = HEAD + "rz(" + "+".join(["1"] * 10_240) + ") q[0];\n"
    with pytest.raises(WireFormatError, match=r"10240 operators .*at most 1000"):
        import_qasm(text)
    nested = HEAD + "rz(" + "(" * 2000 + "1" + ")" * 2000 + ") q[0];\n"
    with pytest.raises(WireFormatError, match="nesting limit"):
        import_qasm(nested)


def test_operators_in_comments_do_not_count():
    text = "// " + "-" * 5000 + "\n" + BELL
    assert import_qasm(text).circuit.num_qubits == 2


def test_declared_loop_iterations_are_capped():
    text = HEAD + "for int i in [0:100000000] { x q[0]; }\n"
    with pytest.raises(WireFormatError, match=r"100000001 iterations; at most 100000"):
        import_qasm(text)
    ok = HEAD + "for int i in [0:2:9] { x q[0]; }\n"
    assert import_qasm(ok).circuit.num_qubits == 2


def test_general_importer_statement_cap_names_the_limit_and_qpy():
    started = time.perf_counter()
    with pytest.raises(WireFormatError, match=r"general OpenQASM 3 importer.*at most 2000.*QPY"):
        with admission_imports():
            import_qasm(general(3000))
    assert time.perf_counter() - started < 1.0  # instead of ~3 s of ANTLR
    with admission_imports():
        assert import_qasm(general(50)).circuit.size() == 50


def test_general_importer_cpu_budget(monkeypatch):
    monkeypatch.setattr(limits, "GENERAL_IMPORT_BUDGET", 0.05)
    started = time.perf_counter()
    with pytest.raises(WireFormatError, match=r"more than 0.05 s to import.*QPY"):
        with admission_imports():
            import_qasm(general(1500))
    assert time.perf_counter() - started < 1.0
    assert len(circuits._IMPORT_CACHE) == 0


def test_outside_admission_the_general_importer_is_not_capped(monkeypatch):
    """A worker transpiling a request, or a client, reads what it was given (no API to guard)."""
    monkeypatch.setattr(limits, "MAX_GENERAL_STATEMENTS", 10)
    assert import_qasm(general(30)).circuit.size() == 30


def test_job_byte_budget_counts_every_circuit_of_the_job():
    with admission_imports(max_total_bytes=3 * len(BELL)):
        for _ in range(3):
            import_qasm(BELL)
        with pytest.raises(WireFormatError, match=r"at most \d+ per job .*--max-job-circuit-bytes"):
            import_qasm(BELL)


# ------------------------------------------------------------------------------ the cache
def test_cache_is_bounded_in_estimated_bytes(monkeypatch):
    one = circuits.circuit_bytes_estimate(import_qasm(flat(1000, "probe")).circuit)
    circuits.clear_caches()
    monkeypatch.setattr(circuits, "IMPORT_CACHE_BYTES", 5 * one)
    for i in range(20):
        import_qasm(flat(1000, str(i)))
        assert cache_bytes() <= 5 * one
    assert len(circuits._IMPORT_CACHE) == 5
    assert cache_bytes() == sum(size for _, size in circuits._IMPORT_CACHE.values())
    # An entry over a quarter of the cap is never cached.
    import_qasm(flat(2000, "big"))
    assert len(circuits._IMPORT_CACHE) == 5
    hits = circuits.import_stats["cache_hits"]
    import_qasm(flat(1000, "19"))
    assert circuits.import_stats["cache_hits"] == hits + 1


def test_imports_enter_the_cache_only_when_admission_succeeds():
    with pytest.raises(RuntimeError), admission_imports():
        import_qasm(flat(10, "refused"))
        raise RuntimeError("admission refused the job")
    assert len(circuits._IMPORT_CACHE) == 0 and cache_bytes() == 0
    with admission_imports():
        import_qasm(flat(10, "accepted"))
        assert len(circuits._IMPORT_CACHE) == 0  # not before the job is accepted
    assert len(circuits._IMPORT_CACHE) == 1


def test_a_job_refused_by_admission_leaves_nothing_in_the_cache():
    backend = BackendCatalog.load().get("rest_line_5q")
    too_wide = HEAD.replace("qubit[2]", "qubit[6]") + "rz(0.5) q[5];\n" * 5000
    with pytest.raises(JobInputError):
        prepare_job("sampler", {"pubs": [[BELL, None, 10], [too_wide, None, 10]]}, backend)
    not_isa = HEAD + "h q[0];\n" + "rz(0.5) q[0];\n" * 5000  # h is not a basis gate here
    with pytest.raises(JobInputError):
        prepare_job("sampler", {"pubs": [[not_isa, None, 10]], "version": 2}, backend)
    assert len(circuits._IMPORT_CACHE) == 0 and cache_bytes() == 0
    isa = HEAD + "rz(0.5) q[0];\nsx q[0];\nb[0] = measure q[0];\n"
    prepare_job("sampler", {"pubs": [[isa, None, 10]], "version": 2}, backend)
    assert len(circuits._IMPORT_CACHE) == 1


def test_limits_from_the_environment(monkeypatch):
    """``serve`` passes its flags to worker processes through these variables."""
    monkeypatch.setenv("QISKIT_REST_MAX_CIRCUIT_BYTES", "5000")
    monkeypatch.setenv("QISKIT_REST_MAX_GENERAL_STATEMENTS", "not a number")
    for name in ("MAX_CIRCUIT_BYTES", "MAX_GENERAL_STATEMENTS"):
        monkeypatch.setattr(limits, name, getattr(limits, name))
    limits.limits_from_env()
    assert limits.MAX_CIRCUIT_BYTES == 5000 and limits.MAX_GENERAL_STATEMENTS == 2000
    with pytest.raises(WireFormatError, match="at most 5000 bytes .*--max-circuit-bytes"):
        import_qasm(flat(1000))
