"""ARCHITECTURE.md's layout table, checked: every row's "may import", and no import cycles.

The package's source is parsed with ``ast``; every ``import`` / ``from ... import`` node counts,
wherever it sits: module level, under ``if TYPE_CHECKING:``, or inside a function (a lazy import is
still a dependency, it only moves the failure to later). Relative imports are resolved.

The table is encoded below as data (:data:`ROWS`), one :class:`Row` per line of the table; the
server rows follow the server's layout by resource (``server/http.py``, ``auth/``, ``backends/``,
``jobs/``, ``sessions/``, ``transpile/``, ``execution/``, ``ui/``) with the lead's reading of the
table for each sub-package. Every module of the package must fall under a row (a new module
without a row fails, naming it), and a row naming a path that does not exist fails too, so no
rule is skipped silently.

Two readings, stated once:

* ``exceptions`` and ``version`` import nothing of ours (their row), so any module may import them
  without pulling a half in or closing a cycle: they are :data:`LEAVES`.
* ``service.py`` "builds and wires client objects": from the ``account`` it resolves, and the
  remote transpile client included (``ProviderService.transpile`` delegates to
  ``transpiler.remote``).

Run-time checks complete the static ones: importing the client loads neither the server half nor
Qiskit beyond what ``exceptions`` (Qiskit's error bases) loads.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "qiskit_rest_provider"
ROOT_NAME = "qiskit_rest_provider"

#: Modules of ours that import nothing of ours; importing them is always allowed.
LEAVES = ("exceptions", "version")

#: Third-party packages of the ``server`` extra: the client half must work without them.
SERVER_EXTRAS = (
    "alembic",
    "dask",
    "distributed",
    "fastapi",
    "jinja2",
    "jwt",
    "multipart",
    "psycopg",
    "qiskit_aer",
    "sqlalchemy",
    "starlette",
    "uvicorn",
)
QISKIT = ("qiskit", "qiskit_aer", "qiskit_ibm_runtime", "qiskit_qasm3_import", "samplomatic")
HTTP = ("requests", "urllib3", "httpx", "aiohttp", "http.client", "urllib.request", "websocket")
SERVER_FORBIDDEN = ("client", "service", "backend", "primitives", "modes", "transpiler.remote")


@dataclass(frozen=True)
class Row:
    """One line of the layout table.

    Module patterns (``covers``, ``allowed``, ``forbidden``, ``lazy_only``) are dotted names
    relative to the package: ``"server.jobs"`` means that module and everything under it,
    ``"=server.backends"`` that module only (a package's ``__init__``).

    Attributes:
        name: the table's path column, for messages.
        covers: the modules the row is about.
        allowed: what those modules may import of ours (``"*"``: anything); their own package
            and :data:`LEAVES` are always allowed.
        forbidden: modules of ours they must not import even where ``allowed`` is ``"*"``.
        lazy_only: modules of ours they may import only inside a function.
        no_external: top-level third-party packages (or dotted stdlib modules) they must not
            import.
        optional: the row may name paths that do not exist yet.
    """

    name: str
    covers: tuple[str, ...]
    allowed: tuple[str, ...]
    forbidden: tuple[str, ...] = ()
    lazy_only: tuple[str, ...] = ()
    no_external: tuple[str, ...] = ()
    optional: bool = False
    why: str = field(default="", compare=False)


_SERVER = "server"
ROWS: tuple[Row, ...] = (
    Row(
        "__init__.py, __main__.py",
        ("=__init__", "=__main__"),
        ("*",),
        forbidden=("server",),
        why="the public API is lazy and never the server's",
    ),
    Row(
        "cli.py",  # with its client-command and formatting modules
        ("=cli", "=cli_client", "=cli_format", "=cli_quotas"),
        ("*",),
        lazy_only=("server",),
        why="serve/worker/admin load lazily",
    ),
    Row("exceptions.py, version.py", ("=exceptions", "=version"), ()),
    Row("account.py", ("=account",), ("=exceptions",), no_external=QISKIT + SERVER_EXTRAS),
    Row(
        "client/",
        ("client",),
        ("=account", "=exceptions", "=wire.protocol"),
        no_external=QISKIT + SERVER_EXTRAS,
    ),
    Row(
        "wire/",
        ("wire",),
        ("wire",),
        no_external=HTTP + SERVER_EXTRAS,
    ),
    Row(
        "wire/protocol.py",
        ("=wire.protocol",),
        ("wire",),
        no_external=QISKIT + HTTP + SERVER_EXTRAS,
        why="no qiskit: the client imports it (the run-time test below checks the transitive side)",
    ),
    Row(
        "backend.py",
        ("=backend",),
        ("client", "wire"),
        no_external=SERVER_EXTRAS,
    ),
    Row(
        "service.py",
        ("=service",),
        (
            "=account",
            "client",
            "backend",
            "primitives",
            "modes",
            "wire",
            "transpiler.remote",
        ),
        no_external=SERVER_EXTRAS,
        why=(
            "account: the service resolves the account it builds the client from; "
            "transpiler.remote: it wires the remote transpile client too"
        ),
    ),
    Row(
        "primitives/, modes.py",
        ("primitives", "=modes"),
        ("client", "wire", "backend", "primitives", "=modes"),
        no_external=SERVER_EXTRAS,
    ),
    Row(
        "transpiler/",
        ("transpiler",),
        ("wire", "client"),
        no_external=SERVER_EXTRAS,
    ),
    # ---------------------------------------------------------------- the server half
    Row(
        "server/app.py, server/state.py (the composition root)",
        ("=server", "=server.app", "=server.state"),
        (_SERVER, "wire"),
        forbidden=SERVER_FORBIDDEN,
    ),
    Row(
        "server/metrics.py",
        ("=server.metrics",),
        ("=server.jobs.models",),
        forbidden=SERVER_FORBIDDEN,
        why="jobs.models: counts by state, queue and lease come from the jobs table",
    ),
    Row(
        "server/config.py",
        ("=server.config",),
        ("wire", "=server.execution.cost"),
        forbidden=SERVER_FORBIDDEN,
        why="execution.cost: the per-job memory limit's default and size parsing",
    ),
    Row(
        "server/http.py",  # with edge.py, its connection-level guard (uvicorn's h11 protocol)
        ("=server.http", "=server.edge"),
        ("=server.config", "wire"),
        forbidden=SERVER_FORBIDDEN,
    ),
    Row(
        "server/auth/",
        ("server.auth",),
        (
            "wire",
            "=server.http",
            "=server.config",
            "=server.jobs.store",
            "=server.jobs.models",
            "=server.state",
        ),
        forbidden=SERVER_FORBIDDEN,
    ),
    Row(
        "server/backends/ (catalog, noise, devices)",
        ("server.backends",),
        ("wire",),
        forbidden=SERVER_FORBIDDEN,
    ),
    Row(
        "server/backends/routes.py",
        ("=server.backends.routes",),
        (
            "wire",
            "=server.http",
            "server.auth",
            "=server.jobs.store",
            "=server.state",
            "server.backends",
        ),
        forbidden=SERVER_FORBIDDEN,
    ),
    Row(
        "server/jobs/",
        ("server.jobs",),
        (
            "wire",
            "=server.http",
            "server.auth",
            "=server.config",
            "=server.state",
            "server.backends",
            "=server.execution.base",
            "=server.execution.cost",
            "=server.execution.split",
            "=server.execution.method",
            "=server.execution.sampled_cost",
            "=server.execution.learning",
            "=server.execution.given_layer_noise",
            "=server.execution.compaction",
        ),
        forbidden=SERVER_FORBIDDEN,
        why="execution: only its interface, its (Aer-free) cost model and method choice (and "
        "the sampled paths' sizing), the (Aer-free) splitting of a job into parts and merging "
        "of their results, the "
        "(Aer-free) building of a noise-learning program, and the (Aer-free) matching of a "
        "given layer noise model to the PUBs' layers",
    ),
    Row(
        "server/sessions/",
        ("server.sessions",),
        ("server.jobs", "=server.http", "server.auth", "=server.state", "wire"),
        forbidden=SERVER_FORBIDDEN,
    ),
    Row(
        "server/transpile/",
        ("server.transpile",),
        (
            "server.jobs",
            "=server.http",
            "server.auth",
            "=server.state",
            "wire",
            "=server.execution.base",
            "=transpiler",
            "=transpiler.plugin",
            "=transpiler.passes",
            "=transpiler.angles",
        ),
        forbidden=SERVER_FORBIDDEN,
        why="transpiler: the plugin and pass-manager building, never the remote client",
    ),
    Row(
        "server/execution/",
        ("server.execution",),
        ("wire", "server.backends"),
        forbidden=SERVER_FORBIDDEN,
    ),
    Row(
        "server/ui/",
        ("server.ui",),
        ("server.jobs", "server.backends", "server.auth"),
        forbidden=SERVER_FORBIDDEN,
    ),
)


# ------------------------------------------------------------------------------ the parser


@dataclass(frozen=True)
class Import:
    """One import statement's target, as seen from the importing module."""

    target: str  # ours: dotted, relative to the package ("wire.pubs"); else absolute ("numpy")
    ours: bool
    line: int
    lazy: bool  # inside a function body


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """``client/runtime.py`` -> ``"client.runtime"``; ``client/__init__.py`` -> ``"client"``."""
    parts = list(path.relative_to(package).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) if parts else "__init__"


def all_modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package by its relative dotted name."""
    return {module_name(p, package): p for p in sorted(package.rglob("*.py"))}


def _matches(module: str, pattern: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("="):
        return module == pattern[1:]
    return module == pattern or module.startswith(pattern + ".")


class _Visitor(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, known: Iterable[str]) -> None:
        self.known = set(known)
        parts = [] if module == "__init__" else module.split(".")
        self.package = parts if is_package else parts[:-1]
        self.depth = 0
        self.found: list[Import] = []

    def _add(self, absolute: str, line: int) -> None:
        if absolute == ROOT_NAME or absolute.startswith(ROOT_NAME + "."):
            rel = absolute[len(ROOT_NAME) + 1 :] or "__init__"
            self.found.append(Import(rel, True, line, self.depth > 0))
        else:
            self.found.append(Import(absolute, False, line, self.depth > 0))

    def visit_FunctionDef(self, node: ast.AST) -> None:  # noqa: N802 - ast's spelling
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef  # noqa: N815
    visit_Lambda = visit_FunctionDef  # noqa: N815

    def visit_Import(self, node: ast.Import) -> None:  # noqa: N802
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:  # noqa: N802
        if node.level:
            base = self.package[: len(self.package) - node.level + 1]
            if node.level - 1 > len(self.package):
                raise AssertionError(f"relative import beyond the package at line {node.lineno}")
            rel = ".".join(base + ([node.module] if node.module else []))
            absolute = f"{ROOT_NAME}.{rel}" if rel else ROOT_NAME
        else:
            absolute = node.module or ""
        ours = absolute == ROOT_NAME or absolute.startswith(ROOT_NAME + ".")
        added = False
        if ours:
            # ``from .wire import pubs``: the submodule, when it is one, is the real target.
            prefix = absolute[len(ROOT_NAME) + 1 :]
            for alias in node.names:
                candidate = f"{prefix}.{alias.name}" if prefix else alias.name
                if candidate in self.known:
                    self._add(f"{ROOT_NAME}.{candidate}", node.lineno)
                    added = True
        if not added:
            self._add(absolute, node.lineno)


def imports_of(path: Path, package: Path = PACKAGE, known: Iterable[str] | None = None) -> list:
    """Every import in ``path`` (module level, TYPE_CHECKING and function level alike)."""
    if known is None:
        known = all_modules(package)
    module = module_name(path, package)
    visitor = _Visitor(module, path.name == "__init__.py", known)
    visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return visitor.found


def row_of(module: str, rows: Iterable[Row] = ROWS) -> Row | None:
    """The most specific row covering ``module`` (longest matching pattern)."""
    best: tuple[int, Row] | None = None
    for row in rows:
        for pattern in row.covers:
            if _matches(module, pattern):
                score = len(pattern.lstrip("=")) + (1 if pattern.startswith("=") else 0)
                if best is None or score > best[0]:
                    best = (score, row)
    return best[1] if best else None


def _own_package(module: str, row: Row) -> tuple[str, ...]:
    return tuple(p for p in row.covers if not p.startswith("="))


def violations(package: Path = PACKAGE, rows: Iterable[Row] = ROWS) -> list[str]:
    """Every import that breaks its module's row, as ``"path:line: message"``."""
    rows = tuple(rows)
    modules = all_modules(package)
    problems = []
    for module, path in modules.items():
        row = row_of(module, rows)
        where = path.relative_to(package)
        if row is None:
            problems.append(f"{where}: no row of ARCHITECTURE.md's table covers {module}")
            continue
        own = _own_package(module, row)
        for imp in imports_of(path, package, modules):
            if imp.ours:
                target = imp.target
                if target == module or any(_matches(target, leaf) for leaf in LEAVES):
                    continue
                if any(_matches(target, p) for p in row.forbidden):
                    problems.append(f"{where}:{imp.line}: {row.name} must not import {target}")
                    continue
                if any(_matches(target, p) for p in row.lazy_only):
                    if not imp.lazy:
                        problems.append(
                            f"{where}:{imp.line}: {row.name} may import {target} only lazily"
                        )
                    continue
                if any(_matches(target, p) for p in own + row.allowed):
                    continue
                problems.append(
                    f"{where}:{imp.line}: {row.name} may not import {target} "
                    f"(allowed: {', '.join(row.allowed) or 'nothing of ours'})"
                )
            else:
                for name in row.no_external:
                    if imp.target == name or imp.target.startswith(name + "."):
                        problems.append(f"{where}:{imp.line}: {row.name} must not import {name}")
    return problems


def missing_paths(package: Path = PACKAGE, rows: Iterable[Row] = ROWS) -> list[str]:
    """Rows' patterns that name no existing module (optional rows excepted)."""
    modules = all_modules(package)
    out = []
    for row in rows:
        if row.optional:
            continue
        for pattern in row.covers:
            if not any(_matches(m, pattern) for m in modules):
                out.append(f"{row.name}: {pattern.lstrip('=')} does not exist")
    return out


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Package-internal edges ``module -> modules it imports`` (every kind of import).

    An import of a module that does not exist (yet) points at its nearest existing parent.
    """
    modules = all_modules(package)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for imp in imports_of(path, package, modules):
            if not imp.ours:
                continue
            target = imp.target
            while target not in modules and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in modules and target != module:
                graph[module].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]], within: set[str] | None = None) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or ``None`` for a DAG (iterative DFS)."""
    nodes = sorted(graph if within is None else within)
    color: dict[str, int] = {}
    for start in nodes:
        if color.get(start):
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        path = [start]
        color[start] = 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                stack.pop()
                path.pop()
                color[node] = 2
                continue
            nxt = todo.pop(0)
            if within is not None and nxt not in within:
                continue
            state = color.get(nxt, 0)
            if state == 1:
                return path[path.index(nxt) :] + [nxt]
            if state == 0:
                color[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(graph[nxt])))
    return None


