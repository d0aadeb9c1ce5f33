"""A fresh clone stays clean: the demo and the Quickstart leave no untracked files behind.

The demo's own ``pip install -e .`` adds only ``*.egg-info/`` and ``.venv/`` (both ignored);
this test runs what it then runs (``examples/quickstart.py``) and creates the Quickstart's data
dir in a fresh clone of the committed tree, then asks ``git status``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(), reason="not a git checkout"
)
def test_demo_and_quickstart_leave_a_fresh_clone_clean(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if not k.startswith("QISKIT_REST_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # byte code is written, as for a user
    env.update(PYTHONPATH=str(clone), HOME=str(tmp_path / "home"))
    demo = subprocess.run(
        [sys.executable, "examples/quickstart.py", "--shots", "100"],
        cwd=clone, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "Sampler job" in demo.stdout
    # the Quickstart's --data-dir ./qrp-data, and serve's default ./qiskit-rest-data
    for data_dir in ("./qrp-data", "./qiskit-rest-data"):
        subprocess.run(
            [sys.executable, "-m", "qiskit_rest_provider", "tokens", "add", "--data-dir", data_dir],
            cwd=clone, env=env, check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True, timeout=60
    )
    assert status.stdout == "", f"untracked or changed after the demo:\n{status.stdout}"
