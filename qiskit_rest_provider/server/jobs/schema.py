"""The store's schema: Alembic migrations applied on start, under a lock, 0.1.0 stores included.

A fresh database is built by the migrations; one made by 0.1.0 (its tables, no
``alembic_version``) is checked column by column, stamped ``0001`` and upgraded; one at head is
left alone; anything else is refused with :class:`SchemaError` and left untouched. The check and
the migration run in one transaction under a lock (a transaction-level advisory lock on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so servers starting together migrate once.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect, pool, text
from sqlalchemy.engine import Connection, Engine, make_url

from .models import Base

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- the schema
def migrations_dir() -> Path:
    """The Alembic script directory shipped in the package (``server/jobs/migrations``).

    Found from the top-level package rather than from this file, so it stays right wherever
    inside ``server/`` the store module lives.
    """
    top = importlib.import_module(__name__.partition(".")[0])
    return Path(str(top.__file__)).resolve().parent / "server" / "jobs" / "migrations"


# The tables and columns qiskit-rest-provider 0.1.0 made with ``create_all`` (revision 0001): a
# database without an ``alembic_version`` table is stamped 0001 only if it matches this exactly.
_V010_COLUMNS: dict[str, frozenset[str]] = {
    table: frozenset(columns.split())
    for table, columns in {
        "users": "id name created",
        "instances": "id hgp crn created",
        "api_tokens": "id user_id instance_id salt hash created revoked",
        "access_tokens": "id kind api_token_id salt hash created expires revoked",
        "sessions": "id instance_id user_id backend mode max_ttl interactive_ttl accepting_jobs "
        "closed state_reason created activated_at closed_at last_job_started last_job_completed",
        "jobs": "seq id instance_id user_id backend program_id params state reason reason_code "
        "tags session_id log_level cost private created running_at finished_at logs result "
        "result_file metrics idempotency_key usage_seconds quantum_seconds attempts",
    }.items()
}
_V010_REVISION = "0001"
# pg_advisory_xact_lock(classid, objid): this constant plus a hash of the schema in use, so
# servers sharing a database but not a schema (the test fixtures' search_path) do not wait on
# each other. Released by the migration transaction's commit or rollback, crash included.
_PG_LOCK_CLASS = 0x51525053  # "QRPS"


class SchemaError(RuntimeError):
    """The database's schema cannot be brought to this release's (told how, never guessed)."""


@dataclass(frozen=True)
class SchemaChange:
    """What opening a store did to its database's schema.

    Attributes:
        before: the revision found (``None``: an empty database; ``"0001"`` also for an
            unversioned 0.1.0 database, then ``stamped`` is True).
        after: the revision now (always the head).
        stamped: the database was made by 0.1.0 (no version table) and was stamped 0001.
    """

    before: str | None
    after: str
    stamped: bool = False

    @property
    def changed(self) -> bool:
        """Whether any migration ran."""
        return self.before != self.after


def _alembic_config(connection: Connection | None = None) -> Any:
    """An Alembic ``Config`` made in code: the packaged scripts, no ``alembic.ini``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()).replace("%", "%%"))
    cfg.attributes["target_metadata"] = Base.metadata
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision of the packaged migrations."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package ships its migrations
        raise SchemaError(f"no Alembic migrations found in {migrations_dir()}")
    return head


