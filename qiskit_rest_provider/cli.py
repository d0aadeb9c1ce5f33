"""The ``qiskit-rest-provider`` command (also ``python -m qiskit_rest_provider``).

Subcommands:

* client commands (see :mod:`qiskit_rest_provider.cli_client`): ``save-account``, ``backends``,
  ``backend NAME``, ``jobs``, ``job ID [--wait]``, ``result ID``, ``logs ID``, ``cancel ID``;
* ``serve``: run the reference Runtime REST server on Qiskit Aer (``--tls-cert``/``--tls-key``
  for HTTPS);
* ``tokens list|add|revoke|rotate``: administer the API tokens of a server's data dir
  (``add-token`` is the older spelling of ``tokens add``);
* ``quotas list|set|clear``: per-instance quotas of a data dir (:mod:`.cli_quotas`);
* ``worker SCHEDULER``: a Dask worker (``dask worker --nthreads 1`` with the preload that warms
  Qiskit and Aer) for ``serve --executor dask://HOST:PORT``;
* ``db upgrade`` / ``db current``: bring a data dir's store to this release's schema / show its
  revision (``serve`` upgrades on start anyway; these are for operators who want it done first);
* ``--version``.

The server half is imported only by the server commands, so the client commands work with only
the client installed.

Example::

    qiskit-rest-provider serve --port 0 --data-dir ./qrp-data
    qiskit-rest-provider jobs --url http://127.0.0.1:8000 --token TOKEN --limit 5
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import math
import os
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .version import __version__


def _hgp_token(value: str) -> tuple[str, str]:
    token, sep, hgp = value.partition(":")
    if not sep or not token or not hgp:
        raise argparse.ArgumentTypeError("expected TOKEN:hub/group/project")
    return token, hgp


def _parser() -> argparse.ArgumentParser:
    from .cli_client import add_client_commands

    parser = argparse.ArgumentParser(
        prog="qiskit-rest-provider", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--version", action="version", version=f"qiskit-rest-provider {__version__}"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add_client_commands(sub)

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
        "--max-circuit-bytes",
        type=int,
        default=None,
        help="most bytes of OpenQASM text per circuit (default 4 MiB; larger circuits as QPY)",
    )
    serve.add_argument(
        "--max-job-circuit-bytes",
        type=int,
        default=None,
        help="most bytes of OpenQASM text per job, all circuits together (default 16 MiB)",
    )
    serve.add_argument(
        "--max-general-statements",
        type=int,
        default=None,
        help="most statements of a program that needs the general (ANTLR) OpenQASM 3 importer, "
        "about 1 ms of API CPU each (default 2000)",
    )
    serve.add_argument(
        "--body-timeout",
        type=float,
        default=10.0,
        help="seconds a request body may take to arrive, else 408 (default 10)",
    )
    serve.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        help="seconds a connection may take to send a request head, else closed (default 10)",
    )
    serve.add_argument(
        "--keep-alive-timeout",
        type=float,
        default=5.0,
        help="seconds an idle keep-alive connection stays open (default 5)",
    )
    serve.add_argument(
        "--max-connections-per-client",
        type=int,
        default=64,
        help="open connections per client address; more are closed (default 64, 0 = no cap)",
    )
    serve.add_argument(
        "--max-failed-logins",
        type=int,
        default=10,
        help="failed logins per client address and per key in --failed-login-window before "
        "429 (default 10, 0 = no throttling)",
    )
    serve.add_argument(
        "--failed-login-window",
        type=float,
        default=10.0,
        help="window of --max-failed-logins in seconds (default 10)",
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
        "--max-shots-per-day",
        type=int,
        default=0,
        help="shots one instance may submit per UTC day, unless its own quota says otherwise "
        "(`quotas set`); more answer 429 (default 0 = no limit)",
    )
    serve.add_argument(
        "--max-seconds-per-day",
        type=float,
        default=0.0,
        help="simulation seconds per UTC day after which an instance's new jobs answer 429, "
        "unless its own quota says otherwise (default 0 = no limit)",
    )
    serve.add_argument(
        "--max-running-per-instance",
        type=int,
        default=0,
        help="jobs of one instance running at once (default 0 = as many as the workers)",
    )
    serve.add_argument(
        "--max-transpile-time",
        type=float,
        default=1800.0,
        help="largest max_execution_time a transpile task may ask for, in s (default 1800)",
    )
    serve.add_argument(
        "--default-transpile-time",
        type=float,
        default=300.0,
        help="wall-clock limit of a transpile task without its own max_execution_time, in s "
        "(default 300)",
    )
    serve.add_argument(
        "--max-transpile-qpy-bytes",
        default=None,
        metavar="SIZE",
        help="the most a transpile task's qpy_circuits may inflate to, e.g. 16MiB (default "
        "64 MiB; a compressed input also at most 100 times its size, 4 MiB at least)",
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
    serve.add_argument(
        "--event-stream-seconds",
        type=float,
        default=300.0,
        help="longest a job event stream stays open before the client reconnects (default 300)",
    )
    serve.add_argument(
        "--event-heartbeat",
        type=float,
        default=15.0,
        help="seconds between keep-alive comments on a quiet job event stream (default 15)",
    )
    serve.add_argument(
        "--tls-cert", default=None, metavar="FILE", help="serve HTTPS with this PEM certificate"
    )
    serve.add_argument(
        "--tls-key", default=None, metavar="FILE", help="the certificate's PEM private key"
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    serve.add_argument(
        "--executor",
        default="local",
        metavar="local|dask://HOST:PORT",
        help="where jobs run: this server's worker processes (default) or a Dask scheduler",
    )
    serve.add_argument(
        "--replica-id",
        default="",
        help="this server's name among replicas sharing one database (default HOSTNAME-PID)",
    )
    serve.add_argument(
        "--lease-seconds",
        type=float,
        default=30.0,
        help="how long a claim on a running job holds unrenewed; a dead replica's jobs are "
        "re-queued after it (default 30)",
    )
    serve.add_argument(
        "--notify-fallback",
        type=float,
        default=5.0,
        help="seconds between re-reads of waited-on jobs where PostgreSQL NOTIFY does not wake "
        "them (default 5)",
    )
    worker = sub.add_parser(
        "worker",
        help="run a Dask worker for `serve --executor dask://...` (dask worker + our preload)",
        description="Runs `dask worker SCHEDULER --nthreads 1 --preload "
        "qiskit_rest_provider.server.execution.dask_preload` (plus the options below).",
    )
    worker.add_argument("scheduler", metavar="SCHEDULER", help="HOST:PORT or tcp://HOST:PORT")
    worker.add_argument("--nworkers", default="1", help="worker processes (default 1)")
    worker.add_argument("--name", default=None, help="worker name (Dask appends -N)")
    worker.add_argument("--resources", default=None, help='e.g. "GPU=1" on a GPU host')
    worker.add_argument("--memory-limit", default=None, help="per worker process, e.g. 8GiB")
    worker.add_argument("--backends-dir", default=None, help="the server's --backends-dir")

    add = sub.add_parser("add-token", help="register an API token in a data dir (= tokens add)")
    add.add_argument("--data-dir", default="./qiskit-rest-data")
    add.add_argument("--db", default=None)
    add.add_argument("--instance", default="local/default/main")
    add.add_argument("--token", default=None, help="the token (default: a new random one)")

    db = sub.add_parser("db", help="the store's schema: upgrade it, or show its revision")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    for name, text in (
        ("upgrade", "apply the pending schema migrations (a data dir of 0.1.0 included)"),
        ("current", "print the store's schema revision and the newest this release knows"),
    ):
        cmd = db_sub.add_parser(name, help=text)
        cmd.add_argument("--data-dir", default="./qiskit-rest-data")
        cmd.add_argument(
            "--db", default=None, help="SQLAlchemy URL (default: SQLite in the data dir)"
        )
    _add_token_commands(sub)
    from .cli_quotas import add_quota_commands

    add_quota_commands(sub)
    return parser


def _add_token_commands(sub: Any) -> None:
    """``tokens list|add|revoke|rotate``: API tokens of a data dir (the server may be running)."""
    tokens = sub.add_parser(
        "tokens",
        help="list, add, revoke or rotate the API tokens of a data dir",
        description="Administer API tokens directly in a server's store. Secrets are shown once, "
        "when created; revoking takes effect at once, also for a running server.",
    )
    store_args = argparse.ArgumentParser(add_help=False)
    store_args.add_argument(
        "--data-dir", default="./qiskit-rest-data", help="the server's data dir"
    )
    store_args.add_argument("--db", default=None, help="SQLAlchemy URL if the store is not SQLite")
    actions = tokens.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", parents=[store_args], help="tokens (never their secrets)")
    listing.add_argument("--json", action="store_true", help="print the list as JSON")
    add = actions.add_parser("add", parents=[store_args], help="a new token for an instance")
    add.add_argument("--instance", default="local/default/main", help="hub/group/project")
    add.add_argument("--token", default=None, help="the token (default: a new random one)")
    for action, text in (("revoke", "revoke a token now"), ("rotate", "replace a token")):
        parser = actions.add_parser(action, parents=[store_args], help=text)
        parser.add_argument("token_id", metavar="ID", help="the token's id or a unique prefix")


MIN_TOKEN_LENGTH = 16


def _weak_token_problem(args: argparse.Namespace) -> str | None:
    """Why ``--token``/``--extra-token`` is too weak to guard a server, or ``None``.

    A short fixed token can be guessed despite the failed-login throttling; generated tokens are
    43 random characters.
    """
    if args.token is not None and len(args.token) < MIN_TOKEN_LENGTH:
        return (
            f"--token must be at least {MIN_TOKEN_LENGTH} characters "
            f"(got {len(args.token)}); omit it to have a strong one generated"
        )
    for token, _ in args.extra_token:
        if len(token) < MIN_TOKEN_LENGTH:
            return f"--extra-token: the token must be at least {MIN_TOKEN_LENGTH} characters"
    return None


def _is_loopback(host: str) -> bool:
    """Whether ``host`` is only reachable from this machine (127.0.0.0/8, ::1, localhost)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _tls_files(args: argparse.Namespace) -> tuple[str, str] | str | None:
    """``(cert, key)`` for HTTPS, ``None`` for plain HTTP, or the problem as a message."""
    cert, key = args.tls_cert, args.tls_key
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        return "--tls-cert and --tls-key go together (the certificate and its private key)"
    for flag, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not os.path.isfile(path):
            return f"{flag} {path}: no such file"
    import ssl

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        return f"--tls-cert/--tls-key: cannot load the certificate and key: {exc}"
    return cert, key


