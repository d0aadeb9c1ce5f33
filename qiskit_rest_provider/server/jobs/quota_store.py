"""The SQL of per-instance quotas (table ``instance_quotas``, column ``jobs.shots``: 0005).

Kept beside :mod:`.store` (which it borrows its sessions from) so the quota feature stays in two
small modules: this one reads and writes, :mod:`.quotas` decides.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, not_, select

from ...wire import protocol
from .models import Instance, InstanceQuota, Job
from .store import QUEUED_COUNT

#: Jobs that ended without running used no shots: they do not count against the daily quota.
_NEVER_RAN = (protocol.CANCELLED, protocol.FAILED)


@dataclass(frozen=True)
class QuotaRow:
    """An instance's own quotas as stored (``None``: the server's default; ``-1``: no limit)."""

    instance_id: str
    instance: str  # hub/group/project ("" where read by id alone)
    max_queued_jobs: int | None
    max_shots_per_day: int | None
    max_seconds_per_day: float | None
    updated: float


def _row(q: Any, hgp: str) -> QuotaRow:
    return QuotaRow(
        q.instance_id,
        hgp,
        q.max_queued_jobs,
        q.max_shots_per_day,
        q.max_seconds_per_day,
        q.updated,
    )


def get_quota(store: Any, instance_id: str) -> QuotaRow | None:
    """The instance's quota row, or ``None`` (all server defaults). One primary-key read."""
    with store.engine.connect() as conn:  # Core: the submission path reads this every time
        q = conn.execute(_GET_QUOTA, {"b_instance_id": instance_id}).first()
    return _row(q, "") if q is not None else None


_GET_QUOTA = select(
    InstanceQuota.instance_id,
    InstanceQuota.max_queued_jobs,
    InstanceQuota.max_shots_per_day,
    InstanceQuota.max_seconds_per_day,
    InstanceQuota.updated,
).where(InstanceQuota.instance_id == bindparam("b_instance_id"))


def list_quotas(store: Any) -> list[QuotaRow]:
    """Every instance's quota row, by instance name."""
    with store.sessions() as s:
        rows = s.execute(
            select(InstanceQuota, Instance.hgp)
            .join(Instance, Instance.id == InstanceQuota.instance_id)
            .order_by(Instance.hgp)
        ).all()
    return [_row(q, hgp) for q, hgp in rows]


def instances(store: Any) -> list[tuple[str, str]]:
    """``(instance id, hub/group/project)`` of every instance, by name."""
    with store.sessions() as s:
        return [
            (i, h) for i, h in s.execute(select(Instance.id, Instance.hgp).order_by(Instance.hgp))
        ]


def instance_id_of(store: Any, hgp: str) -> str | None:
    """The id of instance ``hgp``, or ``None`` if no token ever named it."""
    with store.sessions() as s:
        return s.scalar(select(Instance.id).where(Instance.hgp == hgp))


def set_quota(store: Any, instance_id: str, **values: Any) -> None:
    """Set some of an instance's quota columns (others keep their value; a new row: NULL)."""
    allowed = {"max_queued_jobs", "max_shots_per_day", "max_seconds_per_day"}
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"unknown quota {sorted(unknown)[0]!r}")
    with store.sessions.begin() as s:
        row = s.get(InstanceQuota, instance_id)
        if row is None:
            row = InstanceQuota(instance_id=instance_id, updated=time.time())
            s.add(row)
        for key, value in values.items():
            setattr(row, key, value)
        row.updated = time.time()


def clear_quota(store: Any, instance_id: str) -> bool:
    """Remove an instance's quotas (back to the server's defaults); whether it had any."""
    with store.sessions.begin() as s:
        res = s.execute(delete(InstanceQuota).where(InstanceQuota.instance_id == instance_id))
        return bool(getattr(res, "rowcount", 0))


def shots_since(store: Any, instance_id: str, since: float) -> int:
    """Shots of the instance's jobs created since ``since``, but those that ended unrun."""
    with store.sessions() as s:
        return shots_in(s, instance_id, since)


# ------------------------------------------------------------------ inside a job's insert
def lock_instance(s: Any, instance_id: str) -> None:
    """Serialize the instance's submissions until ``s`` commits (its quota check and insert).

    Must be the transaction's first statement. PostgreSQL: ``SELECT ... FOR UPDATE`` on the
    instance's row (other instances' submissions go on in parallel). SQLite ignores ``FOR
    UPDATE``; there the transaction is opened with ``BEGIN IMMEDIATE``, which takes the
    database's write lock at once: a concurrent submission waits (busy timeout) before it reads
    anything, so it counts what this one inserted.
    """
    if s.get_bind().dialect.name == "sqlite":
        s.connection().exec_driver_sql("BEGIN IMMEDIATE")
    else:
        s.execute(select(Instance.id).where(Instance.id == instance_id).with_for_update())


def queued_in(s: Any, instance_id: str) -> int:
    """The instance's Queued jobs, read in session ``s`` (:data:`.store.QUEUED_COUNT`)."""
    return int(s.execute(QUEUED_COUNT, {"b_instance_id": instance_id}).scalar() or 0)


def _shots_since_query(instance_id: str, since: float) -> Any:
    return select(func.coalesce(func.sum(Job.shots), 0)).where(
        Job.instance_id == instance_id,
        Job.created >= since,
        not_(and_(Job.state.in_(_NEVER_RAN), Job.running_at.is_(None))),
    )


def shots_in(s: Any, instance_id: str, since: float) -> int:
    """:func:`shots_since`, read in session ``s``."""
    return int(s.scalar(_shots_since_query(instance_id, since)) or 0)


def seconds_in(s: Any, instance_id: str, since: float) -> float:
    """Usage seconds of the instance's jobs created since ``since``, read in session ``s``."""
    val = s.scalar(
        select(func.coalesce(func.sum(Job.usage_seconds), 0.0)).where(
            Job.instance_id == instance_id, Job.created >= since
        )
    )
    return float(val or 0.0)
