"""The HTTP half of the client: auth, retries, errors, one method per REST endpoint.

This package never imports qiskit (a test checks it) nor anything of ours except ``account``,
``exceptions``, ``version`` and ``wire.protocol``: it moves bytes and plain dicts. Qiskit objects
are built by ``service``, ``backend``, ``primitives`` and ``transpiler.remote`` on top of it.
"""

from __future__ import annotations

from .auth import jwt_times
from .base import BaseClient
from .runtime import API_VERSION, RuntimeClient, client_app_header
from .transpile import TranspileEndpoints
from .transport import NO_RETRY, RETRY_STATUSES, RetryPolicy, Transport

__all__ = [
    "API_VERSION",
    "BaseClient",
    "NO_RETRY",
    "RETRY_STATUSES",
    "RetryPolicy",
    "RuntimeClient",
    "TranspileEndpoints",
    "Transport",
    "client_app_header",
    "jwt_times",
]
