"""``ProviderService``: the entry point of the client (accounts, backends, jobs).

Example:
    Constructing the service makes no request; the lines that ask it need a live server and are
    skipped when the docs run.

    >>> from qiskit_rest_provider import ProviderService
    >>> service = ProviderService(url="http://127.0.0.1:8000", token="MY-TOKEN")
    >>> service
    <ProviderService(channel='ibm_quantum_platform', url='http://127.0.0.1:8000', instance=None)>
    >>> service.backends(simulator=False, min_num_qubits=20)  # doctest: +SKIP
    [<RestBackend('rest_hex_27q')>, <RestBackend('rest_hex_127q')>]
    >>> backend = service.least_busy(min_num_qubits=5)  # doctest: +SKIP

Nothing is requested when the service is constructed; the first call that needs the service logs
in. Credentials are resolved arguments > ``QISKIT_REST_*`` environment variables > saved account
(see :mod:`qiskit_rest_provider.account`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .account import PLATFORM, Account, resolve_account
from .account import delete_account as _delete_account
from .account import save_account as _save_account
from .account import saved_accounts as _saved_accounts
from .backend import RestBackend
from .client import RetryPolicy, RuntimeClient
from .exceptions import NotFoundError, QiskitRestProviderError

if TYPE_CHECKING:  # pragma: no cover
    from qiskit.circuit import QuantumCircuit
    from qiskit.transpiler import Target

    from .primitives import RestPrimitiveJob

logger = logging.getLogger(__name__)

#: Page size used by :meth:`ProviderService.jobs` when fetching several pages.
JOBS_PAGE_SIZE = 100


def _run_legacy(backend: RestBackend, circuits: Any, **options: Any) -> Any:
    """``RestBackend.run``: the legacy path on top of the sampler (wired in by the service).

    The primitives import :mod:`.backend`, so the backend cannot import them; the service, which
    builds both, hands this function to every backend it makes.
    """
    from .primitives.backend_run import run_circuits

    return run_circuits(backend, circuits, **options)


class ProviderService:
    """Connection to one service speaking the Qiskit Runtime REST API.

    Args:
        channel: ``"ibm_quantum_platform"`` (default; alias ``"ibm_cloud"``): API key -> IAM bearer
            token, runtime under ``{url}/api/v1``; or ``"ibm_quantum"`` (classic): API token ->
            ``loginWithToken`` access token, runtime under ``{url}/runtime``.
        url: service root, e.g. ``"http://127.0.0.1:8000"`` (default: IBM's for the channel).
        token: API key / API token.
        instance: CRN (platform; ``None`` lets the service use the token's instance) or
            ``"hub/group/project"`` (classic).
        verify: TLS verification (``True``, ``False`` or a CA bundle path).
        proxies: ``requests``-style proxies.
        timeout: read timeout of each request, in seconds.
        name: a saved account to use (see :meth:`save_account`).
        iam_url: where API keys are exchanged for bearer tokens (default: IBM's IAM for IBM hosts,
            else ``url``).
        app_name: last part of the ``X-Qx-Client-Application`` header.
        retry: the transport's retry policy.

    Raises:
        AccountError: credentials are missing or invalid; the message names what is missing.
    """

    def __init__(
        self,
        channel: str | None = None,
        url: str | None = None,
        token: str | None = None,
        instance: str | None = None,
        verify: bool | str | None = None,
        proxies: dict | None = None,
        timeout: float = 60.0,
        name: str | None = None,
        iam_url: str | None = None,
        *,
        app_name: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._account = resolve_account(
            channel=channel,
            url=url,
            token=token,
            instance=instance,
            verify=verify,
            proxies=proxies,
            iam_url=iam_url,
            name=name,
        )
        self._client = RuntimeClient(self._account, timeout=timeout, app_name=app_name, retry=retry)
        self._backends: dict[str, RestBackend] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"<ProviderService(channel={self._account.channel!r}, url={self._account.url!r}, "
            f"instance={self._account.instance!r})>"
        )

    def close(self) -> None:
        """Close the keep-alive connections (the service object stays usable: they reopen)."""
        self._client.close()

    def __enter__(self) -> ProviderService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ properties

    @property
    def client(self) -> RuntimeClient:
        """The HTTP client (one keep-alive session per service)."""
        return self._client

    @property
    def account(self) -> Account:
        """The resolved account (its ``repr`` hides the token)."""
        return self._account

    @property
    def channel(self) -> str:
        """The channel in use."""
        return self._account.channel

    def active_account(self) -> dict[str, Any]:
        """The account in use as a dict, without the token."""
        data = self._account.to_dict()
        data.pop("token", None)
        return data

    @property
    def instance(self) -> str | None:
        """The configured instance (CRN or ``hub/group/project``), if any."""
        return self._account.instance

    # ------------------------------------------------------------------ accounts

    @staticmethod
    def save_account(
        token: str | None = None,
        url: str | None = None,
        instance: str | None = None,
        channel: str = PLATFORM,
        name: str | None = None,
        set_as_default: bool = False,
        overwrite: bool = False,
        verify: bool | str = True,
        proxies: dict | None = None,
        iam_url: str | None = None,
        filename: str | os.PathLike | None = None,
    ) -> str:
        """Save an account to the accounts file (mode 0600) for later ``ProviderService()`` calls.

        Args:
            token: API key / API token (required).
            url: service root (default: IBM's for the channel).
            instance: CRN or ``hub/group/project``.
            channel: the channel.
            name: the account's name (``"default"`` when omitted).
            set_as_default: use it when no credentials are given; the first account saved
                becomes the default anyway.
            overwrite: replace an existing account of that name.
            verify: TLS verification.
            proxies: ``requests``-style proxies.
            iam_url: IAM root for the platform channel.
            filename: accounts file (default ``$QISKIT_REST_CONFIG_FILE`` or
                ``~/.qiskit/qiskit-rest-provider.json``).

        Returns:
            The name the account was saved under.
        """
        from .account import CHANNELS, default_url

        account = Account(
            channel=channel,
            url=url or default_url(channel if channel in CHANNELS else PLATFORM, instance),
            token=token or "",
            instance=instance,
            verify=verify,
            proxies=proxies,
            iam_url=iam_url,
        )
        return _save_account(
            account,
            name=name,
            set_as_default=set_as_default,
            overwrite=overwrite,
            filename=filename,
        )

    @staticmethod
    def saved_accounts(
        default: bool | None = None,
        channel: str | None = None,
        name: str | None = None,
        filename: str | os.PathLike | None = None,
    ) -> dict[str, dict[str, Any]]:
        """The saved accounts as ``{name: fields}`` (each has ``is_default``), filtered."""
        return _saved_accounts(default=default, channel=channel, name=name, filename=filename)

    @staticmethod
    def delete_account(name: str | None = None, filename: str | os.PathLike | None = None) -> bool:
        """Delete a saved account (default: the default one); ``True`` if one was deleted."""
        return _delete_account(name, filename=filename)

    # ------------------------------------------------------------------ session

    def login(self) -> None:
        """Log in now (normally the first request does it); also undoes :meth:`logout`."""
        self._client.login()

    def logout(self) -> None:
        """Invalidate the access token at the service.

        Afterwards requests fail with :class:`~qiskit_rest_provider.exceptions.AuthenticationError`
        (HTTP 401) until :meth:`login` is called.
        """
        self._client.logout()

    def usage(self) -> dict[str, Any]:
        """The instance's usage (``GET /instances/usage``), with ``usage_remaining_seconds``."""
        data = dict(self._client.usage())
        limit = data.get("usage_limit_seconds") or data.get("usage_allocation_seconds")
        consumed = data.get("usage_consumed_seconds")
        if limit is not None and consumed is not None:
            data.setdefault("usage_remaining_seconds", max(limit - consumed, 0))
        return data

    # ------------------------------------------------------------------ backends

    def _backend_from_listing(self, entry: dict[str, Any]) -> RestBackend:
        name = entry["name"]
        with self._lock:
            backend = self._backends.get(name)
            if backend is None:
                backend = RestBackend(self._client, name, entry, provider=self, runner=_run_legacy)
                self._backends[name] = backend
            else:
                backend._update_listing(entry)
            return backend

    def _backend_unchecked(self, name: str) -> RestBackend:
        """The (cached) backend object for ``name`` without asking the service."""
        with self._lock:
            backend = self._backends.get(name)
            if backend is None:
                backend = RestBackend(self._client, name, provider=self, runner=_run_legacy)
                self._backends[name] = backend
            return backend

    def backends(
        self,
        name: str | None = None,
        min_num_qubits: int | None = None,
        simulator: bool | None = None,
        operational: bool | None = None,
        filters: Callable[[RestBackend], bool] | None = None,
    ) -> list[RestBackend]:
        """The instance's backends, filtered, from ONE ``GET /backends`` request.

        The listing carries name, qubit count, simulator flag, status and queue length, so the
        filters cost no extra request. Only against a service that answers the old names-only
        form do ``min_num_qubits``/``simulator`` fetch each backend's configuration and
        ``operational`` each status. ``filters`` receives the backend object; what it touches
        decides what it fetches (``backend.target`` fetches configuration and properties once).

        Args:
            name: keep only the backend of this name.
            min_num_qubits: keep backends with at least this many qubits.
            simulator: ``True`` for simulators only, ``False`` for devices only.
            operational: ``True`` for backends that are online, ``False`` for the others.
            filters: a predicate on :class:`RestBackend`.

        Returns:
            Backend objects (cached per service: the same object every time).
        """
        backends = [self._backend_from_listing(entry) for entry in self._client.backends()]
        if name is not None:
            backends = [b for b in backends if b.name == name]
        if min_num_qubits is not None:
            backends = [b for b in backends if b.num_qubits >= min_num_qubits]
        if simulator is not None:
            backends = [b for b in backends if b.simulator == simulator]
        if operational is not None:
            backends = [b for b in backends if self._is_operational(b) == operational]
        if filters is not None:
            backends = [b for b in backends if filters(b)]
        return backends

    @staticmethod
    def _live_state(backend: RestBackend) -> tuple[bool, int]:
        """``(operational, queue_length)`` from the listing, or from one status request."""
        listing = backend.listing
        status, queue = listing.get("status"), listing.get("queue_length")
        operational: bool | None = None
        if isinstance(status, dict) and "name" in status:
            operational = status["name"] == "online"
        elif isinstance(status, str):
            operational = status in ("online", "active")
        if operational is not None and isinstance(queue, int):
            return operational, queue
        live = backend.status()
        return (live.operational if operational is None else operational), (
            queue if isinstance(queue, int) else live.pending_jobs
        )

    @classmethod
    def _is_operational(cls, backend: RestBackend) -> bool:
        return cls._live_state(backend)[0]

    def least_busy(
        self,
        min_num_qubits: int | None = None,
        simulator: bool | None = False,
        filters: Callable[[RestBackend], bool] | None = None,
    ) -> RestBackend:
        """The operational device with the shortest queue (ties: the first listed).

        Simulators are left out unless ``simulator=None`` (any) or ``True`` (only simulators):
        "least busy" is a question about hardware, and an idle simulator would always win.

        One ``GET /backends`` request: the listing gives status and queue length (a service
        answering the old names-only form costs one status request per backend instead).

        Raises:
            QiskitRestProviderError: no operational backend matches.
        """
        candidates = self.backends(
            min_num_qubits=min_num_qubits, simulator=simulator, filters=filters
        )
        states = [(backend, *self._live_state(backend)) for backend in candidates]
        online = [(queue, i, b) for i, (b, ok, queue) in enumerate(states) if ok]
        if not online:
            raise QiskitRestProviderError("No operational backend matches the criteria.")
        return min(online, key=lambda item: item[:2])[2]

    def backend(self, name: str) -> RestBackend:
        """The backend called ``name``.

        Costs one request the first time (the configuration, which the Target needs anyway);
        later calls return the same cached object without a request.

        Raises:
            NotFoundError: the service has no backend of that name (the message lists those it
                has).
        """
        with self._lock:
            backend = self._backends.get(name)
        if backend is not None and (backend._configuration is not None or len(backend.listing) > 1):
            return backend
        try:
            config = self._client.backend_configuration(name)
        except NotFoundError as err:
            try:
                known = ", ".join(sorted(e["name"] for e in self._client.backends())) or "none"
            except QiskitRestProviderError:  # pragma: no cover - listing failed too
                known = "unknown"
            raise NotFoundError(
                f"No backend named {name!r} (available: {known})",
                status_code=err.status_code,
                code=err.code,
                trace=err.trace,
            ) from None
        backend = self._backend_unchecked(name)
        with backend._lock:
            if backend._configuration is None:
                backend._configuration = config
                backend._apply_configuration(config)
        return backend

    def target(self, name: str) -> Target:
        """The Target of backend ``name`` (cached with the backend object)."""
        return self.backend(name).target

    # ------------------------------------------------------------------ jobs

    def _job_object(self, data: dict[str, Any]) -> RestPrimitiveJob:
        from .primitives import RestPrimitiveJob

        program = data.get("program")
        program_id = program.get("id") if isinstance(program, dict) else data.get("program_id")
        backend_name = data.get("backend")
        backend = self._backend_unchecked(backend_name) if backend_name else None
        return RestPrimitiveJob(
            self._client,
            data["id"],
            program_id=program_id,
            backend=backend,
            backend_lookup=self.backend,
            session_id=data.get("session_id"),
            tags=data.get("tags"),
            data=data,
        )

    def job(self, job_id: str) -> RestPrimitiveJob:
        """The job ``job_id`` (one request), e.g. to fetch a result in another process.

        Raises:
            NotFoundError: no such job in this instance.
        """
        return self._job_object(self._client.job(job_id))

    def jobs(
        self,
        limit: int | None = 10,
        skip: int = 0,
        backend_name: str | None = None,
        pending: bool | None = None,
        program_id: str | None = None,
        job_tags: Iterable[str] | None = None,
        session_id: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        descending: bool = True,
    ) -> list[RestPrimitiveJob]:
        """Jobs of the instance, newest first unless ``descending=False``.

        Pages through ``GET /jobs`` using the exact ``count`` the service reports, and stops on
        an empty page even if ``count`` says more exist (so a miscounting service cannot make
        this loop forever).

        Args:
            limit: at most this many jobs (``None``: all).
            skip: skip this many first.
            backend_name: only jobs on this backend.
            pending: ``True``: queued/running only; ``False``: final only.
            program_id: ``"sampler"`` or ``"estimator"``.
            job_tags: only jobs having all these tags.
            session_id: only jobs of this session.
            created_after: only jobs created after this time.
            created_before: only jobs created before this time.
            descending: newest first.
        """
        tags = list(job_tags) if job_tags else None
        collected: list[dict[str, Any]] = []
        offset = skip
        while limit is None or len(collected) < limit:
            page_size = (
                JOBS_PAGE_SIZE if limit is None else min(JOBS_PAGE_SIZE, limit - len(collected))
            )
            body = self._client.jobs(
                limit=page_size,
                skip=offset,
                backend_name=backend_name,
                pending=pending,
                program_id=program_id,
                job_tags=tags,
                session_id=session_id,
                created_after=created_after,
                created_before=created_before,
                descending=descending,
            )
            page = body["jobs"]
            collected.extend(page)
            offset += len(page)
            count = body.get("count")
            if not page or (isinstance(count, int) and offset >= count):
                break
        return [self._job_object(item) for item in collected]

    def delete_job(self, job_id: str) -> None:
        """Delete a job in a final state (its results are gone afterwards)."""
        self._client.delete_job(job_id)

    # ------------------------------------------------------------------ transpile

    def transpile(
        self,
        circuits: QuantumCircuit | Sequence[QuantumCircuit],
        backend: RestBackend | str,
        optimization_level: int = 2,
        **options: Any,
    ) -> Any:
        """Transpile on the service (``POST /transpile``) against ``backend``'s Target.

        Delegates to :func:`qiskit_rest_provider.transpiler.remote.transpile`.
        """
        from .transpiler import remote

        return remote.transpile(
            self._client, circuits, backend, optimization_level=optimization_level, **options
        )
