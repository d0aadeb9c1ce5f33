"""Database tables of the reference server (SQLAlchemy 2 declarative models).

Times are stored as float seconds since the epoch (UTC): portable across SQLite and PostgreSQL,
cheap to compare and sort. Secrets are never stored in clear: tokens keep a random salt and
``sha256(salt + token)``.

The schema changes only through the Alembic migrations in ``server/jobs/migrations`` (the store
applies them on start-up); a change here needs a new revision there, and a unit test fails while
the two disagree.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ...wire import protocol


class Base(DeclarativeBase):
    """Declarative base of every table."""


class User(Base):
    """A user; owns API tokens."""

    __tablename__ = "users"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created: Mapped[float] = mapped_column(Float)


class Instance(Base):
    """An instance (``hub/group/project``, also known by its CRN) owning jobs and sessions."""

    __tablename__ = "instances"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    hgp: Mapped[str] = mapped_column(String(200), unique=True)
    crn: Mapped[str] = mapped_column(String(300), unique=True)
    created: Mapped[float] = mapped_column(Float)


class ApiToken(Base):
    """A long-lived API token / API key (salted hash only)."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id"))
    salt: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(128))
    created: Mapped[float] = mapped_column(Float)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class AccessToken(Base):
    """A short-lived credential derived from an API token: classic access token or JWT.

    Classic access tokens are ``<id>.<secret>`` (hash of the secret kept); JWTs carry the row id
    as ``jti`` (no hash needed: the signature proves them), so logout can revoke both kinds.
    """

    __tablename__ = "access_tokens"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # "access" | "jwt"
    api_token_id: Mapped[str] = mapped_column(ForeignKey("api_tokens.id"))
    salt: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created: Mapped[float] = mapped_column(Float)
    expires: Mapped[float] = mapped_column(Float)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class SessionRow(Base):
    """A session or batch (protocol §3.10)."""

    __tablename__ = "sessions"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id"), index=True)
    user_id: Mapped[str] = mapped_column(String(40))
    backend: Mapped[str] = mapped_column(String(200))
    mode: Mapped[str] = mapped_column(String(20))
    max_ttl: Mapped[int] = mapped_column(Integer)
    interactive_ttl: Mapped[int] = mapped_column(Integer)
    accepting_jobs: Mapped[bool] = mapped_column(Boolean, default=True)
    closed: Mapped[bool] = mapped_column(Boolean, default=False)
    state_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created: Mapped[float] = mapped_column(Float)
    activated_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    closed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_job_started: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_job_completed: Mapped[float | None] = mapped_column(Float, nullable=True)


class Job(Base):
    """A job and everything it produced."""

    __tablename__ = "jobs"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id"))
    user_id: Mapped[str] = mapped_column(String(40))
    backend: Mapped[str] = mapped_column(String(200))
    program_id: Mapped[str] = mapped_column(String(40))
    params: Mapped[bytes] = mapped_column(LargeBinary)  # the request's params, JSON bytes
    state: Mapped[str] = mapped_column(String(20), index=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tags: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    session_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    log_level: Mapped[str | None] = mapped_column(String(20), nullable=True)
    cost: Mapped[int | None] = mapped_column(Integer, nullable=True)
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    created: Mapped[float] = mapped_column(Float)
    running_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    logs: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    result_file: Mapped[str | None] = mapped_column(String(300), nullable=True)
    metrics: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON object
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    usage_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    quantum_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # when the results of a ``private`` job were handed out (once only); migration 0002
    results_consumed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # the server replica running the job and until when its claim holds; migration 0003
    claimed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    # the job's shots as the daily shot quota counts them (NULL: before 0005); migration 0005
    shots: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    __table_args__ = (
        UniqueConstraint("instance_id", "idempotency_key", name="uq_jobs_idempotency"),
        Index("ix_jobs_instance_created", "instance_id", "created"),
    )


class TranspileTaskRow(Base):
    """A transpile task (``POST /transpile``), queued with the jobs; migration 0004.

    ``state`` holds the transpiler service's states (``PENDING``, ``STARTED``, ``SUCCESS``,
    ``FAILURE``, ``CANCELLED``); ``request`` the validated request as JSON (the QPY input as the
    Base64 text it came as); ``result`` the JSON list of per-circuit results on ``SUCCESS``, the
    message otherwise.
    """

    __tablename__ = "transpile_tasks"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id"))
    state: Mapped[str] = mapped_column(String(20), index=True)
    backend: Mapped[str | None] = mapped_column(String(200), nullable=True)
    request: Mapped[bytes] = mapped_column(LargeBinary)
    warnings: Mapped[str] = mapped_column(Text, default="[]")  # JSON list
    num_circuits: Mapped[int] = mapped_column(Integer, default=0)
    time_limit: Mapped[float] = mapped_column(Float)
    created: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    result: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    __table_args__ = (Index("ix_transpile_tasks_instance_created", "instance_id", "created"),)


class InstanceQuota(Base):
    """An instance's own quotas (migration 0005); a missing row or a NULL follows the server's.

    A value ``>= 0`` is the limit (0 admits nothing: the instance is suspended); ``-1`` means no
    limit for this instance whatever the server's default (:mod:`.quotas`).
    """

    __tablename__ = "instance_quotas"
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id"), primary_key=True)
    max_queued_jobs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_shots_per_day: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_seconds_per_day: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated: Mapped[float] = mapped_column(Float)


FINAL_STATES = protocol.FINAL_STATES
PENDING_STATES = protocol.PENDING_STATES