def _is_server(module: str) -> bool:
    return _matches(module, "server")


# ------------------------------------------------------------------------------ the tests


@pytest.mark.parametrize("half", ["client", "server"])
def test_every_row_names_existing_modules(half):
    missing = [p for p in missing_paths() if p.startswith("server") == (half == "server")]
    assert not missing, missing


@pytest.mark.parametrize("half", ["client", "server"])
def test_every_module_is_covered_by_a_row(half):
    uncovered = [
        m for m in all_modules() if row_of(m) is None and _is_server(m) == (half == "server")
    ]
    assert not uncovered, f"modules with no row in ARCHITECTURE.md's table: {uncovered}"


def test_client_half_follows_its_rows():
    """Everything outside ``server/``: client, wire, backend, service, primitives, transpiler."""
    problems = [p for p in violations() if not p.startswith("server")]
    assert not problems, "\n".join(problems)


def test_server_half_follows_its_rows():
    problems = [p for p in violations() if p.startswith("server")]
    assert not problems, "\n".join(problems)


def test_server_never_imports_the_client_half():
    problems = []
    for module, path in all_modules().items():
        if not _is_server(module):
            continue
        for imp in imports_of(path):
            if imp.ours and any(_matches(imp.target, p) for p in SERVER_FORBIDDEN):
                problems.append(f"{path.relative_to(PACKAGE)}:{imp.line} imports {imp.target}")
    assert not problems, problems


