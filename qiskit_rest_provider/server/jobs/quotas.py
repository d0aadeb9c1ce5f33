"""Per-instance quotas: queued jobs at once, shots per day, (simulated) seconds per day.

Each instance follows the server's defaults (``serve --max-queued-per-instance``,
``--max-shots-per-day``, ``--max-seconds-per-day``) unless an administrator set its own
(``qiskit-rest-provider quotas set``, or the dashboard's ``/ui/admin/quotas``), stored in the job
store (:mod:`.quota_store`). A stored ``-1`` means "no limit" for that instance; ``0`` admits
nothing (a way to suspend an instance).

They are checked at submission only, by the job routes: :func:`check_queue` before the params
are parsed (early, unlocked: a flood over the queue quota costs no parsing), then
:func:`submission_guard` in the transaction that inserts the job, under a lock on the instance
(check and insert are atomic: concurrent submissions, also on two replicas of one database,
never both take the last slot). The instance's quota row is read once. A refused job
answers **429** with ``Retry-After`` (seconds until the quota frees up) and a D10 body whose
error item carries ``quota``: its ``name``, the ``used`` amount, the ``limit``, what the job
``requested`` and when it ``resets_at`` (ISO 8601, UTC; ``null`` for the queue).

The day is the UTC calendar day. Shots are counted as admission counts them: shots x parameter
sets summed over the PUBs (estimator: the shots behind each PUB's precision; executor and noise
learner: shots x bound circuits); jobs cancelled or failed before running count nothing.
Seconds are the jobs' usage seconds (simulation time), counted when a job finishes, so a
running job's seconds count only afterwards: the seconds quota stops new jobs once the
instance has spent its day's seconds, it never stops a job midway.

Example:
    >>> day_window(86400 * 3 + 5)
    (259200.0, 345600.0)
"""

from __future__ import annotations

import calendar
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np

from ...wire import protocol
from ..http import ApiError, iso
from . import quota_store
from .quota_store import QuotaRow

UNLIMITED = -1
"""Stored value meaning "no limit for this instance", whatever the server's default."""

QUOTAS = ("max_queued_jobs", "max_shots_per_day", "max_seconds_per_day")
"""The quota names, as the API, the CLI and the error bodies spell them."""


@dataclass(frozen=True)
class Quota:
    """One quota of one instance, resolved: its limit (``None``: none) and where it comes from."""

    name: str
    limit: float | None
    source: str  # "instance" (its own) or "server" (the serve flag)
    used: float = 0

    def as_json(self) -> dict[str, Any]:
        """``{"limit", "used", "source"}`` (integers where the quota counts things)."""
        integral = self.name != "max_seconds_per_day"
        limit = self.limit
        return {
            "limit": int(limit) if integral and limit is not None else limit,
            "used": int(self.used) if integral else round(float(self.used), 3),
            "source": self.source,
        }


def day_window(now: float) -> tuple[float, float]:
    """The UTC day holding ``now``: ``(start, end)`` in epoch seconds."""
    t = time.gmtime(now)
    start = float(calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0)))
    return start, start + 86400.0


def _server_default(config: Any, name: str) -> float | None:
    if name == "max_queued_jobs":
        return int(config.max_queued_per_instance)
    value = getattr(config, name, 0) or 0
    return value if value > 0 else None  # 0: no server-wide limit


def resolve(config: Any, row: QuotaRow | None, name: str) -> Quota:
    """The quota ``name`` of an instance whose stored row is ``row``."""
    own = getattr(row, name) if row is not None else None
    if own is None:
        return Quota(name, _server_default(config, name), "server")
    return Quota(name, None if own < 0 else own, "instance")


