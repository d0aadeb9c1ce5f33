"""Transpile tasks in the job store (table ``transpile_tasks``, migration 0004).

A task is ``PENDING`` until the dispatcher claims it (``STARTED``, with this replica's id and a
lease, exactly like a Running job), then ends ``SUCCESS``, ``FAILURE`` or ``CANCELLED`` once:
every change is one ``UPDATE ... WHERE state IN (...)`` guarded on the previous state, so a cancel
racing with the dispatcher or a time limit can never record two outcomes. The tasks' SQL lives
here, beside :mod:`.store` (whose engine and sessions it uses), so the jobs' store stays as it was.

Replicas on one PostgreSQL hear of tasks as they hear of jobs (:mod:`.notify`): every state
change is announced (``pg_notify`` on :data:`~.store.NOTIFY_CHANNEL`, payload the task id, in the
changing transaction), so a long-poll on one replica wakes when another finishes the task and a
cancel reaches the replica running it at once; and a task becoming PENDING (submitted, put back)
is announced as :data:`TASK_PENDING`, on which every replica's dispatcher looks at the tasks'
queue now, so an idle replica claims a task submitted to a busy one without waiting for its
periodic look.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import bindparam, delete, func, or_, select, update

from .models import TranspileTaskRow
from .store import QueuedJob, Store

__all__ = [
    "TASK_PENDING",
    "CANCELLED",
    "FAILURE",
    "FINAL",
    "PENDING",
    "STARTED",
    "SUCCESS",
    "QueuedTranspileTask",
    "TranspileStore",
]

PENDING = "PENDING"
STARTED = "STARTED"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
CANCELLED = "CANCELLED"
FINAL = (SUCCESS, FAILURE, CANCELLED)

PROGRAM_ID = "transpile"
"""What a task is called among the queue's jobs (``QueuedJob.program_id``)."""


@dataclass
class QueuedTranspileTask(QueuedJob):
    """A PENDING transpile task as the dispatcher's queue sees it (beside Queued jobs)."""

    time_limit: float = 0.0


_HEAD_COLUMNS = (
    TranspileTaskRow.id,
    TranspileTaskRow.backend,
    TranspileTaskRow.attempts,
    TranspileTaskRow.instance_id,
    TranspileTaskRow.time_limit,
)


TASK_PENDING = "transpile-task-pending"
"""Payload announced when a task becomes PENDING (no job or task id looks like it)."""


