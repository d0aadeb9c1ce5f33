"""What :class:`SamplerV2` and :class:`EstimatorV2` share: the mode, the options, job submission."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ..exceptions import InvalidInputError
from .job import RestPrimitiveJob

if TYPE_CHECKING:  # pragma: no cover
    from ..backend import RestBackend
    from ..client import RuntimeClient
    from ..modes import Batch, Session

logger = logging.getLogger(__name__)


def resolve_mode(mode: Any) -> tuple[RestBackend, Session | Batch | None]:
    """Split ``mode`` into (backend, session-or-batch-or-None).

    ``mode=None`` inside a ``with Session(...)``/``with Batch(...)`` block means that session.

    Raises:
        InvalidInputError: ``mode`` is neither a backend of this package nor a Session/Batch.
    """
    from ..modes import Batch, Session, active_session

    if mode is None:
        mode = active_session()
    if isinstance(mode, (Session, Batch)):
        return mode._backend, mode
    if mode is not None and hasattr(mode, "client") and hasattr(mode, "target"):
        return mode, None
    raise InvalidInputError(
        "mode must be a RestBackend (from ProviderService.backend(...)), a Session or a Batch, "
        f"got {type(mode).__name__}"
    )


class RestPrimitiveBase:
    """Mode handling and job submission shared by both primitives."""

    _program_id: str = ""
    _options_class: Any = None

    def __init__(self, mode: Any = None, options: Any = None) -> None:
        self._backend, self._mode = resolve_mode(mode)
        self._options = self._options_class.coerce(options)

    @property
    def options(self) -> Any:
        """The primitive's options; set attributes on it, or assign a dict to replace them."""
        return self._options

    @options.setter
    def options(self, value: Any) -> None:
        self._options = self._options_class.coerce(value)

    @property
    def mode(self) -> Any:
        """The Session/Batch the primitive runs in, else ``None`` (job mode)."""
        return self._mode

    def backend(self) -> RestBackend:
        """The backend the primitive's jobs run on."""
        return self._backend

    @property
    def _client(self) -> RuntimeClient:
        """The client jobs go through: the session's in a session or batch, else the backend's.

        Both are the same object when the session was opened on this backend.
        """
        if self._mode is not None:
            return self._mode.client
        return self._backend.client

    def _submit(self, params: dict, circuits: list | None = None) -> RestPrimitiveJob:
        session_id = self._mode.session_id if self._mode is not None else None
        fields = self._options._job_fields()
        response = self._client.create_job(
            program_id=self._program_id,
            backend=self._backend.name,
            params=params,
            session_id=session_id,
            **fields,
        )
        job_id = response["id"]
        logger.info("submitted %s job %s to %s", self._program_id, job_id, self._backend.name)
        return RestPrimitiveJob(
            self._client,
            job_id,
            program_id=self._program_id,
            backend=self._backend,
            session_id=response.get("session_id") or session_id,
            tags=fields.get("tags", []),
            circuit_metadata=[c.metadata for c in circuits] if circuits else None,
        )
