"""Transpilation for Qiskit-Runtime-REST backends: a Qiskit stage plugin and the remote service.

* :class:`~.plugin.RestTranslationPlugin` (entry point ``rest_provider`` in the
  ``qiskit.transpiler.translation`` group) is what ``generate_preset_pass_manager(backend=...)``
  uses for a :class:`~qiskit_rest_provider.RestBackend`.
* :func:`~.remote.transpile_remote` and :class:`~.remote.RemotePassManager` send circuits to a
  service's ``POST /transpile`` endpoint and return ISA circuits with their layout.

Attributes are imported lazily: Qiskit imports this package whenever it loads its stage plugins,
so importing it must stay cheap.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "RemotePassManager",
    "RemoteTranspileError",
    "RestTranslationPlugin",
    "transpile_remote",
    "unsupported_instructions",
]

_LOCATIONS = {
    "RestTranslationPlugin": ".plugin",
    "transpile_remote": ".remote",
    "RemotePassManager": ".remote",
    "RemoteTranspileError": ".remote",
    "unsupported_instructions": ".passes",
}


def __getattr__(name: str) -> Any:
    module = _LOCATIONS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module, __name__), name)
