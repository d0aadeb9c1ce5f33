"""Execution modes: :class:`Session` (dedicated) and :class:`Batch`.

A primitive created with ``mode=session`` sends the session id with each job, so the service
schedules the jobs together. Both are context managers; leaving the ``with`` block *closes*
the session (no new jobs, queued ones still finish) rather than cancelling it::

    with Batch(backend, max_time="1h") as batch:
        sampler = SamplerV2(mode=batch)
        jobs = [sampler.run([pub]) for pub in pubs]
    results = [job.result() for job in jobs]     # still run after the block closed the batch

``cancel()`` is the hard stop: it cancels the session's queued jobs.
"""

from __future__ import annotations

import contextvars
import logging
import re
from typing import TYPE_CHECKING, Any, Protocol

from .exceptions import InvalidInputError

if TYPE_CHECKING:  # pragma: no cover
    from types import TracebackType

    from .backend import RestBackend
    from .client import RuntimeClient

logger = logging.getLogger(__name__)

__all__ = ["Batch", "Session", "active_session"]

# The innermost Session/Batch entered with ``with``: primitives created there with no mode use it.
_ACTIVE: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
    "qiskit_rest_provider_active_session", default=None
)


def active_session() -> Session | None:
    """The Session or Batch of the innermost enclosing ``with`` block, if any."""
    return _ACTIVE.get()


def _seconds(max_time: int | float | str | None) -> int | None:
    """``max_time`` as whole seconds; accepts numbers and strings like ``"1h 30m"``."""
    if max_time is None:
        return None
    if isinstance(max_time, bool):
        raise InvalidInputError(
            f"max_time must be seconds or a string like '1h30m', got {max_time!r}"
        )
    if isinstance(max_time, (int, float)):
        seconds = int(max_time)
    elif isinstance(max_time, str):
        text = max_time.replace(" ", "").lower()
        parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?", text)
        if not text or parts is None:
            raise InvalidInputError(f"max_time must look like '1h30m' or '600', got {max_time!r}")
        h, m, s = (int(x) if x else 0 for x in parts.groups())
        seconds = h * 3600 + m * 60 + s
    else:
        raise InvalidInputError(
            f"max_time must be seconds or a string like '1h30m', got {max_time!r}"
        )
    if seconds <= 0:
        raise InvalidInputError(f"max_time must be positive, got {max_time!r}")
    return seconds


class BackendSource(Protocol):
    """What :meth:`Session.from_id` needs from a service: its client and its backend objects.

    A :class:`~qiskit_rest_provider.ProviderService` is one. Naming the shape instead of the class
    keeps this module from importing the service, which builds the objects of this one.
    """

    @property
    def client(self) -> RuntimeClient:
        """The client that reads the session."""
        ...

    def backend(self, name: str) -> RestBackend:
        """The backend object called ``name``."""
        ...


