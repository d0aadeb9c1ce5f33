"""The client subcommands of ``qiskit-rest-provider``: accounts, backends, jobs, results.

They resolve the account exactly like ``ProviderService()`` (arguments > ``QISKIT_REST_*``
environment variables > the saved default account), with ``--url``, ``--token``, ``--instance``,
``--channel`` and ``--account`` as the arguments. Nothing here imports the server half, so the
commands work with only the client installed.

Every failure of the service (unknown id, server down, bad credentials) ends the command with a
one-line ``error: ...`` on stderr and exit status 1; a bad command line exits with 2 (argparse).

Example::

    qiskit-rest-provider save-account --url http://127.0.0.1:8000 --token TOKEN --set-as-default
    qiskit-rest-provider backends --no-simulator --min-qubits 5
    qiskit-rest-provider jobs --state Completed --since 2026-01-01 --limit 5
    qiskit-rest-provider job JOB_ID --wait
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TextIO

from .cli_format import (
    backend_summary,
    dump_json,
    fmt,
    job_state,
    print_job,
    result_summary,
    status_name,
    table,
)

if TYPE_CHECKING:  # pragma: no cover
    from .service import ProviderService

#: Job states the service reports (protocol §3.7), as the ``--state`` choices.
JOB_STATES = ("Queued", "Running", "Completed", "Failed", "Cancelled")
_FINAL = frozenset({"Completed", "Failed", "Cancelled"})
#: Seconds of each long-poll while ``job --wait`` follows a job (progress is redrawn after each).
WAIT_POLL_SECONDS = 2.0


class CommandError(Exception):
    """A failure to report as one ``error:`` line with exit status 1 (no traceback)."""


# ----------------------------------------------------------------------------- arguments
def connection_parser() -> argparse.ArgumentParser:
    """Options every client command takes: where the service is and who is calling."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("account (default: QISKIT_REST_* variables, saved account)")
    group.add_argument("--url", default=None, help="service root, e.g. http://127.0.0.1:8000")
    group.add_argument("--token", default=None, help="API key / API token")
    group.add_argument("--instance", default=None, help="instance CRN or hub/group/project")
    group.add_argument(
        "--channel", default=None, choices=["ibm_quantum_platform", "ibm_cloud", "ibm_quantum"]
    )
    group.add_argument("--account", default=None, metavar="NAME", help="a saved account's name")
    return parent


def _date(value: str) -> datetime:
    """``YYYY-MM-DD`` or an ISO-8601 date-time; naive values are local time."""
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date (2026-01-31) or ISO date-time (2026-01-31T12:00), got {value!r}"
        ) from None


def _state(value: str) -> str:
    for state in JOB_STATES:
        if state.lower() == value.strip().lower():
            return state
    raise argparse.ArgumentTypeError(f"expected one of {', '.join(JOB_STATES)}, got {value!r}")


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def _verify(value: str) -> bool | str:
    low = value.strip().lower()
    if low in ("true", "yes", "1", "on"):
        return True
    if low in ("false", "no", "0", "off"):
        return False
    return value  # a CA bundle path


