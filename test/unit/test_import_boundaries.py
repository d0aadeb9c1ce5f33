"""The client half's import rules (ARCHITECTURE.md): checked statically and at run time.

* ``client/`` never imports qiskit, and of our modules only ``account``, ``exceptions`` and
  ``version`` (``exceptions`` itself subclasses Qiskit's error bases: accepted).
* Importing the client never loads the server half.
* ``server/`` never imports ``client``, ``service``, ``backend``, ``primitives`` or ``modes``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "qiskit_rest_provider"
CLIENT_ALLOWED_OURS = {"account", "exceptions", "version", "client"}


def _imports(path: Path) -> list[tuple[str, int]]:
    """Absolute module names imported by ``path`` (relative imports resolved), with line numbers."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
                if not node.module:
                    out.extend((f"{module}.{alias.name}", node.lineno) for alias in node.names)
                    continue
            else:
                module = node.module or ""
            out.append((module, node.lineno))
    return out


def _files(sub: str) -> list[Path]:
    return sorted((PACKAGE / sub).rglob("*.py"))


def test_client_package_imports_no_qiskit_and_only_allowed_modules():
    files = _files("client")
    assert files, "client/ has no modules"
    problems = []
    for path in files:
        for module, line in _imports(path):
            top = module.split(".")[0]
            if top == "qiskit" or top.startswith("qiskit_") and top != "qiskit_rest_provider":
                problems.append(f"{path.name}:{line} imports {module}")
            if top == "qiskit_rest_provider":
                ours = module.split(".")[1] if "." in module else ""
                if ours not in CLIENT_ALLOWED_OURS:
                    problems.append(f"{path.name}:{line} imports {module}")
    assert not problems, problems


def test_server_never_imports_the_client_half():
    forbidden = {"client", "service", "backend", "primitives", "modes"}
    problems = []
    for path in _files("server"):
        for module, line in _imports(path):
            parts = module.split(".")
            if parts[0] == "qiskit_rest_provider" and len(parts) > 1 and parts[1] in forbidden:
                problems.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
    assert not problems, problems


@pytest.mark.parametrize("module", ["qiskit_rest_provider.client", "qiskit_rest_provider.service"])
def test_importing_client_half_does_not_load_the_server(module):
    code = (
        "import sys, importlib\n"
        f"importlib.import_module({module!r})\n"
        "bad = sorted(m for m in sys.modules if m.startswith('qiskit_rest_provider.server')"
        " or m.split('.')[0] in ('fastapi', 'uvicorn', 'sqlalchemy', 'qiskit_aer'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "", f"{module} loaded: {out.stdout.strip()}"


def test_client_transport_modules_do_not_load_qiskit_themselves():
    """Only ``exceptions`` (Qiskit error bases) may pull qiskit in when importing the client."""
    code = (
        "import sys, types\n"
        "import qiskit_rest_provider.exceptions\n"
        "before = set(sys.modules)\n"
        "import qiskit_rest_provider.client\n"
        "new = sorted(m for m in set(sys.modules) - before if m.split('.')[0] == 'qiskit')\n"
        "print(','.join(new))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "", out.stdout