def _serve(args: argparse.Namespace) -> int:
    from .server.config import ServerConfig, instance_crn
    from .server.execution.cost import MAX_JOB_MEMORY_ENV, MIB, parse_size

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.log_level != "debug":  # qiskit logs every transpiler pass at INFO, alembic each step
        logging.getLogger("qiskit").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
    weak = _weak_token_problem(args)
    if weak:
        print(f"error: {weak}", file=sys.stderr)
        return 2
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
            max_shots_per_day=args.max_shots_per_day,
            max_seconds_per_day=args.max_seconds_per_day,
            max_running_per_instance=args.max_running_per_instance,
            abandon_grace=args.cancel_grace,
            event_stream_seconds=args.event_stream_seconds,
            event_heartbeat_seconds=args.event_heartbeat,
            max_job_memory=parse_size(args.max_job_memory) if args.max_job_memory else None,
            default_transpile_time=args.default_transpile_time,
            max_transpile_time=args.max_transpile_time,
            **(
                {"max_transpile_qpy_bytes": parse_size(args.max_transpile_qpy_bytes)}
                if args.max_transpile_qpy_bytes
                else {}
            ),
            log_level=args.log_level,
            body_timeout=args.body_timeout,
            header_timeout=args.header_timeout,
            keep_alive_timeout=args.keep_alive_timeout,
            max_connections_per_client=args.max_connections_per_client,
            max_failed_logins=args.max_failed_logins,
            failed_login_window=args.failed_login_window,
            executor=args.executor,
            replica_id=args.replica_id,
            lease_seconds=args.lease_seconds,
            notify_fallback=args.notify_fallback,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if config.executor.startswith("dask://"):
        try:
            from .server.execution.dask import import_distributed, parse_dask_address

            parse_dask_address(config.executor)
            import_distributed()
        except (ImportError, ValueError) as exc:
            print(f"error: --executor: {exc}", file=sys.stderr)
            return 2
    tls = _tls_files(args)
    if isinstance(tls, str):
        print(f"error: {tls}", file=sys.stderr)
        return 2
    if tls is None and not _is_loopback(config.host):
        logging.getLogger("qiskit_rest_provider.server").warning(
            "binding %s without TLS: API tokens and results cross the network in plain HTTP; "
            "pass --tls-cert/--tls-key or put a TLS proxy in front",
            config.host,
        )

    # One cap for admission (refuse) and for Aer in the workers (stop): see execution.cost.
    # (an explicit QISKIT_REST_AER_MAX_MEMORY_MB still counts when --max-job-memory is absent)
    job_memory_mb = str(max(1, config.job_memory_limit // MIB))
    if args.max_job_memory:
        os.environ[MAX_JOB_MEMORY_ENV] = job_memory_mb
    else:
        os.environ.setdefault(MAX_JOB_MEMORY_ENV, job_memory_mb)
    # Circuit import limits: read by wire.circuits at import, here and in every worker process.
    from .wire._qasm_limits import LIMIT_ENV, limits_from_env

    for flag, name in (
        ("max_circuit_bytes", "MAX_CIRCUIT_BYTES"),
        ("max_job_circuit_bytes", "MAX_JOB_CIRCUIT_BYTES"),
        ("max_general_statements", "MAX_GENERAL_STATEMENTS"),
    ):
        value = getattr(args, flag)
        if value is not None:
            if value < 1:
                print(f"error: --{flag.replace('_', '-')} must be positive", file=sys.stderr)
                return 2
            os.environ[LIMIT_ENV[name]] = str(value)
    limits_from_env()
    # Each worker's Aer run would otherwise start one thread per core and oversubscribe the CPU.
    os.environ.setdefault(
        "QISKIT_REST_AER_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, config.workers)))
    )
    # Heavy imports in the main thread before any server thread exists (perf-notes: QPY crash).
    from .server.execution.workers import import_heavy_modules

    import_heavy_modules()
    import uvicorn

    from .server.app import Provisioned, create_app
    from .server.edge import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE, guarded_h11_protocol

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

    scheme = "https" if tls else "http"

    def banner(p: Provisioned) -> None:
        url = f"{scheme}://{host}:{port}"
        crn = instance_crn(p.caller.instance_hgp)
        print(f"Base URL: {url}")
        print(f"API token: {p.token}")
        print(f"Instance: {p.caller.instance_hgp}")
        print(f"Instance CRN: {crn}")
        print(f"Data dir: {config.data_dir.resolve()}")
        print("Save this account for ProviderService() and the client commands (Python):")
        print(
            f"    ProviderService.save_account(url={url!r}, token={p.token!r}, "
            f"instance={crn!r}, set_as_default=True)"
        )
        sys.stdout.flush()

    try:
        app = create_app(config, on_ready=banner)
    except ValueError as exc:  # e.g. --token names a revoked token
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level=args.log_level,
            access_log=args.log_level == "debug",
            timeout_graceful_shutdown=5,
            timeout_keep_alive=max(1, math.ceil(config.keep_alive_timeout)),
            h11_max_incomplete_event_size=DEFAULT_MAX_INCOMPLETE_EVENT_SIZE,
            http=guarded_h11_protocol(config.header_timeout, config.max_connections_per_client),
            lifespan="on",
            ssl_certfile=tls[0] if tls else None,
            ssl_keyfile=tls[1] if tls else None,
        )
    )
    # uvicorn re-raises the stop signal once it has shut down cleanly; answer it with a no-op
    # so a SIGTERM/SIGINT stop exits with status 0 (jobs still running resume on restart).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    server.run(sockets=[sock])
    return 0