def add_client_commands(sub: Any) -> None:
    """Register the client subcommands on the ``qiskit-rest-provider`` subparsers."""
    conn = connection_parser()

    save = sub.add_parser(
        "save-account",
        help="save an account for later commands and ProviderService()",
        description="Save an account (mode 0600), like ProviderService.save_account(...).",
    )
    save.add_argument("--token", required=True, help="API key / API token")
    save.add_argument("--url", default=None, help="service root, e.g. http://127.0.0.1:8000")
    save.add_argument("--instance", default=None, help="instance CRN or hub/group/project")
    save.add_argument(
        "--channel",
        default=None,
        choices=["ibm_quantum_platform", "ibm_cloud", "ibm_quantum"],
        help="default ibm_quantum_platform; needed explicitly to save IBM's cloud without --url",
    )
    save.add_argument("--name", default=None, help="the account's name (default 'default')")
    save.add_argument("--set-as-default", action="store_true", help="make it the default account")
    save.add_argument("--overwrite", action="store_true", help="replace an account of that name")
    save.add_argument(
        "--verify", type=_verify, default=True, help="TLS: true, false or a CA bundle path"
    )
    save.add_argument(
        "--proxies", type=json.loads, default=None, help='JSON, e.g. {"https": "http://p:3128"}'
    )
    save.add_argument("--iam-url", default=None, help="IAM root of the platform channel")
    save.add_argument("--filename", default=None, help="accounts file instead of the default")

    backends = sub.add_parser("backends", parents=[conn], help="list the instance's backends")
    backends.add_argument(
        "--simulator",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="only simulators (--simulator) or only devices (--no-simulator)",
    )
    backends.add_argument("--min-qubits", type=_positive, default=None, metavar="N")
    backends.add_argument(
        "--operational",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="only online backends (--no-operational: only the others)",
    )
    backends.add_argument("--json", action="store_true", help="print the listing as JSON")

    backend = sub.add_parser(
        "backend", parents=[conn], help="one backend: qubits, basis gates, error summary"
    )
    backend.add_argument("name")
    backend.add_argument("--json", action="store_true", help="print the summary as JSON")

    jobs = sub.add_parser("jobs", parents=[conn], help="list jobs, newest first")
    jobs.add_argument("--backend", default=None)
    jobs.add_argument(
        "--state",
        type=_state,
        action="append",
        default=None,
        help="repeatable: " + "|".join(JOB_STATES),
    )
    jobs.add_argument("--session", default=None, metavar="SESSION_ID")
    jobs.add_argument("--tag", action="append", default=None, help="repeatable: jobs with all")
    jobs.add_argument("--program", default=None, choices=["sampler", "estimator"])
    jobs.add_argument(
        "--since", type=_date, default=None, help="created at or after (date or date-time)"
    )
    jobs.add_argument(
        "--until", type=_date, default=None, help="created before (a date includes that day)"
    )
    jobs.add_argument("--limit", type=_positive, default=20, help="at most N jobs (default 20)")
    jobs.add_argument("--json", action="store_true", help="print the job documents as JSON")

    job = sub.add_parser("job", parents=[conn], help="one job: status, timestamps, queue, usage")
    job.add_argument("job_id", metavar="ID")
    job.add_argument("--wait", action="store_true", help="show live progress until it is final")
    job.add_argument(
        "--timeout", type=float, default=None, help="with --wait: give up after S seconds"
    )
    job.add_argument("--json", action="store_true", help="print the job and metrics as JSON")

    result = sub.add_parser("result", parents=[conn], help="a completed job's result summary")
    result.add_argument("job_id", metavar="ID")
    result.add_argument("--json", action="store_true", help="print the raw result document")

    logs = sub.add_parser("logs", parents=[conn], help="a job's log text")
    logs.add_argument("job_id", metavar="ID")

    cancel = sub.add_parser("cancel", parents=[conn], help="cancel a queued or running job")
    cancel.add_argument("job_id", metavar="ID")


CLIENT_COMMANDS = ("save-account", "backends", "backend", "jobs", "job", "result", "logs", "cancel")


# ------------------------------------------------------------------------------- helpers
def _service(args: argparse.Namespace) -> ProviderService:
    from .service import ProviderService

    # One-shot commands: a short read timeout, the default retry policy (a refused connection
    # to a server that never answered fails in about a second, naming the URL).
    return ProviderService(
        channel=args.channel,
        url=args.url,
        token=args.token,
        instance=args.instance,
        name=args.account,
        timeout=30.0,
        app_name="cli",
    )


# ------------------------------------------------------------------------------ commands
def save_account(args: argparse.Namespace, out: TextIO) -> int:
    """``save-account``: store an account without contacting the service."""
    from .account import config_file
    from .service import ProviderService

    if args.url is None and args.channel is None:
        raise CommandError(
            "save-account needs --url (e.g. the Base URL printed by `qiskit-rest-provider "
            "serve`); pass --channel ibm_quantum_platform to save IBM Quantum's cloud instead"
        )
    name = ProviderService.save_account(
        token=args.token,
        url=args.url,
        instance=args.instance,
        channel=args.channel or "ibm_quantum_platform",
        name=args.name,
        set_as_default=args.set_as_default,
        overwrite=args.overwrite,
        verify=args.verify,
        proxies=args.proxies,
        iam_url=args.iam_url,
        filename=args.filename,
    )
    print(f"Saved account {name!r} to {config_file(args.filename)}", file=out)
    return 0


