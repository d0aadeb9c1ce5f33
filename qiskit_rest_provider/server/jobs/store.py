"""The persistent store: jobs, sessions, instances, tokens (SQLAlchemy 2). All the server's SQL.

SQLite (a file in the data dir, WAL journal) by default, any SQLAlchemy URL otherwise. Every state
change of a job is one transaction with a guard on the previous state (``UPDATE ... WHERE state =
'Queued'``), so a cancel racing with the dispatcher can never produce two final states.

The schema is made and changed only by the Alembic migrations shipped in
``server/jobs/migrations``: opening a store upgrades its database to the newest revision, under a
lock so that two servers starting on one database never both migrate
(:func:`~.schema.upgrade_schema`).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    bindparam,
    case,
    create_engine,
    event,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer, sessionmaker
from sqlalchemy.sql.elements import ClauseElement

from ...wire import protocol
from ..config import ServerConfig
from .models import FINAL_STATES, AccessToken, ApiToken, Instance, Job, SessionRow, User
from .schema import upgrade_schema

logger = logging.getLogger(__name__)

_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuv"

#: The PostgreSQL ``NOTIFY`` channel on which every job state change is announced (payload: the
#: job id); each replica listens on it (:mod:`.notify`).
NOTIFY_CHANNEL = "qrp_job_changed"


def new_id(length: int = 20) -> str:
    """A sortable, IBM-looking id: 8 chars of time (base 32) then random base-32 chars."""
    t = int(time.time() * 1000)
    head = []
    for _ in range(9):
        head.append(_ID_ALPHABET[t & 31])
        t >>= 5
    body = "".join(secrets.choice(_ID_ALPHABET) for _ in range(length - 9))
    return "".join(reversed(head)) + body


def make_engine(url: str) -> Engine:
    """Create the engine; SQLite gets WAL, a busy timeout and cross-thread connections.

    SQLite also gets this process' writers in line (:class:`_SqliteWriters`).
    """
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": _BUSY_SECONDS},
            pool_size=20,
            max_overflow=40,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")  # durable against process crashes
            cur.execute(f"PRAGMA busy_timeout={int(_BUSY_SECONDS * 1000)}")
            cur.close()

        _SqliteWriters(engine)
        return engine
    # request handlers run in a pool of up to 40 threads: let each find a connection
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=40)


_BUSY_SECONDS = 30.0
#: Statements that take SQLite's write lock (the transaction then holds it until it ends).
_WRITES = (
    "INSERT",
    "UPDATE",
    "DELETE",
    "REPLACE",
    "CREATE",
    "DROP",
    "ALTER",
    "BEGIN IMMEDIATE",
    "BEGIN EXCLUSIVE",
)


class _SqliteWriters:
    """This process' SQLite write transactions, one at a time, in the order they ask.

    SQLite lets one transaction write at a time; one that finds the lock taken waits in
    SQLite's busy handler, which sleeps and looks again (1, 2, 5, 10, ... 100 ms): under load,
    submissions and the dispatcher's claims waited 100-330 ms for a lock that was free again
    after a millisecond, and another instance's Bell job took up to a second behind 100 queued
    ones. Here a transaction about to write first takes a lock of this process, handed over at
    once (first come, first served) when the holder commits or rolls back, so SQLite's own lock
    is free when it asks; writers in other processes (the CLI) still meet the busy handler. The
    lock belongs to the DBAPI connection, not the thread: whichever thread ends the transaction
    (a pool's rollback on return included) hands it on. Waiting is bounded by the busy timeout;
    past it the statement goes on and SQLite's busy handler answers, as without this.
    """

    def __init__(self, engine: Engine) -> None:
        self._cond = threading.Condition()
        self._owner: int | None = None  # id() of the DBAPI connection in a write transaction
        event.listen(engine, "before_cursor_execute", self._before_execute)
        dialect = engine.dialect
        commit, rollback = dialect.do_commit, dialect.do_rollback

        def do_commit(dbapi_conn: Any) -> None:
            try:
                commit(dbapi_conn)
            finally:
                self._release(_raw_id(dbapi_conn))

        def do_rollback(dbapi_conn: Any) -> None:
            try:
                rollback(dbapi_conn)
            finally:
                self._release(_raw_id(dbapi_conn))

        setattr(dialect, "do_commit", do_commit)  # noqa: B010 - this engine's dialect only
        setattr(dialect, "do_rollback", do_rollback)  # noqa: B010
        for name in ("checkin", "invalidate", "soft_invalidate", "close", "close_detached"):
            # however a connection leaves its transaction behind, the lock goes with it
            event.listen(engine.pool, name, self._release_pooled)

    def _before_execute(self, conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        if not statement.lstrip()[:15].upper().startswith(_WRITES):
            return
        key = id(conn.connection.dbapi_connection)
        with self._cond:
            if self._owner == key:
                return  # this transaction wrote before: it holds the lock already
            self._cond.wait_for(lambda: self._owner is None, timeout=_BUSY_SECONDS)
            if self._owner is None:
                self._owner = key

    def _release_pooled(self, dbapi_conn: Any, *_: Any) -> None:
        if dbapi_conn is not None:
            self._release(id(dbapi_conn))

    def _release(self, key: int) -> None:
        with self._cond:
            if self._owner == key:
                self._owner = None
                self._cond.notify()


def _raw_id(conn: Any) -> int:
    """``id()`` of the DBAPI connection itself (the dialect is handed the pool's proxy)."""
    return id(getattr(conn, "dbapi_connection", None) or conn)


@dataclass
class QueuedJob:
    """What the dispatcher needs to hand a queued job to a worker."""

    id: str
    program_id: str
    backend: str
    cost: int | None
    session_id: str | None
    attempts: int
    instance_id: str = ""


@dataclass
class JobFilters:
    """Filters of ``GET jobs`` (protocol §3.8)."""

    instance_id: str
    limit: int = 200
    offset: int = 0
    backend: str | None = None
    pending: bool | None = None
    program: str | None = None
    tags: list[str] | None = None
    session_id: str | None = None
    created_after: float | None = None
    created_before: float | None = None
    ascending: bool = False


class Store:
    """Transactional access to everything the server persists."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.engine = make_engine(config.database_url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        try:
            self.schema_change = upgrade_schema(self.engine)
        except BaseException:
            self.engine.dispose()
            raise

    @property
    def cheap_point_reads(self) -> bool:
        """Whether a read of one row by key is cheap enough to run on the event loop.

        SQLite in WAL mode: the read is local and never waits for a writer (tens of µs).
        """
        return self.engine.dialect.name == "sqlite"

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    # ----------------------------------------------------------------- instances
    def ensure_instance(self, hgp: str, crn: str) -> Instance:
        """The instance named ``hgp``, created on first use."""
        with self.sessions.begin() as s:
            row = s.scalar(select(Instance).where(Instance.hgp == hgp))
            if row is None:
                row = Instance(id=new_id(), hgp=hgp, crn=crn, created=time.time())
                s.add(row)
            return row

    def instance(self, instance_id: str) -> Instance | None:
        """An instance by id."""
        with self.sessions() as s:
            return s.get(Instance, instance_id)

    # -------------------------------------------------------------- credentials
    def add_user_with_api_token(
        self, user_name: str, instance_id: str, salt: str, token_hash: str
    ) -> ApiToken:
        """A new user and its API token (salted hash only) for an instance, in one transaction."""
        now = time.time()
        with self.sessions.begin() as s:
            user = User(id=new_id(), name=user_name, created=now)
            s.add(user)
            s.flush()
            row = ApiToken(
                id=new_id(),
                user_id=user.id,
                instance_id=instance_id,
                salt=salt,
                hash=token_hash,
                created=now,
                revoked=False,
            )
            s.add(row)
        return row

    def active_api_tokens(self) -> list[ApiToken]:
        """Every API token not revoked (the caller compares hashes: they are salted per row)."""
        with self.sessions() as s:
            return list(s.scalars(select(ApiToken).where(ApiToken.revoked.is_(False))))

    def add_access_token(self, row: AccessToken) -> AccessToken:
        """Record an issued access token or JWT (``row.id`` is its id / ``jti``)."""
        with self.sessions.begin() as s:
            s.add(row)
        return row

    def revoke_access_token(self, access_id: str) -> None:
        """Logout: mark an access token / JWT revoked (absent ids are ignored)."""
        with self.sessions.begin() as s:
            row = s.get(AccessToken, access_id)
            if row is not None:
                row.revoked = True

    def access_token_with_api_token(
        self, access_id: str
    ) -> tuple[AccessToken, ApiToken | None] | None:
        """An access token / JWT row and the API token it was derived from, read together.

        ``None`` if the access token is unknown; the API token half is ``None`` if it is gone.
        """
        with self.sessions() as s:
            row = s.get(AccessToken, access_id)
            if row is None:
                return None
            return row, s.get(ApiToken, row.api_token_id)

    # ---------------------------------------------------------------------- jobs
    def create_job(
        self, job: Job, guard: Callable[[Session], None] | None = None
    ) -> tuple[Job, bool]:
        """Insert a Queued job; with an idempotency key already used, return that job instead.

        One ``INSERT`` (one commit) in the usual case: the key is looked up only when the
        insert collides with it (a key whose job is older than the idempotency window is then
        released and the insert retried). ``guard`` runs first in the same transaction (the
        quotas' :func:`.quotas.submission_guard`: lock, count, maybe raise); what it raises
        rolls the insert back and propagates.

        Returns:
            ``(job, created)``: ``created`` is False when an earlier job with the same key won.
        """
        for _ in range(3):
            try:
                # Core INSERT (the ORM's flush costs more than the statement), in a session so
                # that the quota guard's lock and counts share its transaction.
                with self.sessions.begin() as s:
                    if guard is not None:
                        guard(s)
                    # the session's connection: Core semantics (inserted_primary_key), not
                    # an ORM bulk insert
                    res = s.connection().execute(_INSERT_JOB, _insert_values(job))
                job.seq = res.inserted_primary_key[0]  # type: ignore[index]
                return job, True
            except IntegrityError:
                if not job.idempotency_key:
                    raise
                existing = self._job_with_key(job.instance_id, job.idempotency_key)
                if existing is None:  # deleted meanwhile: insert again
                    continue
                if time.time() - existing.created <= self.config.idempotency_ttl:
                    return existing, False
                self._forget_expired_key(job.instance_id, job.idempotency_key)
        raise RuntimeError(f"could not store job {job.id}: its idempotency key kept colliding")

    def _forget_expired_key(self, instance_id: str, key: str) -> None:
        """Release a key whose job is older than the idempotency window, so it can be reused."""
        with self.sessions.begin() as s:
            s.execute(
                update(Job)
                .where(Job.instance_id == instance_id, Job.idempotency_key == key)
                .values(idempotency_key=None)
            )

    def _job_with_key(self, instance_id: str, key: str) -> Job | None:
        # Nearly every submission carries a fresh key: a Core probe for the id answers "none"
        # at a third of the ORM's cost, and only a repeat loads the job itself.
        with self.engine.connect() as conn:
            job_id = conn.execute(
                _JOB_ID_WITH_KEY, {"b_instance_id": instance_id, "b_key": key}
            ).scalar()
        if job_id is None:
            return None
        with self.sessions() as s:
            return s.scalar(_JOB_WITH_KEY, {"b_instance_id": instance_id, "b_key": key})

    def job_by_key(self, instance_id: str, key: str) -> Job | None:
        """The job created with an idempotency key within the idempotency window (24 h)."""
        row = self._job_with_key(instance_id, key)
        if row is not None and time.time() - row.created > self.config.idempotency_ttl:
            return None
        return row

    def get_job(
        self,
        job_id: str,
        instance_id: str | None = None,
        *,
        with_result: bool = False,
        with_params: bool = True,
    ) -> Job | None:
        """A job; ``None`` if absent or owned by another instance.

        The result body (and, on request, the params) are only loaded when asked for: status
        polls must not drag megabytes out of the database.
        """
        with self.sessions() as s:
            row = s.scalar(_GET_JOB[with_result, with_params], {"b_job_id": job_id})
        if row is None or (instance_id is not None and row.instance_id != instance_id):
            return None
        return row

    def list_jobs(self, f: JobFilters, *, with_params: bool = False) -> tuple[list[Job], int]:
        """One page of jobs and the exact number of matches (ignoring limit/offset)."""
        conds = [Job.instance_id == f.instance_id]
        if f.backend:
            conds.append(Job.backend == f.backend)
        if f.pending is True:
            conds.append(Job.state.in_((protocol.QUEUED, protocol.RUNNING)))
        elif f.pending is False:
            conds.append(Job.state.in_(tuple(FINAL_STATES)))
        if f.program:
            conds.append(Job.program_id == f.program)
        if f.session_id:
            conds.append(Job.session_id == f.session_id)
        if f.created_after is not None:
            conds.append(Job.created >= f.created_after)
        if f.created_before is not None:
            conds.append(Job.created <= f.created_before)
        for tag in f.tags or ():
            conds.append(self._has_tag(tag))
        order = Job.seq.asc() if f.ascending else Job.seq.desc()
        with self.sessions() as s:
            count = s.scalar(select(func.count()).select_from(Job).where(*conds)) or 0
            rows = list(
                s.scalars(select(Job).where(*conds).order_by(order).offset(f.offset).limit(f.limit))
            )
        return rows, int(count)

    def _has_tag(self, tag: str) -> Any:
        """A condition: the job's tags hold exactly ``tag`` (case-sensitive, no substrings).

        Tags are stored as compact JSON lists (``["a","b"]``). With the brackets replaced by
        commas (``,"a","b",``), an element is exactly ``,<JSON string>,``: inside a JSON string
        every quote is escaped, so an unescaped ``,"`` can only open an element and ``",`` only
        close one; ``tags=y`` never matches a job tagged ``x","y``. ``instr``/``strpos`` compare
        bytes (SQLite's ``LIKE`` would ignore ASCII case).
        """
        needle = "," + orjson.dumps(tag).decode() + ","
        inner = func.substr(Job.tags, 2, func.length(Job.tags) - 2)
        wrapped = literal(",").concat(inner).concat(",")
        find = func.strpos if self.engine.dialect.name == "postgresql" else func.instr
        return find(wrapped, needle) > 0

    def set_tags(self, job_id: str, tags: list[str]) -> None:
        """Replace a job's tags."""
        with self.sessions.begin() as s:
            s.execute(update(Job).where(Job.id == job_id).values(tags=orjson.dumps(tags).decode()))

    def delete_job(self, job_id: str) -> bool:
        """Delete a job in a final state (False if it is not final any more / absent)."""
        with self.sessions.begin() as s:
            row = s.scalar(select(Job).where(Job.id == job_id))
            if row is None or row.state not in FINAL_STATES:
                return False
            path = row.result_file
            s.delete(row)
        if path:
            try:
                os.unlink(path)
            except OSError:
                pass
        return True

    def transition(
        self,
        job_id: str,
        from_states: Iterable[str],
        to_state: str,
        *,
        log: str | None = None,
        owner: str | None = None,
        **values: Any,
    ) -> bool:
        """Move a job between states if (and only if) it is in one of ``from_states``.

        With ``owner``, only if the job is also claimed by that replica (a replica whose lease
        expired and was taken over cannot record a second outcome). Leaving Running for Queued
        drops the claim. On PostgreSQL the change is announced (``NOTIFY``) in the same
        transaction, so waiters on every replica wake (:mod:`.notify`).
        """
        now = time.time()
        vals: dict[str, Any] = {"state": to_state, **values}
        if to_state == protocol.RUNNING:
            vals.setdefault("running_at", now)
        if to_state == protocol.QUEUED:
            vals.setdefault("claimed_by", None)
            vals.setdefault("lease_expires_at", None)
        if to_state in FINAL_STATES:
            vals.setdefault("finished_at", now)
            vals.setdefault("lease_expires_at", None)
        if any(isinstance(v, ClauseElement) for v in vals.values()):  # an SQL expression
            return self._transition_expr(job_id, from_states, vals, now, log, owner)
        binds = {f"b_{name}": value for name, value in vals.items()}
        binds["b_job_id"] = job_id
        if log:
            binds["b_log"] = f"{_stamp(now)} {log}\n"
        if owner is not None:
            binds["b_owner"] = owner
        stmt = _transition_statement(tuple(vals), tuple(from_states), bool(log), owner is not None)
        with self.engine.begin() as conn:  # a Core transaction: no ORM session to set up
            res = conn.execute(stmt, binds)
            changed = bool(getattr(res, "rowcount", 0))
            if changed:
                self._announce(conn, [job_id])
            return changed

    def _transition_expr(
        self,
        job_id: str,
        from_states: Iterable[str],
        vals: dict[str, Any],
        now: float,
        log: str | None,
        owner: str | None,
    ) -> bool:
        """:meth:`transition` with SQL expressions among the values: built for this call."""
        if log:
            vals["logs"] = Job.logs + f"{_stamp(now)} {log}\n"
        conds = [Job.id == job_id, Job.state.in_(tuple(from_states))]
        if owner is not None:
            conds.append(Job.claimed_by == owner)
        with self.engine.begin() as conn:
            res = conn.execute(update(Job).where(*conds).values(**vals))
            changed = bool(getattr(res, "rowcount", 0))
            if changed:
                self._announce(conn, [job_id])
            return changed

    # ------------------------------------------------------------ replicas, leases
    @property
    def can_notify(self) -> bool:
        """Whether state changes are announced to other processes (PostgreSQL ``NOTIFY``)."""
        return self.engine.dialect.name == "postgresql"

    def _announce(self, s: Session | Connection, job_ids: Iterable[str]) -> None:
        """``pg_notify`` each changed job (delivered when the transaction commits)."""
        if not self.can_notify:
            return
        for job_id in job_ids:
            s.execute(select(func.pg_notify(NOTIFY_CHANNEL, job_id)))

    def claim(self, job_id: str, owner: str, lease_seconds: float) -> bool:
        """Claim a Queued job for replica ``owner`` (Queued → Running), atomically.

        On PostgreSQL the row is locked with ``SELECT … FOR UPDATE SKIP LOCKED`` first, so a
        replica claiming at the same moment skips it instead of waiting; the guarded ``UPDATE``
        (``WHERE state = 'Queued'``) makes the claim exactly-once on SQLite and PostgreSQL alike.
        """
        now = time.time()
        with self.engine.begin() as s:  # a Core transaction: no ORM session to set up
            if self.engine.dialect.name == "postgresql":
                locked = s.scalar(
                    select(Job.id)
                    .where(Job.id == job_id, Job.state == protocol.QUEUED)
                    .with_for_update(skip_locked=True)
                )
                if locked is None:
                    return False
            res = s.execute(
                _CLAIM,
                {
                    "b_job_id": job_id,
                    "b_now": now,
                    "b_owner": owner,
                    "b_lease": now + lease_seconds,
                    "b_log": f"{_stamp(now)} running (on {owner})\n",
                },
            )
            changed = bool(getattr(res, "rowcount", 0))
            if changed:
                self._announce(s, [job_id])
            return changed

    def renew_leases(self, owner: str, job_ids: Iterable[str], lease_seconds: float) -> set[str]:
        """Extend ``owner``'s leases on its in-flight jobs; returns the ids it still holds.

        A job missing from the answer is no longer Running under ``owner`` (cancelled on another
        replica, or re-queued after its lease expired): its worker should be stopped.
        """
        ids = tuple(job_ids)
        if not ids:
            return set()
        now = time.time()
        cond = (Job.id.in_(ids), Job.state == protocol.RUNNING, Job.claimed_by == owner)
        with self.sessions.begin() as s:
            s.execute(
                update(Job).where(*cond).values(lease_expires_at=now + lease_seconds),
                execution_options=_NO_SYNC,
            )
            return set(s.scalars(select(Job.id).where(*cond)))

    def running_owners(self) -> set[str]:
        """The replicas that hold Running jobs now."""
        with self.sessions() as s:
            rows = s.scalars(
                select(Job.claimed_by)
                .where(Job.state == protocol.RUNNING, Job.claimed_by.is_not(None))
                .distinct()
            )
            return {r for r in rows if r}

    def requeue_expired(self, owners: Iterable[str] = ()) -> int:
        """Put back in the queue the Running jobs no live replica holds.

        That is: jobs whose lease expired (their replica died or hung), jobs without a lease
        (left Running by a release before leases), and jobs claimed by one of ``owners`` (a
        replica known to be gone: this process' earlier incarnation). Each job runs again, once.
        """
        now = time.time()
        gone = tuple(owners)
        held = _LEASE_GONE if not gone else or_(_LEASE_GONE, Job.claimed_by.in_(gone))
        with self.sessions.begin() as s:
            ids = list(
                s.scalars(select(Job.id).where(Job.state == protocol.RUNNING, held), {"b_now": now})
            )
            if not ids:
                return 0
            res = s.execute(
                update(Job)
                .where(Job.id.in_(ids), Job.state == protocol.RUNNING, held)
                .values(
                    state=protocol.QUEUED,
                    running_at=None,
                    claimed_by=None,
                    lease_expires_at=None,
                    logs=Job.logs
                    + f"{_stamp(now)} its server replica stopped holding it; job re-queued\n",
                ),
                {"b_now": now},
            )
            self._announce(s, ids)
            return int(getattr(res, "rowcount", 0) or 0)

    def save_result(self, job_id: str, body: bytes) -> dict[str, Any]:
        """Column values that store ``body`` (inline, or a file for large bodies)."""
        if len(body) <= self.config.result_inline_bytes:
            return {"result": body, "result_file": None}
        # a name of its own per write: a replica whose claim was taken over must never
        # overwrite the file of the one that recorded the outcome
        path = Path(self.config.results_dir) / f"{job_id}-{secrets.token_hex(4)}.json"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return {"result": None, "result_file": str(path)}

    @staticmethod
    def read_result(job: Job) -> bytes | None:
        """A job's stored result body, if any."""
        if job.result is not None:
            return bytes(job.result)
        if job.result_file:
            try:
                return Path(job.result_file).read_bytes()
            except OSError:
                return None
        return None

    def queued_jobs(self, limit: int, exclude: Iterable[str] = ()) -> list[QueuedJob]:
        """The oldest Queued jobs (FIFO), without their params."""
        excl = tuple(exclude)
        cols = _QUEUED_COLUMNS
        with self.sessions() as s:
            q = select(*cols).where(Job.state == protocol.QUEUED)
            if excl:
                q = q.where(Job.id.not_in(excl))
            return [QueuedJob(*row) for row in s.execute(q.order_by(Job.seq.asc()).limit(limit))]

    def queued_heads(self, per_instance: int, exclude: Iterable[str] = ()) -> list[QueuedJob]:
        """The first ``per_instance`` Queued jobs of every instance, without their params.

        Within an instance, jobs of a session come first (a session is interactive work someone
        waits on), then submission order. The dispatcher serves instances round-robin from these
        heads; each job is still claimed by its guarded Queued → Running transition, so a job is
        handed out once even when several dispatchers share the database.
        """
        excl = tuple(exclude)
        q = _QUEUED_HEADS_EXCLUDING if excl else _QUEUED_HEADS
        binds: dict[str, Any] = {"per_instance": per_instance}
        if excl:
            binds["exclude"] = list(excl)
        with self.engine.connect() as conn:
            return [QueuedJob(*row) for row in conn.execute(q, binds)]

    def queued_count(self, instance_id: str) -> int:
        """How many Queued jobs an instance has (its per-instance queue limit)."""
        with self.engine.connect() as conn:
            return int(conn.execute(QUEUED_COUNT, {"b_instance_id": instance_id}).scalar() or 0)

    def job_params(self, job_id: str) -> bytes | None:
        """The stored params JSON of a job."""
        with self.engine.connect() as conn:
            return conn.execute(_JOB_PARAMS, {"b_job_id": job_id}).scalar()

    def running_jobs(self) -> list[Job]:
        """Every job marked Running."""
        with self.sessions() as s:
            return list(s.scalars(select(Job).where(Job.state == protocol.RUNNING)))

    def requeue_running(self) -> int:
        """After a restart: whatever was Running goes back to Queued (it runs again, once)."""
        now = time.time()
        with self.sessions.begin() as s:
            res = s.execute(
                update(Job)
                .where(Job.state == protocol.RUNNING)
                .values(
                    state=protocol.QUEUED,
                    running_at=None,
                    claimed_by=None,
                    lease_expires_at=None,
                    logs=Job.logs + f"{_stamp(now)} server restarted; job re-queued\n",
                )
            )
            return int(getattr(res, "rowcount", 0) or 0)

    def queued_counts_by_backend(self) -> dict[str, int]:
        """How many jobs are Queued per backend (backends without any are absent)."""
        with self.sessions() as s:
            rows = s.execute(
                select(Job.backend, func.count())
                .where(Job.state == protocol.QUEUED)
                .group_by(Job.backend)
            )
            return {name: int(n) for name, n in rows}

    def consume_results(self, job_id: str) -> bool:
        """Mark a job's results handed out, once: True only for the first call (private jobs).

        One guarded ``UPDATE ... WHERE results_consumed_at IS NULL``: of two concurrent readers
        of a private job's results exactly one wins.
        """
        with self.sessions.begin() as s:
            res = s.execute(
                update(Job)
                .where(Job.id == job_id, Job.results_consumed_at.is_(None))
                .values(results_consumed_at=time.time())
            )
            return bool(getattr(res, "rowcount", 0))

    def queue_position(self, job: Job) -> int:
        """How many Queued jobs are ahead of ``job``."""
        with self.sessions() as s:
            return int(
                s.scalar(
                    select(func.count())
                    .select_from(Job)
                    .where(Job.state == protocol.QUEUED, Job.seq < job.seq)
                )
                or 0
            )

    def usage_seconds(self, instance_id: str, since: float) -> float:
        """Usage (seconds) of an instance's jobs finished since ``since``."""
        with self.sessions() as s:
            val = s.scalar(
                select(func.coalesce(func.sum(Job.usage_seconds), 0.0)).where(
                    Job.instance_id == instance_id, Job.created >= since
                )
            )
        return float(val or 0.0)

    # ------------------------------------------------------------------ sessions
    def add_session(self, row: SessionRow) -> SessionRow:
        """Insert a session."""
        with self.sessions.begin() as s:
            s.add(row)
        return row

    def get_session(self, session_id: str, instance_id: str | None = None) -> SessionRow | None:
        """A session; ``None`` if absent or owned by another instance."""
        with self.sessions() as s:
            row = s.get(SessionRow, session_id)
        if row is None or (instance_id is not None and row.instance_id != instance_id):
            return None
        return row

    def update_session(self, session_id: str, **values: Any) -> None:
        """Set columns of a session."""
        with self.sessions.begin() as s:
            s.execute(update(SessionRow).where(SessionRow.id == session_id).values(**values))

    def session_job_states(self, session_id: str) -> dict[str, int]:
        """Count of the session's jobs per state."""
        with self.sessions() as s:
            rows = s.execute(
                select(Job.state, func.count())
                .where(Job.session_id == session_id)
                .group_by(Job.state)
            )
            return {state: int(n) for state, n in rows}

    def session_usage(self, session_id: str) -> float:
        """Total usage seconds of a session's jobs."""
        with self.sessions() as s:
            val = s.scalar(
                select(func.coalesce(func.sum(Job.usage_seconds), 0.0)).where(
                    Job.session_id == session_id
                )
            )
        return float(val or 0.0)

    def queued_job_ids_of_session(self, session_id: str) -> list[str]:
        """Ids of a session's Queued jobs."""
        with self.sessions() as s:
            return list(
                s.scalars(
                    select(Job.id).where(Job.session_id == session_id, Job.state == protocol.QUEUED)
                )
            )

    # -------------------------------------------------------------------- API tokens
    def api_tokens(self) -> list[tuple[ApiToken, str]]:
        """Every API token row with its instance's ``hub/group/project``, oldest first.

        The rows carry salted hashes only; callers show ids, never secrets.
        """
        with self.sessions() as s:
            rows = s.execute(
                select(ApiToken, Instance.hgp)
                .join(Instance, Instance.id == ApiToken.instance_id)
                .order_by(ApiToken.created, ApiToken.id)
            ).all()
        return [(row, hgp) for row, hgp in rows]

    def api_tokens_with_prefix(self, prefix: str) -> list[ApiToken]:
        """API token rows whose id starts with ``prefix`` (what an operator types)."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self.sessions() as s:
            return list(
                s.scalars(select(ApiToken).where(ApiToken.id.like(escaped + "%", escape="\\")))
            )

    def revoke_api_token(self, token_id: str) -> bool:
        """Revoke an API token and every access token / JWT issued from it, in one transaction.

        Returns:
            ``True`` if the token existed and was active, ``False`` otherwise.
        """
        with self.sessions.begin() as s:
            res = s.execute(
                update(ApiToken)
                .where(ApiToken.id == token_id, ApiToken.revoked.is_(False))
                .values(revoked=True)
            )
            changed = getattr(res, "rowcount", 0)
            s.execute(
                update(AccessToken)
                .where(AccessToken.api_token_id == token_id, AccessToken.revoked.is_(False))
                .values(revoked=True)
            )
        return bool(changed)

    def api_token_active(self, token_id: str) -> bool:
        """Whether the API token ``token_id`` exists and is not revoked (one primary-key read).

        The authenticator asks this on every request it answers from its cache, so a token
        revoked by another process (``qiskit-rest-provider tokens revoke``) fails at once.
        """
        with self.engine.connect() as conn:
            revoked = conn.execute(_TOKEN_REVOKED, {"token_id": token_id}).scalar_one_or_none()
        return revoked is not None and not revoked


#: Built once (every dispatcher heartbeat asks): a Running job's lease is gone.
_LEASE_GONE = or_(Job.lease_expires_at.is_(None), Job.lease_expires_at < bindparam("b_now"))

#: Built once: this runs on every authenticated request, and building it costs more than running it.
_TOKEN_REVOKED = select(ApiToken.revoked).where(ApiToken.id == bindparam("token_id"))


def _job_statement(with_result: bool, with_params: bool) -> Any:
    q = select(Job).where(Job.id == bindparam("b_job_id"))
    if not with_result:
        q = q.options(defer(Job.result, raiseload=True))
    if not with_params:
        q = q.options(defer(Job.params, raiseload=True))
    return q


# The hot path's statements are built once, with bound parameters: building (and hashing) an ORM
# statement costs several times what SQLite takes to run it (bind names carry a ``b_`` prefix:
# an UPDATE reserves the column names for its SET clause).
#: :meth:`Store.get_job` by (with_result, with_params): every status poll and results read.
_GET_JOB = {(r, p): _job_statement(r, p) for r in (False, True) for p in (False, True)}
_JOB_ID_WITH_KEY = select(Job.id).where(
    Job.instance_id == bindparam("b_instance_id"), Job.idempotency_key == bindparam("b_key")
)
_JOB_WITH_KEY = (
    select(Job)
    .where(Job.instance_id == bindparam("b_instance_id"), Job.idempotency_key == bindparam("b_key"))
    .options(defer(Job.result, raiseload=True), defer(Job.params, raiseload=True))
)
#: An instance's Queued jobs (:meth:`Store.queued_count`; the quota guard runs it in the job's
#: insert transaction). Found through the index on ``state`` (Queued rows are few), not the
#: instance's (which holds its whole history: SQLite's planner picks that one, and the count then
#: grows with every job the instance ever ran; measured 0.47 against 0.06 ms CPU with 5,000
#: jobs); ``|| ''`` keeps the planner off the instance index on SQLite and PostgreSQL alike.
QUEUED_COUNT = (
    select(func.count())
    .select_from(Job)
    .where(Job.state == protocol.QUEUED, Job.instance_id + "" == bindparam("b_instance_id"))
)
_INSERT_JOB = insert(Job)
_JOB_COLUMNS = frozenset(c.key for c in Job.__table__.columns) - {"seq"}
#: The columns' scalar defaults (``private``, ``tags``, ``logs``, ...).
_JOB_DEFAULTS = {
    c.key: c.default.arg
    for c in Job.__table__.columns
    if c.default is not None and c.default.is_scalar and c.key in _JOB_COLUMNS
}


def _insert_values(job: Job) -> dict[str, Any]:
    """The values of a Core ``INSERT`` of ``job``, as the ORM's unit of work would insert them.

    The ORM's flush costs more than the statement itself, so the hot path inserts with Core.
    Like the ORM: an attribute that is unset or ``None`` is left out, so the column's default
    (else NULL) applies; and the object gets the defaults, as a flushed object would.
    """
    values = {k: v for k, v in job.__dict__.items() if k in _JOB_COLUMNS and v is not None}
    for key, default in _JOB_DEFAULTS.items():
        if key not in values:
            setattr(job, key, default)
    return values


_JOB_PARAMS = select(Job.params).where(Job.id == bindparam("b_job_id"))
_CLAIM = (
    update(Job)
    .where(Job.id == bindparam("b_job_id"), Job.state == protocol.QUEUED)
    .values(
        state=protocol.RUNNING,
        running_at=bindparam("b_now"),
        claimed_by=bindparam("b_owner"),
        lease_expires_at=bindparam("b_lease"),
        logs=Job.logs + bindparam("b_log"),
    )
)
_TRANSITIONS: dict[tuple[Any, ...], Any] = {}


def _transition_statement(
    columns: tuple[str, ...], from_states: tuple[str, ...], log: bool, owner: bool
) -> Any:
    """The guarded ``UPDATE`` of :meth:`Store.transition` for one shape of call, built once.

    The shapes are the call sites' (a few dozen at most); values are bound as ``b_<column>``,
    ``b_log`` (appended to the log) and ``b_owner``.
    """
    key = (columns, from_states, log, owner)
    stmt = _TRANSITIONS.get(key)
    if stmt is None:
        values: dict[str, Any] = {c: bindparam(f"b_{c}") for c in columns}
        if log:
            values["logs"] = Job.logs + bindparam("b_log")
        conds = [Job.id == bindparam("b_job_id"), Job.state.in_(from_states)]
        if owner:
            conds.append(Job.claimed_by == bindparam("b_owner"))
        stmt = update(Job).where(*conds).values(**values)
        if len(_TRANSITIONS) < 512:  # bounded, should a caller ever vary its columns freely
            _TRANSITIONS[key] = stmt
    return stmt


#: Hot-path ``UPDATE``s run in sessions that hold no loaded objects: nothing to synchronise
#: (the ORM's default evaluates the ``WHERE`` against the session's objects first).
_NO_SYNC = {"synchronize_session": False}


_QUEUED_COLUMNS = (
    Job.id,
    Job.program_id,
    Job.backend,
    Job.cost,
    Job.session_id,
    Job.attempts,
    Job.instance_id,
)
"""The columns of :class:`QueuedJob`, in its field order."""


def _queued_heads_statement(excluding: bool) -> Any:
    """:meth:`Store.queued_heads` as one statement with bound parameters, built once.

    The dispatcher runs it on every look at the queue; building the window query each time
    cost more than running it.
    """
    rank = (
        func.row_number()
        .over(
            partition_by=Job.instance_id,
            order_by=(case((Job.session_id.is_(None), 1), else_=0), Job.seq.asc()),
        )
        .label("rank")
    )
    inner = select(*_QUEUED_COLUMNS, rank).where(Job.state == protocol.QUEUED)
    if excluding:
        inner = inner.where(Job.id.not_in(bindparam("exclude", expanding=True)))
    sub = inner.subquery()
    return (
        select(*(sub.c[c.key] for c in _QUEUED_COLUMNS))
        .where(sub.c.rank <= bindparam("per_instance"))
        .order_by(sub.c.instance_id, sub.c.rank)
    )


_QUEUED_HEADS = _queued_heads_statement(False)
_QUEUED_HEADS_EXCLUDING = _queued_heads_statement(True)


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}Z"


def dumps_text(obj: Any) -> str:
    """JSON text (orjson, numpy aware)."""
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY).decode()


__all__ = ["JobFilters", "Session", "Store", "dumps_text", "make_engine", "new_id"]
