"""The package's public surface: names, typing marker, entry points, version, README commands."""

from __future__ import annotations

import importlib.metadata
import pathlib
import re
import subprocess
import sys

import qiskit_rest_provider

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_every_public_name_resolves():
    for name in qiskit_rest_provider.__all__:
        assert getattr(qiskit_rest_provider, name) is not None, name
    assert set(qiskit_rest_provider.__all__) == {"__version__", *qiskit_rest_provider._PUBLIC}


def test_implementation_aliases_are_the_primitives():
    assert qiskit_rest_provider.SamplerImplementation is qiskit_rest_provider.SamplerV2
    assert qiskit_rest_provider.EstimatorImplementation is qiskit_rest_provider.EstimatorV2


def test_unknown_attribute_raises_attribute_error():
    try:
        qiskit_rest_provider.NoSuchThing  # noqa: B018
    except AttributeError as exc:
        assert "NoSuchThing" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")


def test_py_typed_is_shipped_and_declared():
    assert (ROOT / "qiskit_rest_provider" / "py.typed").is_file()
    assert '"py.typed"' in (ROOT / "pyproject.toml").read_text()


def test_version_matches_pyproject():
    text = (ROOT / "pyproject.toml").read_text()
    assert f'version = "{qiskit_rest_provider.__version__}"' in text


def test_console_script_and_translation_plugin_are_registered():
    scripts = {e.name for e in importlib.metadata.entry_points(group="console_scripts")}
    assert "qiskit-rest-provider" in scripts
    plugins = importlib.metadata.entry_points(group="qiskit.transpiler.translation")
    assert any(e.name == "rest_provider" for e in plugins)


def test_importing_the_package_loads_neither_half():
    code = (
        "import sys, qiskit_rest_provider; "
        "print(any(m.startswith(('qiskit_rest_provider.server', 'qiskit_rest_provider.client'))"
        " for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    lines = [line for block in blocks for line in block.splitlines()]
    commands = [line for line in lines if line and not line.startswith("#")]
    assert "bash scripts/test" in commands
    assert "bash scripts/demo" in commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert "exec bash scripts/test" in ci