def backends(args: argparse.Namespace, out: TextIO) -> int:
    """``backends``: one ``GET /backends``, filtered like ``ProviderService.backends``."""
    service = _service(args)
    found = service.backends(
        min_num_qubits=args.min_qubits, simulator=args.simulator, operational=args.operational
    )
    if args.json:
        dump_json([b.listing for b in found], out)
        return 0
    rows = []
    for b in found:
        listing = b.listing
        rows.append(
            (
                b.name,
                b.num_qubits,
                "yes" if b.simulator else "no",
                status_name(listing.get("status")),
                listing.get("queue_length"),
            )
        )
    table(rows, ("NAME", "QUBITS", "SIMULATOR", "STATUS", "QUEUE"), out)
    return 0


def backend(args: argparse.Namespace, out: TextIO) -> int:
    """``backend NAME``: configuration + properties turned into a Target, summarised."""
    service = _service(args)
    found = service.backend(args.name)
    for listed in service.backends(name=args.name):  # status and queue from the listing
        found = listed
    summary = backend_summary(found)
    if args.json:
        dump_json(summary, out)
        return 0
    s = summary
    lines = [
        ("Backend", s["name"]),
        ("Qubits", s["num_qubits"]),
        ("Simulator", "yes" if s["simulator"] else "no"),
        ("Status", s["status"] or "-"),
        ("Queue", "-" if s["queue_length"] is None else s["queue_length"]),
        ("Basis gates", ", ".join(s["basis_gates"])),
        ("Control flow", ", ".join(s["control_flow"]) or "-"),
        ("Coupled pairs", s["coupled_pairs"]),
        ("Median 1q error", fmt(s["median_1q_error"])),
        ("Median 2q error", fmt(s["median_2q_error"])),
        ("Median readout error", fmt(s["median_readout_error"])),
        ("Median T1", fmt(s["median_t1_s"], 1e6, " us")),
        ("Median T2", fmt(s["median_t2_s"], 1e6, " us")),
        ("Max shots", s["max_shots"] if s["max_shots"] is not None else "-"),
    ]
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        print(f"{key + ':':<{width + 1}} {value}", file=out)
    return 0


def _until(value: datetime) -> datetime:
    """A bare date as ``--until`` includes that whole day."""
    if value.hour == value.minute == value.second == value.microsecond == 0 and (
        value.tzinfo is None
    ):
        return value + timedelta(days=1)
    return value


def jobs(args: argparse.Namespace, out: TextIO) -> int:
    """``jobs``: pages through ``GET /jobs`` with the filters, until ``--limit`` match."""
    service = _service(args)
    states = set(args.state or ())
    pending: bool | None = None
    if states and states <= {"Queued", "Running"}:
        pending = True
    elif states and states <= _FINAL:
        pending = False
    found: list[dict[str, Any]] = []
    offset = 0
    page = 100 if states else min(100, args.limit)
    while len(found) < args.limit:
        body = service.client.jobs(
            limit=page,
            skip=offset,
            backend_name=args.backend,
            pending=pending,
            program_id=args.program,
            job_tags=args.tag,
            session_id=args.session,
            created_after=args.since,
            created_before=_until(args.until) if args.until else None,
        )
        batch = body["jobs"]
        offset += len(batch)
        found.extend(j for j in batch if not states or job_state(j) in states)
        count = body.get("count")
        if not batch or (isinstance(count, int) and offset >= count):
            break
    found = found[: args.limit]
    if args.json:
        dump_json(found, out)
        return 0
    rows = [
        (
            j.get("id"),
            job_state(j),
            j.get("backend"),
            (j.get("program") or {}).get("id") if isinstance(j.get("program"), dict) else None,
            j.get("created"),
            j.get("session_id"),
            ",".join(j.get("tags") or []),
        )
        for j in found
    ]
    table(rows, ("ID", "STATE", "BACKEND", "PROGRAM", "CREATED", "SESSION", "TAGS"), out)
    return 0


