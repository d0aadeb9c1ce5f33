"""The workflow examples run standalone, as a user runs them: each starts its own server on a free
port of 127.0.0.1, does its work over REST and stops the server, exits 0, prints numbers that are
right, and leaves nothing behind in the checkout."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parents[2]


def _git_status() -> str | None:
    if not (ROOT / ".git").exists():
        return None
    proc = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return proc.stdout if proc.returncode == 0 else None


def _run(tmp_path: Path, name: str, *args: str) -> str:
    before = _git_status()
    env = {k: v for k, v in os.environ.items() if not k.startswith("QISKIT_REST_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["HOME"] = str(tmp_path / "home")  # no saved account is read or written
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / f"{name}.py"), *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _git_status() == before, "the example changed or left files in the checkout"
    return proc.stdout


def test_vqe_in_a_session_finds_the_ground_energy(tmp_path):
    out = _run(tmp_path, "vqe_session")
    jobs = int(re.search(r"session \w+: (\d+) Estimator jobs", out).group(1))
    assert 10 <= jobs <= 31  # one job per optimizer step, all in the session
    error = float(re.search(r"error ([+-][\d.]+)", out).group(1))
    assert abs(error) < 0.03, out  # chemical accuracy is 0.0016 Ha; shot noise allows a bit more


def test_parameter_sweep_follows_the_exact_curves(tmp_path):
    plot = tmp_path / "sweep.png"
    out = _run(tmp_path, "parameter_sweep", "--plot", str(plot))
    assert "21 angles x 2 observables" in out
    deviations = [float(x) for x in re.findall(r"deviation from the exact curve ([\d.]+)", out)]
    assert len(deviations) == 2 and max(deviations) < 5, out  # 5 standard errors
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed: no plot" in out and not plot.exists()
    else:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_batch_runs_every_job_and_noise_grows_with_the_state(tmp_path):
    out = _run(tmp_path, "batch")
    assert re.search(r"batch \w+: 4 jobs", out), out
    good = [float(x) for x in re.findall(r"P\(0\.\.0\) \+ P\(1\.\.1\) = ([\d.]+)", out)]
    assert len(good) == 4 and all(0.5 < g <= 1.0 for g in good), out
    assert good[0] > good[-1], out  # GHZ-5 suffers more noise than GHZ-2
