"""pytest plugin for running qiskit-ibm-runtime's own integration tests against our server.

Loaded with ``-p qrp_runtime_plugin`` into a pytest run of the scenarios extracted from
qiskit-ibm-runtime's source distribution (see ``test/integration/test_official_scenarios.py``).
The scenarios build ``QiskitRuntimeService(channel, token, url, instance)`` from the
``QISKIT_IBM_*`` variables; IBM's URL resolver would turn ``url`` into an IBM host, so this plugin
gives the service the same ``url_resolver`` the interop tests pass (the official client's
documented hook). Nothing of the scenarios themselves is changed.
"""

from __future__ import annotations

import functools


def pytest_configure(config):  # noqa: ARG001 - pytest's hook signature
    import qiskit_ibm_runtime

    service = qiskit_ibm_runtime.QiskitRuntimeService
    original = service.__init__
    if getattr(original, "_qrp_patched", False):
        return

    @functools.wraps(original)
    def init(self, *args, **kwargs):
        kwargs.setdefault("url_resolver", lambda url, instance, private, channel: f"{url}/api/v1")
        original(self, *args, **kwargs)

    init._qrp_patched = True  # type: ignore[attr-defined]
    service.__init__ = init
