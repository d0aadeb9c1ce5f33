"""``qiskit-rest-provider quotas list|set|clear``: per-instance quotas of a server's data dir.

Like ``tokens``, the commands work on the store directly (the server may be running: a change
holds from the next submission on). A value is a number ``>= 0`` (``0`` admits nothing),
``unlimited`` or ``default`` (follow the server's ``serve`` flag).

Example::

    qiskit-rest-provider quotas set local/default/main --max-shots-per-day 100000 --data-dir D
    qiskit-rest-provider quotas list --data-dir D
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

QUOTA_FLAGS = (
    (
        "--max-queued-jobs",
        "max_queued_jobs",
        "queued jobs at once (default: --max-queued-per-instance)",
    ),
    ("--max-shots-per-day", "max_shots_per_day", "shots submitted per UTC day"),
    ("--max-seconds-per-day", "max_seconds_per_day", "simulation seconds per UTC day"),
)


def add_quota_commands(sub: Any) -> None:
    """Register ``quotas list|set|clear``."""
    quotas = sub.add_parser(
        "quotas",
        help="list, set or clear the per-instance quotas of a data dir",
        description="Per-instance quotas in a server's store: queued jobs, shots per day, "
        "seconds per day. Values: a number >= 0, 'unlimited' or 'default' (the serve flag).",
    )
    store_args = argparse.ArgumentParser(add_help=False)
    store_args.add_argument(
        "--data-dir", default="./qiskit-rest-data", help="the server's data dir"
    )
    store_args.add_argument("--db", default=None, help="SQLAlchemy URL if the store is not SQLite")
    actions = quotas.add_subparsers(dest="action", required=True)
    listing = actions.add_parser(
        "list", parents=[store_args], help="every instance's quotas and today's usage"
    )
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    setting = actions.add_parser("set", parents=[store_args], help="set an instance's quotas")
    setting.add_argument("instance", metavar="INSTANCE", help="hub/group/project")
    for flag, dest, text in QUOTA_FLAGS:
        setting.add_argument(flag, dest=dest, default=None, metavar="VALUE", help=text)
    clearing = actions.add_parser(
        "clear", parents=[store_args], help="back to the server's defaults"
    )
    clearing.add_argument("instance", metavar="INSTANCE", help="hub/group/project")


class _QuotaError(Exception):
    """A quota command failure: one ``error:`` line, exit status 1."""


def _open_store(args: argparse.Namespace) -> Any:
    from .server.config import ServerConfig
    from .server.jobs.store import Store

    config = ServerConfig(data_dir=args.data_dir, db_url=args.db)
    if args.db is None and not config.db_path.exists():
        raise _QuotaError(f"no store in {args.data_dir} (is it a server's --data-dir?)")
    return Store(config)


def _shown(value: float | None) -> str:
    if value is None:
        return "default"
    if value < 0:
        return "unlimited"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _list(store: Any, as_json: bool) -> int:
    from .server.jobs import quota_store
    from .server.jobs.quotas import day_window

    now_start, _ = day_window(time.time())
    own = {row.instance_id: row for row in quota_store.list_quotas(store)}
    rows: list[dict[str, Any]] = []
    for instance_id, hgp in quota_store.instances(store):
        row = own.get(instance_id)
        rows.append(
            {
                "instance": hgp,
                **{name: _shown(getattr(row, name) if row else None) for _, name, _ in QUOTA_FLAGS},
                "today": {
                    "queued_jobs": store.queued_count(instance_id),
                    "shots": quota_store.shots_since(store, instance_id, now_start),
                    "seconds": round(store.usage_seconds(instance_id, now_start), 3),
                },
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    from .cli_format import table

    table(
        [
            (
                r["instance"],
                f"{r['today']['queued_jobs']} / {r['max_queued_jobs']}",
                f"{r['today']['shots']} / {r['max_shots_per_day']}",
                f"{r['today']['seconds']:g} / {r['max_seconds_per_day']}",
            )
            for r in rows
        ],
        ("INSTANCE", "QUEUED / MAX", "SHOTS TODAY / MAX", "SECONDS TODAY / MAX"),
        sys.stdout,
    )
    print("default = the server's serve flag (--max-queued-per-instance, --max-shots-per-day, ...)")
    return 0


def _instance_id(store: Any, hgp: str) -> str:
    from .server.config import split_hgp
    from .server.jobs import quota_store

    try:
        split_hgp(hgp)
    except ValueError as exc:
        raise _QuotaError(str(exc)) from None
    instance_id = quota_store.instance_id_of(store, hgp)
    if instance_id is None:
        raise _QuotaError(f"no instance {hgp!r} in this store (see `quotas list`)")
    return str(instance_id)


def _quotas(args: argparse.Namespace) -> int:
    from .server.jobs import quota_store
    from .server.jobs.quotas import parse_limit

    store = _open_store(args)
    try:
        if args.action == "list":
            return _list(store, args.json)
        instance_id = _instance_id(store, args.instance)
        if args.action == "clear":
            had = quota_store.clear_quota(store, instance_id)
            what = "cleared its quotas" if had else "it had no quotas of its own"
            print(f"{args.instance}: {what}; it follows the server's defaults.")
            return 0
        values: dict[str, Any] = {}
        for flag, name, _ in QUOTA_FLAGS:
            raw = getattr(args, name)
            if raw is None:
                continue
            try:
                values[name] = parse_limit(name, raw)
            except ValueError as exc:
                raise _QuotaError(f"{flag}: {exc}") from None
        if not values:
            flags = ", ".join(flag for flag, _, _ in QUOTA_FLAGS)
            raise _QuotaError(f"nothing to set: give at least one of {flags}")
        quota_store.set_quota(store, instance_id, **values)
        row = quota_store.get_quota(store, instance_id)
        shown = ", ".join(f"{name} {_shown(getattr(row, name))}" for _, name, _ in QUOTA_FLAGS)
        print(f"{args.instance}: {shown}")
        return 0
    finally:
        store.close()


def run_quota_command(args: argparse.Namespace) -> int:
    """Run ``quotas ...``; failures are one ``error:`` line and exit status 1."""
    try:
        return _quotas(args)
    except _QuotaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