def test_client_half_never_imports_the_server_half():
    problems = []
    for module, path in all_modules().items():
        row = row_of(module)
        if _is_server(module) or row is None or row.name.startswith(("cli", "__init__")):
            continue
        for imp in imports_of(path):
            if imp.ours and _matches(imp.target, "server"):
                problems.append(f"{path.relative_to(PACKAGE)}:{imp.line} imports {imp.target}")
    assert not problems, problems


def test_the_client_half_has_no_import_cycles():
    graph = import_graph()
    cycle = find_cycle(graph, {m for m in graph if not _is_server(m)})
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_package_has_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


# ------------------------------------------------------------------------------ the checker itself


def _write(root: Path, files: dict[str, str]) -> Path:
    package = root / ROOT_NAME
    for name, text in files.items():
        path = package / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return package


def test_checker_sees_type_checking_lazy_and_relative_imports(tmp_path):
    package = _write(
        tmp_path,
        {
            "__init__.py": "",
            "client/__init__.py": "from .runtime import X\n",
            "client/runtime.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n    from ..service import S\n"
                "def f():\n    import qiskit\n    from .. import backend\n"
            ),
            "service.py": "from .client import runtime\n",
            "backend.py": "",
        },
    )
    modules = all_modules(package)
    found = {(i.target, i.lazy) for i in imports_of(package / "client/runtime.py", package)}
    assert found == {("typing", False), ("service", False), ("qiskit", True), ("backend", True)}
    assert [i.target for i in imports_of(package / "service.py", package, modules)] == [
        "client.runtime"
    ]
    problems = violations(package, ROWS)
    assert any("client/runtime.py:3: client/ may not import service" in p for p in problems)
    assert any("client/runtime.py:5: client/ must not import qiskit" in p for p in problems)
    assert any("client/runtime.py:6: client/ may not import backend" in p for p in problems)
    cycle = find_cycle(import_graph(package))
    assert (
        cycle is not None and cycle[0] == cycle[-1] and {"service", "client.runtime"} <= set(cycle)
    )


