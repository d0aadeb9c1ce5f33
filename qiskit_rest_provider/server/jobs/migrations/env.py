"""Alembic environment of the server's store.

The store runs the migrations itself on start-up (``Store.__init__``) and hands its own
connection in ``config.attributes["connection"]``, already inside the transaction that holds the
migration lock; this file then only binds Alembic to that connection. Without one (a developer
running ``alembic -x ...`` by hand against a URL in ``sqlalchemy.url``) it makes a throwaway
engine. Nothing here imports the server, so Alembic can load it from any copy of the package.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
target_metadata = config.attributes.get("target_metadata")


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite: ALTER becomes copy-and-move, the same script serves both
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit the SQL of the migrations (``alembic upgrade --sql``) instead of running it."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Migrate through the caller's connection, or a throwaway one to ``sqlalchemy.url``."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(str(config.get_main_option("sqlalchemy.url")), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
