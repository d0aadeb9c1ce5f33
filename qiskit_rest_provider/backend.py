"""``RestBackend``: a Qiskit ``BackendV2`` for one backend of a Runtime REST service.

The :class:`~qiskit.transpiler.Target` is built on first use from the service's configuration and
properties documents (:func:`qiskit_rest_provider.wire.target.target_from_backend_data`) and cached,
so ``generate_preset_pass_manager(backend=backend)`` transpiles against exactly what the service's
calibration data says. Network I/O happens only in documented places:

* :attr:`RestBackend.target` (and what derives from it: ``coupling_map``, ``dt``,
  ``instruction_durations``, ``operation_names``, ...) fetches configuration + properties once;
* :meth:`RestBackend.configuration` / :meth:`RestBackend.properties` fetch once and cache;
* :meth:`RestBackend.status` asks every time (it is live data);
* :meth:`RestBackend.refresh` drops the caches.

Example (needs a live server, so it is skipped when the docs run):
    >>> backend = service.backend("rest_hex_27q")  # doctest: +SKIP
    >>> pm = generate_preset_pass_manager(optimization_level=2, backend=backend)  # doctest: +SKIP
    >>> isa = pm.run(circuit)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from qiskit.providers import BackendV2, Options
from qiskit.transpiler import Target

from .exceptions import InvalidInputError, QiskitRestProviderError

if TYPE_CHECKING:  # pragma: no cover
    from .client import RuntimeClient

logger = logging.getLogger(__name__)

#: Name of the translation-stage plugin (entry point in ``qiskit.transpiler.translation``).
TRANSLATION_PLUGIN = "rest_provider"


@dataclass(frozen=True)
class BackendStatus:
    """Live status of a backend (what ``GET backends/{name}/status`` says).

    Attributes:
        backend_name: the backend's name.
        backend_version: its version string (``"0.0.0"`` when the service gives none).
        operational: whether it accepts and runs jobs.
        pending_jobs: jobs waiting in its queue.
        status_msg: the service's status word, e.g. ``"active"``.
        message: the service's free-text message, if any.
    """

    backend_name: str
    backend_version: str
    operational: bool
    pending_jobs: int
    status_msg: str
    message: str = ""

    @classmethod
    def from_wire(cls, name: str, data: dict[str, Any]) -> BackendStatus:
        """Map the wire form (protocol §3.5) the way qiskit-ibm-runtime does."""
        try:
            pending = max(int(data.get("length_queue") or 0), 0)
        except (TypeError, ValueError):
            pending = 0
        return cls(
            backend_name=name,
            backend_version=str(data.get("backend_version") or "0.0.0"),
            operational=bool(data.get("state", False)),
            pending_jobs=pending,
            status_msg=str(data.get("status") or ""),
            message=str(data.get("message") or ""),
        )


def _parse_date(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class RestBackend(BackendV2):
    """One backend of a Runtime REST service, usable wherever Qiskit expects a ``BackendV2``.

    Created by :meth:`ProviderService.backend` / :meth:`ProviderService.backends`; not meant to be
    constructed directly. The backend talks to the service only through ``client``; the object
    that created it is kept as ``provider`` (Qiskit's ``BackendV2`` field, alias ``service`` as in
    qiskit-ibm-runtime) for code that asks for it, and is never used for requests.

    Args:
        client: the :class:`~qiskit_rest_provider.client.RuntimeClient` to send requests
            through. Anything holding one as ``.client`` (a ``ProviderService``, as in earlier
            versions) is accepted too and becomes the ``provider``.
        name: the backend's name.
        listing: the backend's entry from ``GET /backends`` (``qubits``, ``is_simulator``,
            ``status``, ``queue_length``), if known; used to answer cheap questions without
            fetching the configuration.
        provider: the object that created the backend (default: ``client``'s holder, if any).
        runner: what :meth:`run` calls, as ``runner(backend, circuits, shots=..., **options)``;
            :class:`ProviderService` passes the sampler-based legacy runner (this module does not
            import the primitives, which import it).

    Raises:
        InvalidInputError: ``client`` is neither a ``RuntimeClient`` nor holds one.
    """

    def __init__(
        self,
        client: RuntimeClient | Any,
        name: str,
        listing: dict[str, Any] | None = None,
        *,
        provider: Any = None,
        runner: Callable[..., Any] | None = None,
    ) -> None:
        if not hasattr(client, "backend_configuration"):
            holder, client = client, getattr(client, "client", None)
            if client is None or not hasattr(client, "backend_configuration"):
                raise InvalidInputError(
                    "RestBackend needs a RuntimeClient (or a ProviderService holding one), "
                    f"got {type(holder).__name__}"
                )
            provider = holder if provider is None else provider
        super().__init__(provider=provider, name=name)
        self._client: RuntimeClient = client
        self._runner = runner
        self._listing = dict(listing or {"name": name})
        self._lock = threading.RLock()
        self._configuration: dict | None = None
        self._properties: dict | None = None
        self._properties_loaded = False
        self._target: Target | None = None

    def __repr__(self) -> str:
        return f"<RestBackend('{self.name}')>"

    # ------------------------------------------------------------------ identity

    @property
    def client(self) -> RuntimeClient:
        """The HTTP client every request of this backend (and its primitives) goes through."""
        return self._client

    @property
    def service(self) -> Any:
        """The object that created this backend (normally its ``ProviderService``), or ``None``."""
        return self.provider

    @property
    def listing(self) -> dict[str, Any]:
        """The backend's entry from the last ``GET /backends`` (a copy; no request)."""
        return dict(self._listing)

    def _update_listing(self, listing: dict[str, Any]) -> None:
        self._listing = dict(listing)

    @property
    def simulator(self) -> bool:
        """Whether this is a simulator (from the listing, else from the configuration)."""
        value = self._listing.get("is_simulator")
        if value is None:
            value = self._config().get("simulator", False)
        return bool(value)

    # ------------------------------------------------------------------ documents

    def configuration(self, refresh: bool = False) -> dict[str, Any]:
        """The IBM-format configuration document (a deep copy of the cached one).

        Fetched on first call and cached; ``refresh=True`` fetches it again.
        """
        with self._lock:
            if refresh:
                self._configuration = None
            return copy.deepcopy(self._config())

    def _config(self) -> dict[str, Any]:
        """The cached configuration itself (fetched once); callers must not mutate it."""
        config = self._configuration
        if config is None:
            with self._lock:
                if self._configuration is None:
                    self._configuration = self._client.backend_configuration(self.name)
                    self._apply_configuration(self._configuration)
                config = self._configuration
        return config

    def _apply_configuration(self, config: dict[str, Any]) -> None:
        self.description = config.get("description")
        self.online_date = _parse_date(config.get("online_date"))
        self.backend_version = config.get("backend_version")

    def properties(self, refresh: bool = False) -> dict[str, Any] | None:
        """The IBM-format properties document (calibration data), or ``None`` if it has none.

        Fetched on first call and cached; ``refresh=True`` fetches it again (the Target is not
        rebuilt: use :meth:`refresh` for that).
        """
        with self._lock:
            if refresh:
                self._properties_loaded = False
            return copy.deepcopy(self._props())

    def _props(self) -> dict[str, Any] | None:
        """The cached properties themselves (fetched once); callers must not mutate them."""
        if not self._properties_loaded:
            with self._lock:
                if not self._properties_loaded:
                    self._properties = self._client.backend_properties(self.name)
                    self._properties_loaded = True
                    if self._properties is None:
                        logger.debug("Backend %s has no properties", self.name)
        return self._properties

    def refresh(self) -> None:
        """Forget the cached configuration, properties and Target; the next use fetches them."""
        with self._lock:
            self._configuration = None
            self._properties = None
            self._properties_loaded = False
            self._target = None

    def status(self) -> BackendStatus:
        """Live status (one request, never cached)."""
        data = self._client.backend_status(self.name)
        return BackendStatus.from_wire(self.name, data)

    # ------------------------------------------------------------------ BackendV2

    @property
    def target(self) -> Target:
        """The backend's Target, built on first use from configuration + properties and cached."""
        target = self._target
        if target is not None:
            return target
        with self._lock:
            if self._target is None:
                from .wire.target import target_from_backend_data

                self._target = target_from_backend_data(self._config(), self._props())
                logger.debug(
                    "Built the Target of %s: %d qubits, %d operations",
                    self.name,
                    self._target.num_qubits,
                    len(self._target.operation_names),
                )
            return self._target

    @property
    def num_qubits(self) -> int:
        """Number of qubits (from the listing when it says so, else the Target)."""
        if self._target is None:
            qubits = self._listing.get("qubits")
            if isinstance(qubits, int):
                return qubits
        return self.target.num_qubits or 0

    @property
    def max_circuits(self) -> int | None:
        """``max_experiments`` of the configuration (``None``: no limit given)."""
        value = self._config().get("max_experiments")
        return int(value) if value is not None else None

    @property
    def max_shots(self) -> int | None:
        """``max_shots`` of the configuration (``None``: no limit given)."""
        value = self._config().get("max_shots")
        return int(value) if value is not None else None

    @classmethod
    def _default_options(cls) -> Options:
        return Options(shots=4096)

    def get_translation_stage_plugin(self) -> str:
        """``"rest_provider"``: Qiskit's preset pass managers then use our translation plugin."""
        return TRANSLATION_PLUGIN

    def run(self, run_input: Any, **options: Any) -> Any:
        """Run circuits the legacy way: one sampler job whose ``result().get_counts()`` works.

        Args:
            run_input: a circuit or a list of ISA circuits.
            **options: ``shots`` and other run options (see
                :func:`qiskit_rest_provider.primitives.backend_run.run_circuits`).

        Raises:
            QiskitRestProviderError: the backend was built without a runner (not by
                :class:`ProviderService`).
        """
        if self._runner is None:
            raise QiskitRestProviderError(
                f"backend {self.name!r} has no runner for run(); get it from "
                "ProviderService.backend(...) or use SamplerV2(mode=backend)"
            )
        shots = options.pop("shots", None)
        if shots is None:
            shots = self.options.get("shots")
        return self._runner(self, run_input, shots=shots, **options)