def worker_command(args: argparse.Namespace) -> list[str]:
    """The ``dask worker`` command line ``qiskit-rest-provider worker`` runs."""
    scheduler = args.scheduler
    if scheduler.startswith("dask://"):
        scheduler = "tcp://" + scheduler[len("dask://") :]
    cmd = [sys.executable, "-m", "distributed.cli.dask_worker", scheduler, "--nthreads", "1"]
    cmd += ["--nworkers", str(args.nworkers)]
    cmd += ["--preload", "qiskit_rest_provider.server.execution.dask_preload"]
    if args.name:
        cmd += ["--name", args.name]
    if args.resources:
        cmd += ["--resources", args.resources]
    if args.memory_limit:
        cmd += ["--memory-limit", args.memory_limit]
    return cmd


def _worker(args: argparse.Namespace) -> int:
    try:
        import distributed  # noqa: F401
    except ImportError:
        print(
            "error: the Dask worker needs the 'distributed' package: pip install "
            '"qiskit-rest-provider[dask]"',
            file=sys.stderr,
        )
        return 2
    env = dict(os.environ)
    env.setdefault("QISKIT_REST_AER_THREADS", "1")  # --nthreads 1: one Aer thread per worker
    if args.backends_dir:
        env["QISKIT_REST_BACKENDS_DIR"] = str(Path(args.backends_dir).resolve())
    cmd = worker_command(args)
    print("running:", " ".join(cmd[2:]), flush=True)
    os.execvpe(cmd[0], cmd, env)  # replaces this process: signals reach dask directly


