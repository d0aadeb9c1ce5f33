"""What a newcomer trips over first: each mistake gets a message that says what to do.

* an observable written for the virtual circuit, run against the transpiled one, names
  ``apply_layout``;
* the Quickstart's data dir (and ``serve``'s default one) stays out of ``git status``;
* the README says where the command lives in a clone (``./.venv``).

(``token`` without ``url`` is covered in ``test_account.py``.)
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from qiskit import QuantumCircuit
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import CouplingMap, generate_preset_pass_manager

from qiskit_rest_provider.exceptions import InvalidInputError
from qiskit_rest_provider.primitives.validation import coerce_estimator_pubs

ROOT = Path(__file__).resolve().parents[2]


def test_wrong_width_observable_hints_at_apply_layout():
    bell = QuantumCircuit(2)
    bell.h(0)
    bell.cx(0, 1)
    pm = generate_preset_pass_manager(
        optimization_level=1,
        basis_gates=["cx", "rz", "sx", "x"],
        coupling_map=CouplingMap.from_line(5),
        seed_transpiler=1,
    )
    isa = pm.run(bell)
    assert isa.num_qubits == 5
    with pytest.raises(InvalidInputError, match=r"pubs\[0\].*apply_layout\(isa_circuit.layout\)"):
        coerce_estimator_pubs([(isa, SparsePauliOp("ZZ"))], precision=None, target=None)
    # the fix the message names works
    fixed = SparsePauliOp("ZZ").apply_layout(isa.layout)
    assert coerce_estimator_pubs([(isa, fixed)], precision=None, target=None)[0].observables.size


@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout"
)
@pytest.mark.parametrize("path", ["qrp-data/store.sqlite3", "qiskit-rest-data/api_token"])
def test_server_data_dirs_are_ignored_by_git(path):
    proc = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT, capture_output=True, timeout=30
    )
    assert proc.returncode == 0, f"{path} would show up as untracked"


def test_readme_quickstart_says_where_the_command_lives():
    readme = (ROOT / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    assert "source .venv/bin/activate" in quickstart
    assert ".venv/bin/qiskit-rest-provider" in quickstart
