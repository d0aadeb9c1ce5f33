"""One error hierarchy for the whole package.

Every error we raise derives from :class:`QiskitRestProviderError` (itself a Qiskit
``QiskitError``), and where users already catch a built-in or Qiskit error the matching
class is also a base: invalid input is a :class:`ValueError`, a timeout while waiting on a
job is Qiskit's :class:`~qiskit.providers.JobTimeoutError`, a failed job is Qiskit's
:class:`~qiskit.providers.JobError`.

Messages never contain tokens, API keys or access tokens.
"""

from __future__ import annotations

from typing import Any

from qiskit.exceptions import QiskitError
from qiskit.providers.exceptions import JobError
from qiskit.providers.exceptions import JobTimeoutError as _QiskitJobTimeoutError


class QiskitRestProviderError(QiskitError):
    """Base class of every error raised by qiskit-rest-provider."""

    def __str__(self) -> str:
        # QiskitError prints repr(message), which wraps every message in quotes.
        return str(self.message)


class InvalidInputError(QiskitRestProviderError, ValueError):
    """The caller's input is wrong and the problem is knowable locally (before any request)."""


class WireFormatError(InvalidInputError):
    """A JSON payload does not follow the wire format (bad circuit, bad array, bad PUB, ...).

    The message names the offending field, e.g. ``pubs[1].parameter_values``.
    """


class AccountError(QiskitRestProviderError, ValueError):
    """Credentials or account settings are missing or invalid (names what is missing)."""


class RequestError(QiskitRestProviderError):
    """An HTTP request failed: the service answered with an error or could not be reached.

    Attributes:
        status_code: HTTP status (``None`` when no response arrived, e.g. connection refused).
        code: the service's short error code (``errors[0].code``), if any.
        message: the service's message, or a description of the transport failure.
        trace: the service's request id, useful when reporting a problem.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: Any = None,
        trace: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.trace = trace

    def __str__(self) -> str:
        parts = [self.message]
        if self.status_code is not None:
            parts.append(f"(HTTP {self.status_code}")
            parts[-1] += f", code {self.code})" if self.code not in (None, "") else ")"
        return " ".join(parts)


class AuthenticationError(RequestError):
    """The service rejected the credentials (HTTP 401/403), even after one re-login."""


class NotFoundError(RequestError):
    """The resource does not exist or the caller may not see it (HTTP 404)."""


class ConflictError(RequestError):
    """The resource's state forbids the operation (HTTP 409), e.g. cancelling a finished job."""


class RateLimitError(RequestError):
    """The service kept answering 429 beyond the retry bound."""


class JobFailedError(QiskitRestProviderError, JobError):
    """A job ended in a failed (or cancelled) state; carries the server's reason.

    Attributes:
        job_id: the server's job id.
        reason: the server's reason text (``state.reason``), if any.
        reason_code: the server's numeric reason code (``state.reason_code``), if any.
    """

    def __init__(
        self,
        message: str,
        *,
        job_id: str | None = None,
        reason: str | None = None,
        reason_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.reason = reason
        self.reason_code = reason_code


class JobCancelledError(JobFailedError):
    """The job was cancelled before it produced a result."""


class JobTimeoutError(QiskitRestProviderError, _QiskitJobTimeoutError):
    """Waiting for a job took longer than the caller's ``timeout``; the job itself goes on."""


__all__ = [
    "AccountError",
    "AuthenticationError",
    "ConflictError",
    "InvalidInputError",
    "JobCancelledError",
    "JobFailedError",
    "JobTimeoutError",
    "NotFoundError",
    "QiskitRestProviderError",
    "RateLimitError",
    "RequestError",
    "WireFormatError",
]