def _add_token(args: argparse.Namespace) -> int:
    from .server.auth.tokens import Authenticator, new_secret
    from .server.config import ServerConfig, instance_crn
    from .server.jobs.store import Store

    config = ServerConfig(data_dir=args.data_dir, db_url=args.db, instance=args.instance)
    config.prepare_data_dir()
    store = Store(config)
    token = args.token or new_secret()
    Authenticator(store, config).add_api_token(token, args.instance)
    store.close()
    print(f"API token: {token}")
    print(f"Instance: {args.instance}")
    print(f"Instance CRN: {instance_crn(args.instance)}")
    return 0


def _db(args: argparse.Namespace) -> int:
    """``db upgrade`` / ``db current``: the store's schema revision, by hand."""
    from .server.config import ServerConfig
    from .server.jobs.schema import SchemaError, head_revision, schema_revision, store_tables
    from .server.jobs.store import Store, make_engine

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    config = ServerConfig(data_dir=args.data_dir, db_url=args.db)
    where = config.db_path if not args.db else "the database"
    if args.db_command == "current":
        if not args.db and not config.db_path.exists():
            print(f"no store at {config.db_path} (head: {head_revision()})")
            return 1
        engine = make_engine(config.database_url)
        try:
            current = schema_revision(engine)
            legacy = current is None and bool(store_tables(engine))
        finally:
            engine.dispose()
        head = head_revision()
        if legacy:
            print(f"unversioned (made by 0.1.0, revision 0001) (head: {head}): run `db upgrade`")
        elif current is None:
            print(f"empty (head: {head})")
        else:
            print(f"{current}{' (head)' if current == head else f' (head: {head})'}")
        return 0
    config.prepare_data_dir()
    try:
        store = Store(config)
    except SchemaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    change = store.schema_change
    store.close()
    if change.changed:
        before = change.before or "empty"
        print(f"upgraded the store schema of {where} from {before} to {change.after}")
    else:
        print(f"the store schema of {where} is already at {change.after} (head)")
    return 0


