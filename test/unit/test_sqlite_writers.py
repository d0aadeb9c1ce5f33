"""The SQLite store's writers queue in the process (``store._SqliteWriters``), on a real database.

A write transaction takes the process' write lock at its first write and hands it on however it
ends (commit, rollback, a connection returned to the pool mid-transaction, an invalidated one):
a second writer waits for it instead of sleeping in SQLite's busy handler, and no way out of a
transaction leaves the lock behind.
"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from qiskit_rest_provider.server.config import ServerConfig
from qiskit_rest_provider.server.jobs import store as store_module
from qiskit_rest_provider.server.jobs.store import Store


@pytest.fixture
def store(tmp_path):
    config = ServerConfig(data_dir=tmp_path)
    config.prepare_data_dir()
    s = Store(config)
    yield s
    s.close()


def _writers(store: Store) -> store_module._SqliteWriters:
    """The engine's writers' queue (its commit hook holds it)."""
    cells = store.engine.dialect.do_commit.__closure__ or ()
    return next(
        c.cell_contents for c in cells if isinstance(c.cell_contents, store_module._SqliteWriters)
    )


def _write(conn, value: str) -> None:
    conn.execute(text("INSERT INTO users (id, name, created) VALUES (:v, :v, 0)"), {"v": value})


def test_the_lock_is_held_from_the_first_write_to_the_end_of_the_transaction(store):
    writers = _writers(store)
    with store.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        assert writers._owner is None  # a read takes nothing
        _write(conn, "a")
        assert writers._owner is not None
        conn.commit()
        assert writers._owner is None
        _write(conn, "b")
        conn.rollback()
        assert writers._owner is None
        _write(conn, "c")
    # returned to the pool mid-transaction: the pool's rollback hands the lock on
    assert writers._owner is None
    conn = store.engine.connect()
    _write(conn, "d")
    conn.invalidate()  # a broken connection: its transaction is gone, and so is the lock
    assert writers._owner is None
    conn.close()
    with store.engine.connect() as check:
        names = {r[0] for r in check.execute(text("SELECT id FROM users"))}
    assert names == {"a"}  # committed; b rolled back, c and d ended without a commit


def test_a_second_writer_waits_for_the_first_and_then_writes(store):
    order: list[str] = []
    first_wrote, let_go = threading.Event(), threading.Event()

    def first() -> None:
        with store.engine.connect() as conn:
            _write(conn, "first")
            first_wrote.set()
            assert let_go.wait(30)
            order.append("first commits")
            conn.commit()

    def second() -> None:
        assert first_wrote.wait(30)
        with store.engine.connect() as conn:
            _write(conn, "second")  # waits here for the first transaction
            order.append("second wrote")
            conn.commit()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    assert first_wrote.wait(30)
    time.sleep(0.3)  # the second writer is blocked meanwhile (it has not written)
    assert order == []
    let_go.set()
    for t in threads:
        t.join(30)
    assert order == ["first commits", "second wrote"]
    with store.engine.connect() as check:
        names = {r[0] for r in check.execute(text("SELECT id FROM users"))}
    assert {"first", "second"} <= names