def job_shots(prepared: Any) -> int:
    """The shots a prepared job will take (what the daily shot quota counts)."""
    if prepared.shots is not None:
        return int(prepared.shots)
    total = 0
    for i, pub in enumerate(prepared.pubs):
        sets = max(int(np.prod(pub.parameter_values.shape, dtype=np.int64)), 1)
        if prepared.program_id == protocol.SAMPLER:
            total += int(pub.shots) * sets
        elif i < len(prepared.pub_shots):
            total += int(prepared.pub_shots[i]) * sets
    return total


def _refuse(quota: Quota, requested: float, end: float | None, message: str, code: str) -> NoReturn:
    retry = max(1, math.ceil(end - time.time())) if end is not None else 5
    details = {**quota.as_json(), "name": quota.name, "requested": requested}
    details["resets_at"] = iso(end) if end is not None else None
    raise ApiError(
        429, message, code=code, headers={"Retry-After": str(retry)}, details={"quota": details}
    )


def check_queue(st: Any, caller: Any) -> QuotaRow | None:
    """429 ``queue_limit_reached`` if the instance already has its most queued jobs.

    An early, unlocked check (before the params are parsed); :func:`submission_guard` checks
    again where it counts, in the job's insert transaction. Returns the instance's quota row,
    for :func:`submission_guard` (one read per submission).
    """
    row = quota_store.get_quota(st.store, caller.instance_id)
    quota = resolve(st.config, row, "max_queued_jobs")
    if quota.limit is None:
        return row
    _check_queued(quota, st.store.queued_count(caller.instance_id), caller)
    return row


def _check_queued(quota: Quota, queued: int, caller: Any) -> None:
    if quota.limit is None or queued < quota.limit:
        return
    where = (
        f"this server allows {int(quota.limit)} per instance (--max-queued-per-instance)"
        if quota.source == "server"
        else f"its quota max_queued_jobs is {int(quota.limit)} (`qiskit-rest-provider quotas`)"
    )
    _refuse(
        Quota(quota.name, quota.limit, quota.source, queued),
        1,
        None,
        f"instance {caller.instance_hgp} already has {queued} queued jobs; {where}. "
        "Wait for some to finish.",
        "queue_limit_reached",
    )


def has_daily_limits(config: Any, row: QuotaRow | None) -> bool:
    """Whether the instance has a daily quota (else :func:`check_daily` has nothing to do)."""
    return any(
        resolve(config, row, name).limit is not None
        for name in ("max_shots_per_day", "max_seconds_per_day")
    )


def check_daily(st: Any, caller: Any, shots: int, row: QuotaRow | None) -> None:
    """429 ``quota_exceeded``: ``shots`` more pass the day's shots, or its seconds are spent.

    Unlocked (two submissions may both pass it for the last shots): submissions use
    :func:`submission_guard`, which checks in the job's insert transaction.
    """
    _check_daily(
        st.config,
        caller,
        shots,
        row,
        lambda start: quota_store.shots_since(st.store, caller.instance_id, start),
        lambda start: st.store.usage_seconds(caller.instance_id, start),
    )


def _check_daily(
    config: Any,
    caller: Any,
    shots: int,
    row: QuotaRow | None,
    shots_since: Callable[[float], int],
    seconds_since: Callable[[float], float],
) -> None:
    shots_quota = resolve(config, row, "max_shots_per_day")
    seconds_quota = resolve(config, row, "max_seconds_per_day")
    if shots_quota.limit is None and seconds_quota.limit is None:
        return
    start, end = day_window(time.time())
    resets = f"it resets at {iso(end)} (UTC midnight)"
    if shots_quota.limit is not None:
        used = shots_since(start)
        if used + shots > shots_quota.limit:
            alone = (
                " (more than the whole day's quota: split it)" if shots > shots_quota.limit else ""
            )
            _refuse(
                Quota(shots_quota.name, shots_quota.limit, shots_quota.source, used),
                shots,
                end,
                f"quota max_shots_per_day of instance {caller.instance_hgp} exceeded: "
                f"{used} of {int(shots_quota.limit)} shots used today and this job asks for "
                f"{shots}{alone}; {resets}",
                "quota_exceeded",
            )
    if seconds_quota.limit is not None:
        spent = seconds_since(start)
        if spent >= seconds_quota.limit:
            _refuse(
                Quota(seconds_quota.name, seconds_quota.limit, seconds_quota.source, spent),
                0,
                end,
                f"quota max_seconds_per_day of instance {caller.instance_hgp} exceeded: "
                f"{spent:.3f} of {seconds_quota.limit:g} seconds used today; {resets}",
                "quota_exceeded",
            )