class Session:
    """A dedicated session on one backend: its jobs run together, in submission order.

    Args:
        backend: the :class:`~qiskit_rest_provider.RestBackend` to run on.
        max_time: the session's maximum lifetime, as seconds or a string like ``"2h"``;
            ``None`` leaves it to the service (8 h on IBM's).

    Example::

        with Session(backend) as session:
            estimator = EstimatorV2(mode=session)
            for step in range(10):
                values = optimizer_step(estimator.run([pub]).result())
    """

    _mode = "dedicated"

    def __init__(
        self,
        backend: RestBackend,
        max_time: int | float | str | None = None,
        *,
        _session_id: str | None = None,
        _details: dict | None = None,
    ) -> None:
        if not hasattr(backend, "client"):
            raise InvalidInputError(
                f"{type(self).__name__} needs a RestBackend from ProviderService.backend(...), "
                f"got {type(backend).__name__}"
            )
        self._backend = backend
        self._client: RuntimeClient = backend.client
        self._max_time = _seconds(max_time)
        self._details: dict | None = _details
        if _session_id is None:
            response = self._client.create_session(
                backend=backend.name, mode=self._mode, max_ttl=self._max_time
            )
            _session_id = response["id"]
            self._details = response if isinstance(response, dict) else None
            logger.info("opened %s %s on %s", self._mode, _session_id, backend.name)
        self._session_id: str = _session_id
        self._active = True
        self._tokens: list[contextvars.Token] = []

    # ------------------------------------------------------------------ identity
    @property
    def session_id(self) -> str:
        """The service's id of this session (sent with every job of a primitive in this mode)."""
        return self._session_id

    id = session_id

    @property
    def service(self) -> Any:
        """The service the session lives on (its backend's ``service``), as in the IBM client."""
        return getattr(self._backend, "service", None)

    @property
    def client(self) -> RuntimeClient:
        """The HTTP client the session's requests (and its primitives' jobs) go through."""
        return self._client

    def backend(self) -> str:
        """The name of the session's backend (as in qiskit-ibm-runtime)."""
        return self._backend.name

    @property
    def max_time(self) -> int | None:
        """The maximum lifetime requested at creation, in seconds."""
        return self._max_time

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Stop accepting new jobs; jobs already queued or running still finish."""
        if self._active:
            self._client.close_session(self._session_id)
            self._active = False

    def cancel(self) -> None:
        """Close the session and cancel its queued jobs."""
        self._client.cancel_session(self._session_id)
        self._active = False

    def details(self) -> dict[str, Any]:
        """The session document: id, backend_name, mode, state, accepting_jobs, TTLs, times."""
        data = self._client.session(self._session_id)
        self._details = data
        return {
            "id": data.get("id", self._session_id),
            "backend_name": data.get("backend_name") or data.get("backend"),
            "mode": data.get("mode"),
            "state": data.get("state"),
            "state_reason": data.get("state_reason"),
            "accepting_jobs": data.get("accepting_jobs"),
            "interactive_timeout": data.get("interactive_ttl"),
            "max_time": data.get("max_ttl"),
            "active_timeout": data.get("active_ttl"),
            "started_at": data.get("started_at"),
            "activated_at": data.get("activated_at"),
            "closed_at": data.get("closed_at"),
            "last_job_started": data.get("last_job_started"),
            "last_job_completed": data.get("last_job_completed"),
            "usage_time": data.get("elapsed_time"),
        }

    def status(self) -> str:
        """A person-readable state: Pending, In progress (accepting or not), or Closed."""
        data = self._client.session(self._session_id)
        state = str(data.get("state") or "").lower()
        accepting = data.get("accepting_jobs")
        if state in ("open", "inactive"):
            return "Pending"
        if (state == "active" and accepting) or state == "pending_inactive":
            return "In progress, accepting new jobs"
        if (state == "active" and not accepting) or state == "pending_closed":
            return "In progress, not accepting new jobs"
        return state.capitalize() if state else "Unknown"

    def usage(self) -> float | None:
        """Seconds of usage the session accumulated, once the service reports it."""
        value = self._client.session(self._session_id).get("elapsed_time")
        return None if value is None else float(value)

    @classmethod
    def from_id(cls, session_id: str, service: BackendSource) -> Session:
        """Re-attach to an existing session or batch by id (e.g. from another process).

        Args:
            session_id: the session's id.
            service: the :class:`~qiskit_rest_provider.ProviderService` it lives on (its client
                reads the session; its ``backend(name)`` gives the backend object).

        Raises:
            InvalidInputError: the session has the other mode (a batch given to
                ``Session.from_id`` or the reverse) or names no backend.
        """
        data = service.client.session(session_id)
        mode = data.get("mode")
        if mode and mode != cls._mode:
            raise InvalidInputError(
                f"session {session_id} has mode {mode!r}; use "
                f"{'Batch' if mode == 'batch' else 'Session'}.from_id for it"
            )
        backend_name = data.get("backend_name") or data.get("backend")
        if not backend_name:
            raise InvalidInputError(f"session {session_id} names no backend")
        backend = service.backend(backend_name)
        session = cls(backend, max_time=data.get("max_ttl"), _session_id=session_id, _details=data)
        session._active = bool(data.get("accepting_jobs", True))
        return session

    # ------------------------------------------------------------------ context manager
    def __enter__(self) -> Session:
        self._tokens.append(_ACTIVE.set(self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._tokens:
            _ACTIVE.reset(self._tokens.pop())
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} id={self._session_id!r} backend={self._backend.name!r}>"


class Batch(Session):
    """A batch: many independent jobs that the service may run in parallel.

    Same interface as :class:`Session`; created with mode ``batch``.
    """

    _mode = "batch"