class TranspileStore:
    """Transactional access to the ``transpile_tasks`` table of a :class:`~.store.Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ------------------------------------------------------------------ requests
    def add(self, row: TranspileTaskRow) -> TranspileTaskRow:
        """Insert a PENDING task (announced to every replica, :data:`TASK_PENDING`)."""
        with self.store.sessions.begin() as s:
            s.add(row)
            self.store._announce(s, [TASK_PENDING])
        return row

    def get(self, task_id: str, instance_id: str | None = None) -> TranspileTaskRow | None:
        """A task; ``None`` if absent or another instance's."""
        with self.store.sessions() as s:
            row = s.scalar(select(TranspileTaskRow).where(TranspileTaskRow.id == task_id))
        if row is None or (instance_id is not None and row.instance_id != instance_id):
            return None
        return row

    def state(self, task_id: str) -> str | None:
        """A task's state only (cheap: the long-poll's re-reads)."""
        with self.store.sessions() as s:
            return s.scalar(select(TranspileTaskRow.state).where(TranspileTaskRow.id == task_id))

    def unfinished_count(self, instance_id: str) -> int:
        """How many PENDING or STARTED tasks an instance has."""
        with self.store.sessions() as s:
            return int(
                s.scalar(
                    select(func.count())
                    .select_from(TranspileTaskRow)
                    .where(
                        TranspileTaskRow.instance_id == instance_id,
                        TranspileTaskRow.state.in_((PENDING, STARTED)),
                    )
                )
                or 0
            )

    def forget_finished(self, before: float) -> int:
        """Delete the tasks that finished before ``before`` (their results expired)."""
        with self.store.sessions.begin() as s:
            res = s.execute(
                delete(TranspileTaskRow).where(
                    TranspileTaskRow.state.in_(FINAL), TranspileTaskRow.finished_at < before
                )
            )
            return int(getattr(res, "rowcount", 0) or 0)

    # ---------------------------------------------------------------- dispatcher
    def queued_heads(self, per_instance: int, exclude: Iterable[str] = ()) -> list[QueuedJob]:
        """The first ``per_instance`` PENDING tasks of every instance, oldest first."""
        excl = tuple(exclude)
        rank = (
            func.row_number()
            .over(partition_by=TranspileTaskRow.instance_id, order_by=TranspileTaskRow.seq.asc())
            .label("rank")
        )
        inner = select(*_HEAD_COLUMNS, rank).where(TranspileTaskRow.state == PENDING)
        if excl:
            inner = inner.where(TranspileTaskRow.id.not_in(excl))
        sub = inner.subquery()
        q = (
            select(*(sub.c[c.key] for c in _HEAD_COLUMNS))
            .where(sub.c.rank <= per_instance)
            .order_by(sub.c.instance_id, sub.c.rank)
        )
        with self.store.sessions() as s:
            return [
                QueuedTranspileTask(
                    id=task_id,
                    program_id=PROGRAM_ID,
                    backend=backend or "",
                    cost=None,
                    session_id=None,
                    attempts=attempts,
                    instance_id=instance_id,
                    time_limit=float(limit),
                )
                for task_id, backend, attempts, instance_id, limit in s.execute(q)
            ]

    def claim(self, task_id: str, owner: str, lease_seconds: float) -> bool:
        """PENDING → STARTED for ``owner`` with a lease; False if someone else got it first."""
        now = time.time()
        with self.store.sessions.begin() as s:
            res = s.execute(
                update(TranspileTaskRow)
                .where(TranspileTaskRow.id == task_id, TranspileTaskRow.state == PENDING)
                .values(
                    state=STARTED,
                    started_at=now,
                    claimed_by=owner,
                    lease_expires_at=now + lease_seconds,
                )
            )
            claimed = bool(getattr(res, "rowcount", 0))
            if claimed:
                self.store._announce(s, [task_id])
            return claimed

    def request(self, task_id: str) -> dict[str, Any] | None:
        """The stored request of a task (JSON object)."""
        with self.store.sessions() as s:
            raw = s.scalar(select(TranspileTaskRow.request).where(TranspileTaskRow.id == task_id))
        return None if raw is None else orjson.loads(raw)

    def transition(
        self,
        task_id: str,
        from_states: Iterable[str],
        to_state: str,
        *,
        owner: str | None = None,
        **values: Any,
    ) -> bool:
        """Move a task between states if (and only if) it is in one of ``from_states``.

        With ``owner``, only while that replica still holds its claim. Back to PENDING drops the
        claim; a final state records ``finished_at``.
        """
        now = time.time()
        vals: dict[str, Any] = {"state": to_state, **values}
        if to_state == PENDING:
            vals.update(claimed_by=None, lease_expires_at=None, started_at=None)
        if to_state in FINAL:
            vals.setdefault("finished_at", now)
            vals.setdefault("lease_expires_at", None)
        conds = [TranspileTaskRow.id == task_id, TranspileTaskRow.state.in_(tuple(from_states))]
        if owner is not None:
            conds.append(TranspileTaskRow.claimed_by == owner)
        with self.store.sessions.begin() as s:
            res = s.execute(update(TranspileTaskRow).where(*conds).values(**vals))
            changed = bool(getattr(res, "rowcount", 0))
            if changed:  # waiters on every replica wake; a task back in the queue is claimable
                self.store._announce(
                    s, [task_id, TASK_PENDING] if to_state == PENDING else [task_id]
                )
            return changed

    def renew_leases(self, owner: str, task_ids: Iterable[str], lease_seconds: float) -> set[str]:
        """Extend ``owner``'s leases on its STARTED tasks; returns the ids it still holds."""
        ids = tuple(task_ids)
        if not ids:
            return set()
        now = time.time()
        cond = (
            TranspileTaskRow.id.in_(ids),
            TranspileTaskRow.state == STARTED,
            TranspileTaskRow.claimed_by == owner,
        )
        with self.store.sessions.begin() as s:
            s.execute(
                update(TranspileTaskRow).where(*cond).values(lease_expires_at=now + lease_seconds)
            )
            return set(s.scalars(select(TranspileTaskRow.id).where(*cond)))

    def running_owners(self) -> set[str]:
        """The replicas that hold STARTED tasks now."""
        with self.store.sessions() as s:
            rows = s.scalars(
                select(TranspileTaskRow.claimed_by)
                .where(TranspileTaskRow.state == STARTED, TranspileTaskRow.claimed_by.is_not(None))
                .distinct()
            )
            return {r for r in rows if r}

    def requeue_expired(self, owners: Iterable[str] = ()) -> int:
        """STARTED tasks no live replica holds go back to PENDING (the rule of jobs).

        Those whose lease expired, and those claimed by one of ``owners`` (replicas known gone:
        this process' earlier incarnation, dead processes on this host).
        """
        now = time.time()
        gone = tuple(owners)
        held = _EXPIRED if not gone else or_(_EXPIRED, TranspileTaskRow.claimed_by.in_(gone))
        with self.store.sessions.begin() as s:
            # a read first: the dispatcher asks on every heartbeat, and an UPDATE would take
            # the store's write lock each time, though there is almost never anything to do
            ids = list(s.scalars(select(TranspileTaskRow.id).where(_STARTED, held), {"b_now": now}))
            if not ids:
                return 0
            res = s.execute(
                update(TranspileTaskRow)
                .where(TranspileTaskRow.id.in_(ids), _STARTED, held)
                .values(state=PENDING, started_at=None, claimed_by=None, lease_expires_at=None),
                {"b_now": now},
            )
            count = int(getattr(res, "rowcount", 0) or 0)
            if count:
                self.store._announce(s, [TASK_PENDING])
            return count


#: Built once (the heartbeat asks on every tick): a STARTED task whose lease is gone.
_STARTED = TranspileTaskRow.state == STARTED
_EXPIRED = or_(
    TranspileTaskRow.lease_expires_at.is_(None),
    TranspileTaskRow.lease_expires_at < bindparam("b_now"),
)