def _job_details(service: ProviderService, job_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    doc = service.client.job(job_id)
    try:
        metrics = service.client.job_metrics(job_id)
    except Exception:  # noqa: BLE001 - metrics are optional (a service may lack them)
        metrics = {}
    return doc, metrics or {}


def follow(
    service: ProviderService,
    job_id: str,
    out: TextIO,
    *,
    timeout: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Follow a job until it is final, redrawing one progress line; returns the final document.

    Uses the service's long-poll (``GET /jobs/{id}?wait=``): the answer comes as soon as the job
    is final, so the end is shown at once; every ``WAIT_POLL_SECONDS`` the line is redrawn with
    the state, the queue position and the time waited. On a terminal the line is rewritten in
    place; otherwise each change is a new line (logs stay readable).
    """
    tty = out.isatty()
    start = clock()
    last = ""
    doc = service.client.job(job_id)
    while True:
        state = job_state(doc)
        shown = state
        if state == "Queued":
            try:
                position = service.client.job_metrics(job_id).get("position_in_queue")
            except Exception:  # noqa: BLE001 - the position is a nicety
                position = None
            if position is not None:
                shown += f" (position {position} in queue)"
        waited = clock() - start
        if tty:
            out.write(f"\r{shown}, {waited:.0f} s\x1b[K")
            out.flush()
        elif shown != last:
            print(f"{shown} after {waited:.1f} s", file=out, flush=True)
        last = shown
        if state in _FINAL:
            if tty:
                out.write("\n")
            return doc
        if timeout is not None and waited >= timeout:
            if tty:
                out.write("\n")
            raise CommandError(f"job {job_id} is still {state} after {timeout:g} s (it goes on)")
        wait = WAIT_POLL_SECONDS
        if timeout is not None:
            wait = max(0.1, min(wait, timeout - waited))
        doc = service.client.job(job_id, wait=wait)


def job(args: argparse.Namespace, out: TextIO) -> int:
    """``job ID``: details; ``--wait`` follows it until final (exit 1 unless Completed)."""
    service = _service(args)
    if args.wait:
        follow(service, args.job_id, sys.stderr if args.json else out, timeout=args.timeout)
    doc, metrics = _job_details(service, args.job_id)
    if args.json:
        dump_json({"job": doc, "metrics": metrics}, out)
    else:
        print_job(doc, metrics, out)
    if args.wait and job_state(doc) != "Completed":
        return 1
    return 0


def result(args: argparse.Namespace, out: TextIO) -> int:
    """``result ID``: the decoded result summarised, or ``--json`` the raw document."""
    service = _service(args)
    doc = service.client.job(args.job_id)
    state = job_state(doc)
    if state != "Completed":
        reason = (
            (doc.get("state") or {}).get("reason") if isinstance(doc.get("state"), dict) else None
        )
        if state in _FINAL:
            raise CommandError(
                f"job {args.job_id} is {state}, so it has no result"
                + (f": {reason}" if reason else "")
            )
        raise CommandError(
            f"job {args.job_id} is {state}: no result yet (follow it with "
            f"`qiskit-rest-provider job {args.job_id} --wait`)"
        )
    if args.json:
        body = service.client.job_results(args.job_id, binary=False)
        out.write(body.decode("utf-8", errors="replace").rstrip("\n") + "\n")
        return 0
    primitive = service.job(args.job_id).result()
    for line in result_summary(primitive):
        print(line, file=out)
    return 0


def logs(args: argparse.Namespace, out: TextIO) -> int:
    """``logs ID``: the job's log text as the service keeps it."""
    text = _service(args).client.job_logs(args.job_id)
    if text:
        out.write(text if text.endswith("\n") else text + "\n")
    return 0


def cancel(args: argparse.Namespace, out: TextIO) -> int:
    """``cancel ID``: cancel a queued or running job (exit 1 if it is already final)."""
    from .exceptions import ConflictError

    service = _service(args)
    # The client treats "already cancelled" as success (a retried cancel); a person asking to
    # cancel a job that is final wants to hear that nothing happened.
    state = job_state(service.client.job(args.job_id))
    if state in _FINAL:
        raise CommandError(f"job {args.job_id} is already {state}: nothing to cancel")
    try:
        service.client.cancel_job(args.job_id)
    except ConflictError:
        state = job_state(service.client.job(args.job_id))
        raise CommandError(f"job {args.job_id} is already {state}: nothing to cancel") from None
    print(f"Cancelled job {args.job_id}", file=out)
    return 0


_RUNNERS: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
    "save-account": save_account,
    "backends": backends,
    "backend": backend,
    "jobs": jobs,
    "job": job,
    "result": result,
    "logs": logs,
    "cancel": cancel,
}


def run_client_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run a client subcommand; service and account errors become one line and status 1."""
    from .exceptions import QiskitRestProviderError

    out = out or sys.stdout
    try:
        return _RUNNERS[args.command](args, out)
    except (CommandError, QiskitRestProviderError) as exc:
        message = " ".join(str(exc).split())
        print(f"error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
