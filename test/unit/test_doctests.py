"""The examples in the package's docstrings run, and say why when they cannot.

Doctests double as executable documentation, so every module whose source contains ``>>>`` is
found here (no list to keep up to date) and run with :func:`doctest.testmod`. ``pytest
--doctest-modules`` would import every module of the package, the server half and the heavy
simulators included; this test imports only the modules that have examples.

An example may be skipped (``# doctest: +SKIP``) only when it needs a live server; the docstring
holding it must say so (its text mentions a "live server" or a "running server"), so a reader
knows the example is real and why it is not run.
"""

from __future__ import annotations

import doctest
import importlib
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "qiskit_rest_provider"
SKIP_REASON = re.compile(r"\b(live|running) (reference )?server\b", re.IGNORECASE)
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = sorted(
    _module_name(path)
    for path in PACKAGE.rglob("*.py")
    if ">>>" in path.read_text(encoding="utf-8")
)


def test_modules_with_examples_are_found():
    assert len(MODULES) >= 6, MODULES
    assert "qiskit_rest_provider.client.transpile" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = [t for t in finder.find(module, name) if t.examples]
    assert tests, f"{name} has '>>>' in its source but no docstring example doctest can find"
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    unexplained = []
    for test in tests:
        if any(ex.options.get(doctest.SKIP) for ex in test.examples) and not SKIP_REASON.search(
            test.docstring or ""
        ):
            unexplained.append(test.name)
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples failed in {name}"
    assert not unexplained, (
        f"examples skipped without saying they need a live server: {unexplained}"
    )