class _AdminError(Exception):
    """An admin command failure: one ``error:`` line, exit status 1."""


def _token_store(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """``(config, store, authenticator)`` of the data dir named on the command line."""
    from .server.auth.tokens import Authenticator
    from .server.config import ServerConfig
    from .server.jobs.store import Store

    config = ServerConfig(data_dir=args.data_dir, db_url=args.db)
    if args.db is None and args.action != "add" and not config.db_path.exists():
        raise _AdminError(f"no store in {args.data_dir} (is it a server's --data-dir?)")
    config.prepare_data_dir()
    store = Store(config)
    return config, store, Authenticator(store, config)


def _one_token(store: Any, prefix: str) -> Any:
    if len(prefix) < 4:
        raise _AdminError(f"token id {prefix!r} is too short: give at least 4 characters")
    rows = store.api_tokens_with_prefix(prefix)
    if not rows:
        raise _AdminError(f"no API token with id {prefix!r} (see `tokens list`)")
    if len(rows) > 1:
        raise _AdminError(f"token id {prefix!r} is ambiguous ({len(rows)} tokens): give more of it")
    return rows[0]


def _main_token_file(config: Any, row: Any) -> Path | None:
    """The data dir's generated main-token file, if it holds the secret of ``row``."""
    from .server.auth.tokens import _hash

    path = config.data_dir / "api_token"
    try:
        secret = path.read_text().strip()
    except OSError:
        return None
    return path if secret and _hash(row.salt, secret) == row.hash else None


def _stamp(t: float) -> str:
    import datetime as _dt

    return _dt.datetime.fromtimestamp(t, tz=_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tokens(args: argparse.Namespace) -> int:
    from .server.auth.tokens import new_secret
    from .server.config import instance_crn

    config, store, auth = _token_store(args)
    try:
        if args.action == "list":
            rows = [
                {
                    "id": row.id,
                    "instance": hgp,
                    "created": _stamp(row.created),
                    "state": "revoked" if row.revoked else "active",
                }
                for row, hgp in store.api_tokens()
            ]
            if args.json:
                import json

                print(json.dumps(rows, indent=2))
                return 0
            from .cli_format import table

            table(
                [(r["id"], r["instance"], r["created"], r["state"]) for r in rows],
                ("ID", "INSTANCE", "CREATED", "STATE"),
                sys.stdout,
            )
            return 0
        if args.action == "add":
            token = args.token or new_secret()
            try:
                caller = auth.add_api_token(token, args.instance)
            except ValueError as exc:
                raise _AdminError(str(exc)) from None
            print(f"API token: {token}")
            print(f"Token id: {caller.token_id}")
            print(f"Instance: {args.instance}")
            print(f"Instance CRN: {instance_crn(args.instance)}")
            print("The secret is shown only now: store it safely.")
            return 0
        row = _one_token(store, args.token_id)
        if row.revoked:
            raise _AdminError(f"API token {row.id} is already revoked")
        hgp = next(h for r, h in store.api_tokens() if r.id == row.id)
        main_file = _main_token_file(config, row)
        if args.action == "rotate":
            token = new_secret()
            caller = auth.add_api_token(token, hgp)
            auth.revoke_api_token(row.id)
            if main_file is not None:  # a restart must not bring the old secret back
                main_file.write_text(token + "\n")
            print(f"API token: {token}")
            print(f"Token id: {caller.token_id}")
            print(f"Instance: {hgp}")
            print(f"Instance CRN: {instance_crn(hgp)}")
            print(f"Revoked: {row.id}")
            print("The secret is shown only now: store it safely.")
            return 0
        auth.revoke_api_token(row.id)
        print(f"Revoked API token {row.id} ({hgp}); it fails from the next request on.")
        if main_file is not None:
            main_file.unlink()
            print(f"Removed {main_file}: the next `serve` generates a new main token.")
        return 0
    finally:
        store.close()


def run_token_command(args: argparse.Namespace) -> int:
    """Run ``tokens ...``; failures are one ``error:`` line and exit status 1."""
    try:
        return _tokens(args)
    except _AdminError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``qiskit-rest-provider`` command."""
    args = _parser().parse_args(argv)
    from .cli_client import CLIENT_COMMANDS, run_client_command

    if args.command in CLIENT_COMMANDS:
        return run_client_command(args)
    if args.command == "tokens":
        return run_token_command(args)
    if args.command == "quotas":
        from .cli_quotas import run_quota_command

        return run_quota_command(args)
    if args.command == "serve":
        return _serve(args)
    if args.command == "worker":
        return _worker(args)
    if args.command == "add-token":
        return _add_token(args)
    if args.command == "db":
        return _db(args)
    return 2  # pragma: no cover - argparse enforces a command


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
