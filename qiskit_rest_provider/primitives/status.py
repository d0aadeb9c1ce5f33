"""Service job states -> :class:`qiskit.providers.JobStatus`, and which errors are transient.

The official client treated unknown state strings as non-final and polled forever; here every
string maps to a status, and anything that looks final is final.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from qiskit.providers import JobStatus

from ..exceptions import RequestError
from ..wire.protocol import REASON_MAX_TIME

__all__ = ["FINAL_STATES", "REASON_MAX_TIME", "is_transient", "map_job_status", "parse_time"]

FINAL_STATES = frozenset({JobStatus.DONE, JobStatus.ERROR, JobStatus.CANCELLED})
_EXACT = {
    "QUEUED": JobStatus.QUEUED,
    "PENDING": JobStatus.QUEUED,
    "RUNNING": JobStatus.RUNNING,
    "COMPLETED": JobStatus.DONE,
    "DONE": JobStatus.DONE,
    "FAILED": JobStatus.ERROR,
    "ERROR": JobStatus.ERROR,
    "CANCELLED": JobStatus.CANCELLED,
    "CANCELED": JobStatus.CANCELLED,
    "INITIALIZING": JobStatus.INITIALIZING,
    "VALIDATING": JobStatus.VALIDATING,
}


def map_job_status(status: str | None, reason_code: Any = None) -> JobStatus:
    """Map a service state string to :class:`JobStatus`, case-insensitively and defensively.

    ``Cancelled`` with reason code 1305 (ran past its maximum execution time) is an error.
    Unknown strings never leave a caller stuck on a state it cannot recognise as final:
    anything mentioning *cancel* is ``CANCELLED``, *fail*/*error* is ``ERROR``, *complete*
    is ``DONE``; anything else counts as still running.
    """
    text = (status or "").strip().upper()
    mapped = _EXACT.get(text)
    if mapped is None:
        if "CANCEL" in text:
            mapped = JobStatus.CANCELLED
        elif "FAIL" in text or "ERROR" in text:
            mapped = JobStatus.ERROR
        elif "COMPLETE" in text or "SUCCE" in text:
            mapped = JobStatus.DONE
        elif "QUEUE" in text:
            mapped = JobStatus.QUEUED
        else:
            mapped = JobStatus.RUNNING
    if mapped is JobStatus.CANCELLED:
        try:
            if reason_code is not None and int(reason_code) == REASON_MAX_TIME:
                return JobStatus.ERROR
        except (TypeError, ValueError):
            pass
    return mapped


def parse_time(value: Any) -> datetime | None:
    """An ISO-8601 timestamp of the service (``Z`` suffix allowed) as an aware datetime."""
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def is_transient(exc: RequestError) -> bool:
    """Whether a failed request may succeed if repeated (service restarting, network blip)."""
    return (
        exc.status_code is None
        or exc.status_code in (408, 429, 500, 502, 503, 504)
        or (520 <= (exc.status_code or 0) <= 524)
    )
