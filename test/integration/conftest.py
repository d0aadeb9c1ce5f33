"""Fixtures shared by the integration tests: a client of the session's reference server."""

from __future__ import annotations

import pytest

from qiskit_rest_provider import ProviderService


@pytest.fixture(scope="module")
def service(reference_server) -> ProviderService:
    """A platform-channel service for the session's reference server (one per test module)."""
    return ProviderService(
        channel="ibm_quantum_platform",
        url=reference_server.url,
        token=reference_server.token,
        instance=reference_server.instance_crn,
    )


@pytest.fixture(scope="module")
def ideal(service):
    """The server's ideal simulator backend."""
    return service.backend("rest_simulator")


@pytest.fixture(scope="module")
def noisy(service):
    """The server's noisy 5-qubit line device."""
    return service.backend("rest_line_5q")