def test_checker_reports_a_dag_and_lazy_only_rules(tmp_path):
    package = _write(
        tmp_path,
        {
            "__init__.py": "",
            "cli.py": "from .server import app\ndef serve():\n    from .server import app\n",
            "server/__init__.py": "",
            "server/app.py": "",
        },
    )
    assert find_cycle(import_graph(package)) is None
    problems = violations(package, ROWS)
    assert problems == ["cli.py:1: cli.py may import server.app only lazily"]


# ------------------------------------------------------------------------------ at run time


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return out.stdout.strip()


@pytest.mark.parametrize("module", ["qiskit_rest_provider.client", "qiskit_rest_provider.service"])
def test_importing_client_half_does_not_load_the_server(module):
    code = (
        "import sys, importlib\n"
        f"importlib.import_module({module!r})\n"
        "bad = sorted(m for m in sys.modules if m.startswith('qiskit_rest_provider.server')"
        " or m.split('.')[0] in ('fastapi', 'uvicorn', 'sqlalchemy', 'qiskit_aer'))\n"
        "print(','.join(bad))\n"
    )
    assert _run(code) == "", f"{module} loaded: {_run(code)}"


def test_client_transport_modules_do_not_load_qiskit_themselves():
    """Only ``exceptions`` (Qiskit error bases) may pull qiskit in when importing the client.

    ``exceptions.py`` subclasses Qiskit's errors (users catch ``JobTimeoutError`` et al.), so
    ``import qiskit_rest_provider.client`` cannot avoid Qiskit's top-level package; what is
    checked is that the client's own modules, and ``wire.protocol`` under them, add nothing of
    Qiskit (no ``qiskit.circuit`` load, no primitives, no transpiler).
    """
    code = (
        "import sys\n"
        "import qiskit_rest_provider.exceptions\n"
        "before = set(sys.modules)\n"
        "import qiskit_rest_provider.client\n"
        "new = sorted(m for m in set(sys.modules) - before"
        " if m.split('.')[0] in ('qiskit', 'numpy', 'qiskit_aer', 'qiskit_ibm_runtime'))\n"
        "ours = sorted(m for m in set(sys.modules) - before if m.startswith('qiskit_rest_provider')"
        " and not m.startswith(('qiskit_rest_provider.client', 'qiskit_rest_provider.account',"
        " 'qiskit_rest_provider.version', 'qiskit_rest_provider.wire.protocol')) and"
        " m != 'qiskit_rest_provider.wire')\n"
        "print(','.join(new + ours))\n"
    )
    assert _run(code) == ""
