"""Workloads several test modules share (imported by name: ``from workloads import slow_qasm``)."""

from __future__ import annotations


def slow_qasm(n: int = 16, layers: int = 40) -> str:
    """A program that keeps a worker busy for seconds per 100k shots.

    Mid-circuit measurements force Aer to simulate shot by shot, so the run time scales with the
    shots: the tests that need a job to be Running (cancel, time limits, fairness) use it.
    """
    lines = ['OPENQASM 3.0; include "stdgates.inc";', f"qubit[{n}] q; bit[{n}] c;"]
    for layer in range(layers):
        lines += [f"h q[{i}];" for i in range(n)]
        lines += [f"cx q[{i}], q[{i + 1}];" for i in range(n - 1)]
        lines.append(f"c[{layer % n}] = measure q[{layer % n}];")
    return " ".join(lines)
