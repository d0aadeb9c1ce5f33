"""Settings of one reference-server process, gathered in one place.

The CLI (``qiskit-rest-provider serve``) fills a :class:`ServerConfig`; the app factory,
the store, the auth layer and the dispatcher read it. Nothing here does I/O except
:meth:`ServerConfig.prepare_data_dir`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..wire.limits import MAX_QPY_BYTES

DEFAULT_INSTANCE = "local/default/main"
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024


def instance_crn(hgp: str) -> str:
    """The CRN we give the instance ``hub/group/project``.

    The shape follows IBM's (``crn:v1:<cname>:public:quantum-computing:<region>:a/<acct>:<id>::``)
    so clients that parse CRNs find the fields they expect; cname and region are ``local``.

    Example:
        >>> instance_crn("local/default/main")
        'crn:v1:local:public:quantum-computing:local:a/local:default-main::'
    """
    hub, group, project = split_hgp(hgp)
    return f"crn:v1:local:public:quantum-computing:local:a/{hub}:{group}-{project}::"


def split_hgp(hgp: str) -> tuple[str, str, str]:
    """Split ``hub/group/project`` (raises ``ValueError`` naming the problem)."""
    parts = hgp.split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"instance must look like hub/group/project, got {hgp!r}")
    for part in parts:
        if not all(ch.isalnum() or ch in "-_." for ch in part):
            raise ValueError(f"instance part {part!r} may only hold letters, digits, '-', '_', '.'")
    return parts[0], parts[1], parts[2]


@dataclass
class ServerConfig:
    """Everything one server process needs to know.

    Attributes:
        data_dir: where the SQLite store, the generated API token, the JWT signing key and large
            result bodies live (created if missing).
        host, port: where uvicorn listens (port 0 = pick a free port).
        backends_dir: extra ``conf_*.json``/``props_*.json`` pairs for the catalog.
        token: fixed API token (else one is generated once and kept in the data dir).
        instance: the instance (``hub/group/project``) that token owns.
        extra_tokens: more ``(token, hub/group/project)`` pairs (tests of cross-instance isolation).
        workers: worker processes running jobs (and other CPU work such as transpilation).
        db_url: SQLAlchemy URL; default a SQLite file in the data dir.
        max_body_bytes: request bodies above this answer 413.
        rate_limit: requests per second allowed per token (burst = 2 s worth); 0 disables.
        cors_origins: origins allowed by CORS; empty = no CORS headers at all (closed).
        access_token_ttl: lifetime of classic access tokens (seconds).
        jwt_ttl: lifetime of the IAM-style JWTs (seconds).
        default_max_execution_time: wall-clock limit for a job without ``cost`` (seconds); at
            most ``max_execution_time`` (clamped).
        max_execution_time: the largest ``cost`` (``max_execution_time``) a job may ask for
            (seconds); a larger one is refused with 400.
        max_queued_per_instance: Queued jobs one instance may have at once; one more answers 429.
            The default of the ``max_queued_jobs`` quota (an instance's own quota wins).
        max_shots_per_day: shots one instance may submit per UTC day (0 = no limit); the
            default of its ``max_shots_per_day`` quota (:mod:`.jobs.quotas`).
        max_seconds_per_day: usage (simulation) seconds per UTC day after which an instance's
            new jobs answer 429 (0 = no limit); the default of its ``max_seconds_per_day`` quota.
        max_job_memory: memory one job may use (bytes); ``None`` = a safe share of RAM,
            ``min(4 GiB, RAM / (workers + 1))``. Larger jobs are refused at submission.
        max_running_per_instance: jobs of one instance running at once (0 = as many as there are
            workers); below ``workers`` it keeps workers free for other instances.
        abandon_grace: how long to wait for the worker of a cancelled/timed-out job (killed at
            once) to report before its slot is counted free anyway (seconds).
        result_inline_bytes: result bodies up to this size live in the database, larger ones
            in files under ``data_dir/results``.
        idempotency_ttl: how long an ``Idempotency-Key`` is remembered (seconds).
        event_stream_seconds: the longest a job event stream (D14) stays open (seconds); the
            client then reconnects with ``Last-Event-ID``. Bounds what one idle client holds.
        event_heartbeat_seconds: interval of the ``: keep-alive`` comments of an event stream
            (seconds), so that proxies do not drop a quiet stream.
        body_timeout: seconds a request's whole body may take to arrive (else 408, closed).
        header_timeout: seconds a connection may take to send a complete request head.
        keep_alive_timeout: seconds an idle keep-alive connection stays open.
        max_connections_per_client: connections (and requests in progress) one client address
            may hold at once (0 = no cap).
        max_failed_logins: failed authentications allowed per client address and per presented
            credential within ``failed_login_window``; more answer 429 (0 = no throttling).
        failed_login_window: the window of ``max_failed_logins`` (seconds).
        executor: where jobs run: ``"local"`` (this process' worker pool of ``workers``
            processes) or ``"dask://HOST:PORT"`` (a Dask distributed scheduler; see
            :mod:`.execution.dask`).
        replica_id: this server's name among replicas sharing one database (the jobs it claims
            carry it); default ``<hostname>-<pid>``.
        lease_seconds: how long a replica's claim on a running job holds without renewal; a
            replica that dies leaves its jobs Running that long, then another re-queues them.
        notify_fallback: seconds between re-reads of waited-on jobs where no PostgreSQL
            ``NOTIFY`` wakes them (SQLite): the latest a change made elsewhere is noticed.
        default_transpile_time: wall-clock limit of a transpile task without its own
            ``max_execution_time`` (seconds); at most ``max_transpile_time`` (clamped).
        max_transpile_time: the largest ``max_execution_time`` a transpile task may ask for
            (seconds); a larger one is refused with 400.
        max_transpile_qpy_bytes: the most a ``qpy_circuits`` input may inflate to (bytes; a
            compressed one also to at most 100 times its size, 4 MiB at least).
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    backends_dir: Path | None = None
    token: str | None = None
    instance: str = DEFAULT_INSTANCE
    extra_tokens: list[tuple[str, str]] = field(default_factory=list)
    workers: int = 2
    db_url: str | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    rate_limit: float = 200.0
    cors_origins: list[str] = field(default_factory=list)
    access_token_ttl: int = 14 * 24 * 3600
    jwt_ttl: int = 3600
    default_max_execution_time: float = 600.0
    max_execution_time: float = 3 * 3600.0
    max_queued_per_instance: int = 1000
    max_shots_per_day: int = 0
    max_seconds_per_day: float = 0.0
    max_running_per_instance: int = 0
    max_job_memory: int | None = None
    abandon_grace: float = 10.0
    result_inline_bytes: int = 4 * 1024 * 1024
    idempotency_ttl: float = 24 * 3600.0
    event_stream_seconds: float = 300.0
    event_heartbeat_seconds: float = 15.0
    log_level: str = "info"
    body_timeout: float = 10.0
    header_timeout: float = 10.0
    keep_alive_timeout: float = 5.0
    max_connections_per_client: int = 64
    max_failed_logins: int = 10
    failed_login_window: float = 10.0
    executor: str = "local"
    replica_id: str = ""
    lease_seconds: float = 30.0
    notify_fallback: float = 5.0
    default_transpile_time: float = 300.0
    max_transpile_time: float = 1800.0
    max_transpile_qpy_bytes: int = MAX_QPY_BYTES

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if self.backends_dir is not None:
            self.backends_dir = Path(self.backends_dir)
        split_hgp(self.instance)
        for _, hgp in self.extra_tokens:
            split_hgp(hgp)
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        if not self.max_execution_time > 0 or not self.default_max_execution_time > 0:
            raise ValueError("execution time limits must be positive numbers of seconds")
        if self.max_execution_time > 2**31 - 1:  # stored as a 32-bit INTEGER (PostgreSQL)
            raise ValueError("max_execution_time must be below 2**31 seconds")
        self.default_max_execution_time = min(
            self.default_max_execution_time, self.max_execution_time
        )
        if self.max_job_memory is not None and self.max_job_memory < 1:
            raise ValueError("max_job_memory must be a positive number of bytes")
        if not (self.body_timeout > 0 and self.header_timeout > 0 and self.keep_alive_timeout > 0):
            raise ValueError("body, header and keep-alive timeouts must be positive seconds")
        if self.max_connections_per_client < 0:
            raise ValueError("max_connections_per_client must be >= 0")
        if self.max_queued_per_instance < 1 or self.max_running_per_instance < 0:
            raise ValueError("max queued jobs must be >= 1 and max running jobs >= 0")
        if self.max_shots_per_day < 0 or not self.max_seconds_per_day >= 0:
            raise ValueError("max shots and seconds per day must be >= 0 (0 = no limit)")
        if not self.event_stream_seconds > 0 or not self.event_heartbeat_seconds > 0:
            raise ValueError("event stream lifetime and heartbeat must be positive seconds")
        if self.executor != "local" and not self.executor.startswith("dask://"):
            raise ValueError(
                f"executor must be 'local' or 'dask://HOST:PORT', got {self.executor!r}"
            )
        if not self.replica_id:
            self.replica_id = default_replica_id()
        if len(self.replica_id) > 200:
            raise ValueError("replica_id must be at most 200 characters")
        if not self.lease_seconds >= 1:
            raise ValueError("lease_seconds must be at least 1 second")
        if not self.notify_fallback > 0:
            raise ValueError("notify_fallback must be a positive number of seconds")
        if not self.max_transpile_time > 0 or not self.default_transpile_time > 0:
            raise ValueError("transpile time limits must be positive numbers of seconds")
        self.default_transpile_time = min(self.default_transpile_time, self.max_transpile_time)
        if not 1 <= self.max_transpile_qpy_bytes <= MAX_QPY_BYTES:
            raise ValueError(f"max_transpile_qpy_bytes must be from 1 to {MAX_QPY_BYTES} bytes")

    @property
    def job_memory_limit(self) -> int:
        """The per-job memory limit in bytes (``max_job_memory`` or the safe default)."""
        if self.max_job_memory:
            return int(self.max_job_memory)
        from .execution.cost import default_max_job_memory

        return default_max_job_memory(self.workers)

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL in use (plain ``postgresql://`` is routed to psycopg 3)."""
        return normalize_db_url(self.db_url) if self.db_url else f"sqlite:///{self.db_path}"

    @property
    def db_path(self) -> Path:
        """The default SQLite file."""
        return self.data_dir / "store.sqlite3"

    @property
    def results_dir(self) -> Path:
        """Where large result bodies are written."""
        return self.data_dir / "results"

    def prepare_data_dir(self) -> None:
        """Create the data dir (mode 0700: it holds the token and the signing key)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.results_dir.mkdir(exist_ok=True)
        try:
            os.chmod(self.data_dir, 0o700)
        except OSError:  # pragma: no cover - e.g. a directory owned by someone else
            pass


def default_replica_id() -> str:
    """``<hostname>-<pid>``: unique among live replicas, and tells whether one is gone.

    A replica starting on the same host recognises the jobs of a dead one by this name (its
    process id no longer runs) and re-queues them at once instead of waiting out their lease.
    """
    import socket

    return f"{socket.gethostname()}-{os.getpid()}"


def normalize_db_url(url: str) -> str:
    """Map ``postgresql://`` / ``postgres://`` to the psycopg 3 driver SQLAlchemy should use."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url
