"""qiskit-rest-provider: Qiskit on any service that speaks the Qiskit Runtime REST API.

Example (the lines after the first two need a live server and are skipped when the docs run):
    >>> from qiskit_rest_provider import ProviderService, SamplerV2
    >>> service = ProviderService(url="http://127.0.0.1:8000", token="...")
    >>> backend = service.backend("rest_line_5q")  # doctest: +SKIP
    >>> job = SamplerV2(mode=backend).run([isa_circuit])  # doctest: +SKIP
    >>> job.result()[0].data.meas.get_counts()  # doctest: +SKIP

Public names are imported on first use, so ``import qiskit_rest_provider.client`` stays light and
the client half never loads the server half.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .version import __version__

_PUBLIC = {
    "ProviderService": "service",
    "RestBackend": "backend",
    "SamplerV2": "primitives",
    "EstimatorV2": "primitives",
    "SamplerImplementation": "primitives",
    "EstimatorImplementation": "primitives",
    "SamplerOptions": "primitives",
    "EstimatorOptions": "primitives",
    "RestPrimitiveJob": "primitives",
    "Session": "modes",
    "Batch": "modes",
    "Account": "account",
    "QiskitRestProviderError": "exceptions",
    "InvalidInputError": "exceptions",
    "WireFormatError": "exceptions",
    "AccountError": "exceptions",
    "RequestError": "exceptions",
    "AuthenticationError": "exceptions",
    "NotFoundError": "exceptions",
    "ConflictError": "exceptions",
    "RateLimitError": "exceptions",
    "JobFailedError": "exceptions",
    "JobCancelledError": "exceptions",
    "JobTimeoutError": "exceptions",
}

__all__ = [
    "__version__",
    "Account",
    "AccountError",
    "AuthenticationError",
    "Batch",
    "ConflictError",
    "EstimatorImplementation",
    "EstimatorOptions",
    "EstimatorV2",
    "InvalidInputError",
    "JobCancelledError",
    "JobFailedError",
    "JobTimeoutError",
    "NotFoundError",
    "ProviderService",
    "QiskitRestProviderError",
    "RateLimitError",
    "RequestError",
    "RestBackend",
    "RestPrimitiveJob",
    "SamplerImplementation",
    "SamplerOptions",
    "SamplerV2",
    "Session",
    "WireFormatError",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .account import Account
    from .backend import RestBackend
    from .exceptions import (
        AccountError,
        AuthenticationError,
        ConflictError,
        InvalidInputError,
        JobCancelledError,
        JobFailedError,
        JobTimeoutError,
        NotFoundError,
        QiskitRestProviderError,
        RateLimitError,
        RequestError,
        WireFormatError,
    )
    from .modes import Batch, Session
    from .primitives import (
        EstimatorImplementation,
        EstimatorOptions,
        EstimatorV2,
        RestPrimitiveJob,
        SamplerImplementation,
        SamplerOptions,
        SamplerV2,
    )
    from .service import ProviderService


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'qiskit_rest_provider' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
