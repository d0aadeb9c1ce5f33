"""The ``qiskit-rest-provider`` command (also ``python -m qiskit_rest_provider``).

Subcommands:

* ``serve``: run the reference Runtime REST server on Qiskit Aer.
* ``add-token``: register another API token (optionally for another instance) in a data dir.

Example::

    qiskit-rest-provider serve --port 0 --data-dir ./qrp-data
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import socket
import sys
from collections.abc import Sequence


def _hgp_token(value: str) -> tuple[str, str]:
    token, sep, hgp = value.partition(":")
    if not sep or not token or not hgp:
        raise argparse.ArgumentTypeError("expected TOKEN:hub/group/project")
    return token, hgp


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qiskit-rest-provider", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the reference Runtime REST server")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port (0 = pick a free one)")
    serve.add_argument(
        "--data-dir", default="./qiskit-rest-data", help="store, token, keys, results"
    )
    serve.add_argument("--backends-dir", default=None, help="extra conf_*.json/props_*.json pairs")
    serve.add_argument("--token", default=None, help="fixed API token (else generated once)")
    serve.add_argument(
        "--instance", default="local/default/main", help="hub/group/project of the token"
    )
    serve.add_argument(
        "--extra-token",
        action="append",
        type=_hgp_token,
        default=[],
        metavar="TOKEN:HUB/GROUP/PROJECT",
        help="another API token and its instance (repeatable)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=max(1, min(4, os.cpu_count() or 2)),
        help="worker processes running jobs",
    )
    serve.add_argument(
        "--db", default=None, help="SQLAlchemy URL (default: SQLite in the data dir)"
    )
    serve.add_argument(
        "--max-body-bytes",
        type=int,
        default=64 * 1024 * 1024,
        help="larger request bodies answer 413 (default 64 MiB)",
    )
    serve.add_argument(
        "--rate-limit",
        type=float,
        default=200.0,
        help="requests per second per token, bursts of 2 s (0 = unlimited)",
    )
    serve.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        help="allow this browser origin (repeatable; default: CORS closed)",
    )
    serve.add_argument(
        "--max-execution-time",
        type=float,
        default=3 * 3600.0,
        help="largest max_execution_time (cost) a job may ask for, in s (default 3 h)",
    )
    serve.add_argument(
        "--default-execution-time",
        type=float,
        default=600.0,
        help="wall-clock limit of a job without its own max_execution_time, in s (default 600)",
    )
    serve.add_argument(
        "--max-queued-per-instance",
        type=int,
        default=1000,
        help="Queued jobs one instance may have at once; more answer 429 (default 1000)",
    )
    serve.add_argument(
        "--max-running-per-instance",
        type=int,
        default=0,
        help="jobs of one instance running at once (default 0 = as many as the workers)",
    )
    serve.add_argument(
        "--max-job-memory",
        default=None,
        metavar="SIZE",
        help="memory one job may use, e.g. 4GiB or 512MiB; larger jobs are refused "
        "(default min(4 GiB, RAM / (workers + 1)))",
    )
    serve.add_argument(
        "--cancel-grace",
        type=float,
        default=10.0,
        help="seconds to wait for a killed worker (cancelled/over-time job) to report",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    add = sub.add_parser("add-token", help="register an API token in a data dir")
    add.add_argument("--data-dir", default="./qiskit-rest-data")
    add.add_argument("--db", default=None)
    add.add_argument("--instance", default="local/default/main")
    add.add_argument("--token", default=None, help="the token (default: a new random one)")
    return parser


def _serve(args: argparse.Namespace) -> int:
    from .server.config import ServerConfig, instance_crn
    from .server.execution.cost import MAX_JOB_MEMORY_ENV, MIB, parse_size

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.log_level != "debug":  # qiskit logs every transpiler pass at INFO
        logging.getLogger("qiskit").setLevel(logging.WARNING)
    try:
        config = ServerConfig(
            data_dir=args.data_dir,
            host=args.host,
            port=args.port,
            backends_dir=args.backends_dir,
            token=args.token,
            instance=args.instance,
            extra_tokens=list(args.extra_token),
            workers=args.workers,
            db_url=args.db,
            max_body_bytes=args.max_body_bytes,
            rate_limit=args.rate_limit,
            cors_origins=list(args.cors_origin),
            default_max_execution_time=args.default_execution_time,
            max_execution_time=args.max_execution_time,
            max_queued_per_instance=args.max_queued_per_instance,
            max_running_per_instance=args.max_running_per_instance,
            abandon_grace=args.cancel_grace,
            max_job_memory=parse_size(args.max_job_memory) if args.max_job_memory else None,
            log_level=args.log_level,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    # One cap for admission (refuse) and for Aer in the workers (stop): see execution.cost.
    # (an explicit QISKIT_REST_AER_MAX_MEMORY_MB still counts when --max-job-memory is absent)
    job_memory_mb = str(max(1, config.job_memory_limit // MIB))
    if args.max_job_memory:
        os.environ[MAX_JOB_MEMORY_ENV] = job_memory_mb
    else:
        os.environ.setdefault(MAX_JOB_MEMORY_ENV, job_memory_mb)
    # Each worker's Aer run would otherwise start one thread per core and oversubscribe the CPU.
    os.environ.setdefault(
        "QISKIT_REST_AER_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, config.workers)))
    )
    # Heavy imports in the main thread before any server thread exists (perf-notes: QPY crash).
    from .server.execution.workers import import_heavy_modules

    import_heavy_modules()
    import uvicorn

    from .server.app import Provisioned, create_app

    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP
    # (with proto 0 every keep-alive response waits ~40 ms for a delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as exc:
        print(f"error: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    host = f"[{config.host}]" if family == socket.AF_INET6 else config.host

    def banner(p: Provisioned) -> None:
        print(f"Base URL: http://{host}:{port}")
        print(f"API token: {p.token}")
        print(f"Instance: {p.caller.instance_hgp}")
        print(f"Instance CRN: {instance_crn(p.caller.instance_hgp)}")
        print(f"Data dir: {config.data_dir.resolve()}")
        sys.stdout.flush()

    app = create_app(config, on_ready=banner)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level=args.log_level,
            access_log=args.log_level == "debug",
            timeout_graceful_shutdown=5,
            lifespan="on",
        )
    )
    # uvicorn re-raises the stop signal once it has shut down cleanly; answer it with a no-op
    # so a SIGTERM/SIGINT stop exits with status 0 (jobs still running resume on restart).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    server.run(sockets=[sock])
    return 0


def _add_token(args: argparse.Namespace) -> int:
    from .server.auth.tokens import Authenticator
    from .server.config import ServerConfig, instance_crn
    from .server.jobs.store import Store

    config = ServerConfig(data_dir=args.data_dir, db_url=args.db, instance=args.instance)
    config.prepare_data_dir()
    store = Store(config)
    token = args.token or secrets.token_urlsafe(32)
    Authenticator(store, config).add_api_token(token, args.instance)
    store.close()
    print(f"API token: {token}")
    print(f"Instance: {args.instance}")
    print(f"Instance CRN: {instance_crn(args.instance)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qiskit-rest-provider`` command."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "add-token":
        return _add_token(args)
    return 2  # pragma: no cover - argparse enforces a command


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