def _current_revision(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def _is_memory_sqlite(url: str) -> bool:
    u = make_url(url)
    return u.get_backend_name() == "sqlite" and u.database in (None, "", ":memory:")


def _locked_migration_engine(engine: Engine) -> tuple[Engine, bool]:
    """The engine to migrate through and whether it is a throwaway one to dispose.

    SQLite: a one-connection engine whose transactions start with ``BEGIN IMMEDIATE`` (the
    pysqlite driver otherwise begins lazily, at the first write, so two processes could both
    find the schema old): the second process waits on the file lock (busy timeout 30 s), then
    finds the work done. Other databases: the store's own engine (PostgreSQL takes an advisory
    lock in the transaction).
    """
    url = engine.url.render_as_string(hide_password=False)
    if engine.dialect.name != "sqlite" or _is_memory_sqlite(url):
        return engine, False
    mig = create_engine(
        url,
        poolclass=pool.NullPool,
        connect_args={"check_same_thread": False, "timeout": 30},
    )

    @event.listens_for(mig, "connect")
    def _manual_transactions(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the driver stops issuing BEGIN by itself
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(mig, "begin")
    def _begin_immediate(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return mig, True


def _check_v010_tables(conn: Connection, present: set[str]) -> None:
    """Refuse to stamp a version-less database unless it is exactly 0.1.0's schema."""
    missing = sorted(set(_V010_COLUMNS) - present)
    if missing:
        raise SchemaError(
            f"the database has some of the store's tables but not {', '.join(missing)}, and no "
            "alembic_version table: it was not made by qiskit-rest-provider (0.1.0 or later); "
            "use an empty database or the data dir it belongs to"
        )
    insp = inspect(conn)
    for table, expected in _V010_COLUMNS.items():
        found = {col["name"] for col in insp.get_columns(table)}
        if found != expected:
            extra, lacking = sorted(found - expected), sorted(expected - found)
            raise SchemaError(
                f"table {table!r} does not match the schema of qiskit-rest-provider 0.1.0 "
                f"(unexpected columns: {extra or 'none'}; missing: {lacking or 'none'}) and "
                "the database has no alembic_version table, so it cannot be upgraded safely"
            )


def upgrade_schema(engine: Engine) -> SchemaChange:
    """Bring the database behind ``engine`` to the newest schema revision, once.

    * empty database: every migration runs (the tables are made by them, never by
      ``create_all``);
    * made by 0.1.0 (the store's tables, no ``alembic_version``): checked against revision
      0001, stamped 0001, then upgraded;
    * already at the head: nothing.

    Everything happens in one transaction holding a lock (PostgreSQL: a transaction-level
    advisory lock; SQLite: ``BEGIN IMMEDIATE``), so of two processes starting together one
    migrates and the other then finds the head. PostgreSQL's DDL is transactional: a failed
    migration leaves the database as it was.

    Raises:
        SchemaError: a revision this release does not know (the data dir was upgraded by a newer
            one) or version-less tables that are not 0.1.0's.
    """
    from alembic import command

    head = head_revision()
    mig_engine, throwaway = _locked_migration_engine(engine)
    try:
        with mig_engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    text(
                        "SELECT pg_advisory_xact_lock("
                        ":cls, hashtext(coalesce(current_schema(), '')))"
                    ),
                    {"cls": _PG_LOCK_CLASS},
                )
            before = _current_revision(conn)
            stamped = False
            if before is None:
                present = set(inspect(conn).get_table_names()) & set(_V010_COLUMNS)
                if present:
                    _check_v010_tables(conn, present)
                    command.stamp(_alembic_config(conn), _V010_REVISION)
                    before, stamped = _V010_REVISION, True
            if before == head:
                return SchemaChange(before, head, stamped)
            if before is not None and not _known_revision(before):
                raise SchemaError(
                    f"the store's schema is at revision {before!r}, which this release "
                    f"(newest revision {head!r}) does not know: it was upgraded by a newer "
                    "qiskit-rest-provider; run that release (downgrades are not supported)"
                )
            command.upgrade(_alembic_config(conn), "head")
    finally:
        if throwaway:
            mig_engine.dispose()
    change = SchemaChange(before, head, stamped)
    if before is None:
        logger.info("created store schema at revision %s", head)
    else:
        logger.info(
            "upgraded store schema from %s to %s%s",
            before,
            head,
            " (the store had no version stamp: made by 0.1.0)" if stamped else "",
        )
    return change


def _known_revision(rev: str) -> bool:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_alembic_config())
    return any(s.revision == rev for s in script.walk_revisions())


def schema_revision(engine: Engine) -> str | None:
    """The database's schema revision without changing anything (``None``: not versioned).

    A database made by 0.1.0 answers ``None`` too: tell it from an empty one with
    :func:`store_tables`.
    """
    with engine.connect() as conn:
        return _current_revision(conn)


def store_tables(engine: Engine) -> set[str]:
    """Which of the store's tables (those of 0.1.0) the database holds."""
    with engine.connect() as conn:
        return set(inspect(conn).get_table_names()) & set(_V010_COLUMNS)