def submission_guard(
    st: Any, caller: Any, shots: int, row: QuotaRow | None
) -> Callable[[Any], None] | None:
    """The instance's quota checks, to run inside the transaction that inserts its job.

    Check and insert are one step: the guard first locks the instance
    (:func:`.quota_store.lock_instance`: a row lock on PostgreSQL, the write lock on SQLite), then
    counts the queued jobs and the day's shots and seconds in the same transaction, so two
    submissions — in one server or in two replicas on one database — can never both take the
    last slot: the second waits for the first's commit and counts its job. ``None`` when the
    instance has no limit at all (nothing to lock).

    Raises (when called):
        ApiError: 429, as :func:`check_queue` and :func:`check_daily`; the insert is rolled back.
    """
    queue = resolve(st.config, row, "max_queued_jobs")
    if queue.limit is None and not has_daily_limits(st.config, row):
        return None
    instance_id = caller.instance_id

    def guard(s: Any) -> None:
        quota_store.lock_instance(s, instance_id)
        if queue.limit is not None:
            _check_queued(queue, quota_store.queued_in(s, instance_id), caller)
        _check_daily(
            st.config,
            caller,
            shots,
            row,
            lambda start: quota_store.shots_in(s, instance_id, start),
            lambda start: quota_store.seconds_in(s, instance_id, start),
        )

    return guard


def instance_usage(store: Any, config: Any, instance_id: str, hgp: str) -> dict[str, Any]:
    """An instance's quotas with today's use of each (REST, CLI and dashboard show this)."""
    start, end = day_window(time.time())
    row = quota_store.get_quota(store, instance_id)
    used = {
        "max_queued_jobs": store.queued_count(instance_id),
        "max_shots_per_day": quota_store.shots_since(store, instance_id, start),
        "max_seconds_per_day": store.usage_seconds(instance_id, start),
    }
    quotas = {}
    for name in QUOTAS:
        q = resolve(config, row, name)
        quotas[name] = Quota(name, q.limit, q.source, used[name]).as_json()
    return {
        "instance": hgp,
        "period": {"start": iso(start), "end": iso(end)},
        "resets_at": iso(end),
        "quotas": quotas,
    }


def parse_limit(name: str, value: str) -> int | float | None:
    """A quota value as an admin writes it: a number ``>= 0``, ``unlimited`` or ``default``.

    Returns the stored value: the number, :data:`UNLIMITED` or ``None`` (the server's default).

    Raises:
        ValueError: naming the quota and the value.

    Example:
        >>> parse_limit("max_shots_per_day", "1000"), parse_limit("max_queued_jobs", "unlimited")
        (1000, -1)
    """
    text = value.strip().lower()
    if text == "default":
        return None
    if text in ("unlimited", "none"):
        return UNLIMITED
    try:
        number = float(text) if name == "max_seconds_per_day" else int(text)
    except ValueError:
        kind = "a number of seconds" if name == "max_seconds_per_day" else "a whole number"
        raise ValueError(
            f"{name}: expected {kind} >= 0, 'unlimited' or 'default', got {value!r}"
        ) from None
    most = 2**31 - 1 if name == "max_queued_jobs" else 2**62
    if not (math.isfinite(number) and number >= 0) or number > most:
        raise ValueError(f"{name}: expected a value >= 0, 'unlimited' or 'default', got {value!r}")
    return number
