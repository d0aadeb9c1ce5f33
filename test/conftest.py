"""Shared fixtures: real reference servers started as subprocesses on 127.0.0.1.

* ``reference_server`` (session scope): one server for the whole run (``--port 0``, temp data dir,
  fixed token, 2 workers, plus a second token owning another instance for isolation tests).
* ``server_factory`` (function scope): start / stop / ``kill -9`` / restart servers on a data dir
  of your choice (restart and crash-recovery tests).

``pytest --db URL`` runs every server of the suite on that database instead of SQLite (for
PostgreSQL each server data dir gets its own fresh schema, dropped at the end).
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import settings

# CI runs the property tests with a fixed derivation of examples (a red CI must be reproducible)
# and no per-example deadline (a shared 2-core machine makes timings meaningless); locally each
# run explores new examples.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

MAIN_INSTANCE = "local/default/main"
OTHER_INSTANCE = "other/team/project"
START_TIMEOUT = 180.0


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        default=None,
        help="SQLAlchemy URL for the reference servers' store (default: SQLite in the data dir); "
        "e.g. postgresql+psycopg://root@127.0.0.1:5432/test",
    )
    parser.addoption(
        "--phase",
        choices=("all", "parallel", "serial"),
        default="all",
        help="run every test (all, the default), only those without the 'serial' marker "
        "(parallel: what scripts/test runs on xdist workers) or only those with it (serial: what "
        "scripts/test runs afterwards, alone); combines with -m and -k",
    )


SLOW_FILES_FIRST = (
    "test_official_scenarios.py",
    "test_cli_admin.py",
    "test_replicas.py",
    "test_cli_client.py",
    "test_dask_executor.py",
    "test_quotas.py",
    "test_server_lifecycle.py",
    "test_transpile_rest.py",
    "test_openapi_fuzz.py",
    "test_tls.py",
    "test_examples.py",
    "test_reliability_crash.py",
    "test_security.py",
)
"""The files of the longest tests (a minute or more in all on a 2-core machine). On xdist workers
they are handed out first, so that no worker starts one of them while the other has run dry."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--phase``: deselect the tests of the other phase (see the ``serial`` marker).

    On xdist workers (``--dist loadfile`` hands out whole files in collection order) the files of
    :data:`SLOW_FILES_FIRST` come first; each file keeps its own order.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        rank = {name: i for i, name in enumerate(SLOW_FILES_FIRST)}
        items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
    phase = config.getoption("--phase")
    if phase == "all":
        return
    want_serial = phase == "serial"
    keep = [
        item for item in items if (item.get_closest_marker("serial") is not None) == want_serial
    ]
    if len(keep) != len(items):
        kept = {id(item) for item in keep}
        config.hook.pytest_deselected(items=[item for item in items if id(item) not in kept])
        items[:] = keep


# ---------------------------------------------------------------------------- databases
class PostgresSchemas:
    """Fresh PostgreSQL schemas, one per data dir, dropped at the end of the session."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.created: list[str] = []

    def _conninfo(self) -> str:
        url = re.sub(r"^postgres(ql)?(\+psycopg)?://", "postgresql://", self.base_url)
        return url.split("?")[0]

    def new_url(self) -> str:
        import psycopg

        # the xdist worker's name (gw0, gw1, ...) in the schema's: a schema left behind by a
        # crashed run says which worker made it; two workers never pick the same name
        worker = os.environ.get("PYTEST_XDIST_WORKER", "")
        name = "qrp_" + (f"{worker}_" if worker.isalnum() else "") + secrets.token_hex(6)
        with psycopg.connect(self._conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        self.created.append(name)
        base = re.sub(r"^postgres(ql)?(\+psycopg)?://", "postgresql+psycopg://", self.base_url)
        sep = "&" if "?" in base else "?"
        return f"{base}{sep}options=-csearch_path%3D{name}"

    def drop_all(self) -> None:
        if not self.created:
            return
        import psycopg

        with psycopg.connect(self._conninfo(), autocommit=True) as conn:
            for name in self.created:
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        self.created.clear()


def worker_cluster(n_workers: int) -> Any:
    """A Dask ``LocalCluster`` of ``n_workers`` processes set up as ``qiskit-rest-provider worker``
    runs them: one thread each, our preload (Qiskit and Aer warmed once), one Aer thread.

    Use it as a context manager; ``distributed`` must be importable (the callers skip first).
    """
    import distributed

    return distributed.LocalCluster(
        n_workers=n_workers,
        processes=True,
        threads_per_worker=1,
        dashboard_address=None,
        preload=["qiskit_rest_provider.server.execution.dask_preload"],
        env={"QISKIT_REST_AER_THREADS": "1"},
    )


def postgres_available(url: str) -> str | None:
    """``None`` if ``url`` answers, else the reason it does not."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    conninfo = re.sub(r"^postgres(ql)?(\+psycopg)?://", "postgresql://", url).split("?")[0]
    try:
        with psycopg.connect(conninfo, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        return f"PostgreSQL at {conninfo} is not reachable: {exc}"
    return None


# ------------------------------------------------------------------------------ servers
@dataclass
class RunningServer:
    """A reference server subprocess and how to talk to it."""

    url: str
    token: str
    instance_hgp: str
    instance_crn: str
    data_dir: Path
    process: subprocess.Popen[str]
    db_url: str | None = None
    other_token: str | None = None
    other_instance_hgp: str | None = None
    log_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # --- credentials helpers
    def classic_login(self, token: str | None = None) -> str:
        """Classic ``loginWithToken``: returns the access token."""
        r = requests.post(
            f"{self.url}/api/users/loginWithToken",
            json={"apiToken": token or self.token},
            timeout=30,
        )
        r.raise_for_status()
        return r.json()["id"]

    def iam_token(self, token: str | None = None) -> str:
        """Platform IAM exchange: returns the JWT."""
        r = requests.post(
            f"{self.url}/identity/token",
            data={
                "grant_type": "urn:ibm:params:oauth:grant-type:apikey",
                "apikey": token or self.token,
            },
            timeout=30,
        )
        r.raise_for_status()
        return r.json()["access_token"]

    def classic_headers(self, token: str | None = None) -> dict[str, str]:
        return {"X-Access-Token": self.classic_login(token), "Content-Type": "application/json"}

    def platform_headers(self, token: str | None = None, crn: str | None = None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.iam_token(token)}",
            "Content-Type": "application/json",
            "IBM-API-Version": "2026-04-15",
        }
        if crn or token is None:
            headers["Service-CRN"] = crn or self.instance_crn
        return headers

    @property
    def runtime_url(self) -> str:
        return f"{self.url}/api/v1"

    @property
    def classic_runtime_url(self) -> str:
        return f"{self.url}/runtime"

    def wait_job(
        self, base: str, job_id: str, headers: dict[str, str], timeout: float = 120.0
    ) -> dict:
        """Long-poll ``GET {base}/jobs/{id}?wait=`` until the job is final; returns the job JSON."""
        deadline = time.monotonic() + timeout
        while True:
            r = requests.get(
                f"{base}/jobs/{job_id}", params={"wait": 20}, headers=headers, timeout=60
            )
            r.raise_for_status()
            job = r.json()
            if job["state"]["status"] in ("Completed", "Failed", "Cancelled"):
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['state']['status']} after {timeout} s")

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""


class ServerFactory:
    """Start, stop, kill and restart reference servers (cleaned up at the end)."""

    def __init__(
        self, base_dir: Path, db_option: str | None, schemas: PostgresSchemas | None
    ) -> None:
        self.base_dir = base_dir
        self.db_option = db_option
        self.schemas = schemas
        self.servers: list[RunningServer] = []
        self._db_for_dir: dict[Path, str | None] = {}

    def db_url_for(self, data_dir: Path, db: str | None = None) -> str | None:
        if db is not None:
            self._db_for_dir[data_dir] = db
        if data_dir not in self._db_for_dir:
            self._db_for_dir[data_dir] = self.schemas.new_url() if self.schemas else None
        return self._db_for_dir[data_dir]

    def start(
        self,
        data_dir: Path | str | None = None,
        *,
        token: str | None = None,
        workers: int = 2,
        instance: str = MAIN_INSTANCE,
        extra_tokens: dict[str, str] | None = None,
        db: str | None = None,
        args: list[str] | tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        port: int = 0,
        generated_token: bool = False,
    ) -> RunningServer:
        """Start a server (``token`` default: a fresh random one; same data dir = same store).

        ``generated_token=True`` passes no ``--token``: the server uses (or creates) the token
        kept in ``DATA_DIR/api_token``.
        """
        if data_dir is None:
            data_dir = self.base_dir / f"server-{len(self.servers)}-{secrets.token_hex(3)}"
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        token = token or "tok-" + secrets.token_urlsafe(16)
        db_url = self.db_url_for(data_dir, db)
        cmd = [
            sys.executable, "-m", "qiskit_rest_provider", "serve",
            "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(data_dir), "--token", token,
            "--workers", str(workers), "--instance", instance,
            "--log-level", "info",
        ]  # fmt: skip
        if generated_token:
            del cmd[cmd.index("--token") : cmd.index("--token") + 2]
        for tok, hgp in (extra_tokens or {}).items():
            cmd += ["--extra-token", f"{tok}:{hgp}"]
        if db_url:
            cmd += ["--db", db_url]
        cmd += list(args)
        log_path = data_dir.parent / f"{data_dir.name}.{len(self.servers)}.log"
        log = open(log_path, "a")  # noqa: SIM115 - kept open for the process' lifetime
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        stdout_lines: list[str] = []
        banner = _read_banner(proc, log_path, stdout_lines)
        server = RunningServer(
            url=banner["Base URL"],
            token=banner["API token"],
            instance_hgp=banner["Instance"],
            instance_crn=banner["Instance CRN"],
            data_dir=data_dir,
            process=proc,
            db_url=db_url,
            log_path=log_path,
            extra={"stdout": stdout_lines},
        )
        if extra_tokens:
            server.other_token, server.other_instance_hgp = next(iter(extra_tokens.items()))
        _wait_healthy(server)
        self.servers.append(server)
        return server

    def restart(
        self, server: RunningServer, *, same_port: bool = True, **kwargs: Any
    ) -> RunningServer:
        """Start a new server on the same data dir (and database), same token, same port.

        Keeping the port lets clients that were waiting on the old process retry through the
        restart.
        """
        if server.alive():
            self.stop(server)
        if same_port:
            kwargs.setdefault("port", int(server.url.rsplit(":", 1)[1]))
        kwargs.setdefault("token", server.token)
        kwargs.setdefault("instance", server.instance_hgp)
        if server.other_token and "extra_tokens" not in kwargs:
            kwargs["extra_tokens"] = {server.other_token: server.other_instance_hgp}
        return self.start(server.data_dir, **kwargs)

    @staticmethod
    def kill(server: RunningServer) -> None:
        """``kill -9`` the server and its worker processes (a crash)."""
        _kill_tree(server.process, signal.SIGKILL)

    @staticmethod
    def stop(server: RunningServer, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait (clean stop); returns the exit code."""
        if server.process.poll() is None:
            server.process.send_signal(signal.SIGTERM)
            try:
                server.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_tree(server.process, signal.SIGKILL)
        return server.process.returncode

    def cleanup(self) -> None:
        """Stop every server still running: all are told (SIGTERM) at once, then waited for."""
        alive = [server for server in self.servers if server.alive()]
        for server in alive:
            server.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for server in alive:  # one signal each: a second one makes uvicorn skip its clean stop
            try:
                server.process.wait(timeout=max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                _kill_tree(server.process, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                if ppid == pid:
                    out.append(int(entry.name))
    except OSError:
        pass
    return out


def _kill_tree(proc: subprocess.Popen[str], sig: int) -> None:
    """Signal a process and all its descendants (workers die with a crashed server)."""
    todo, seen = [proc.pid], []
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo.extend(_children(pid))
    for pid in seen:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass


def _read_banner(
    proc: subprocess.Popen[str], log_path: Path, lines: list[str] | None = None
) -> dict[str, str]:
    """Read the start banner (``Key: value`` lines) until the CRN line, then drain stdout.

    Every stdout line is also appended to ``lines`` (tests of what ``serve`` prints).
    """
    found: dict[str, str] = {}
    done = threading.Event()

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if lines is not None:
                lines.append(line.rstrip("\n"))
            key, sep, value = line.strip().partition(": ")
            if sep and not done.is_set():
                found[key] = value
                if key == "Data dir":
                    done.set()
        done.set()

    threading.Thread(target=reader, daemon=True).start()
    if not done.wait(START_TIMEOUT) or "Base URL" not in found:
        _kill_tree(proc, signal.SIGKILL)
        raise RuntimeError(f"reference server did not start; log:\n{log_path.read_text()[-4000:]}")
    return found


def _wait_healthy(server: RunningServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"reference server exited; log:\n{server.log_text()[-4000:]}")
        try:
            if requests.get(f"{server.url}/health", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"reference server not healthy; log:\n{server.log_text()[-4000:]}")


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def db_option(request: pytest.FixtureRequest) -> str | None:
    """The ``--db`` URL given to pytest (``None`` = SQLite)."""
    return request.config.getoption("--db")


@pytest.fixture(scope="session")
def _pg_schemas(db_option: str | None):
    if not db_option or not db_option.startswith("postgres"):
        yield None
        return
    reason = postgres_available(db_option)
    if reason:
        pytest.exit(f"--db {db_option}: {reason}", returncode=4)
    schemas = PostgresSchemas(db_option)
    yield schemas
    schemas.drop_all()


@pytest.fixture(scope="session")
def _session_factory(tmp_path_factory: pytest.TempPathFactory, db_option, _pg_schemas):
    factory = ServerFactory(tmp_path_factory.mktemp("servers"), db_option, _pg_schemas)
    if db_option and not _pg_schemas:
        factory.db_url_for = lambda data_dir, db=None: db or db_option  # type: ignore[method-assign]
    yield factory
    factory.cleanup()


@pytest.fixture(scope="session")
def reference_server(_session_factory: ServerFactory) -> RunningServer:
    """One reference server for the whole test session (token fixed, 2 workers)."""
    return _session_factory.start(
        token="test-token-" + secrets.token_hex(8),
        workers=2,
        extra_tokens={"other-token-" + secrets.token_hex(8): OTHER_INSTANCE},
        # many tests probe bad credentials on purpose: failed-login throttling has its own tests
        args=["--rate-limit", "1000", "--cancel-grace", "5", "--max-failed-logins", "100000"],
    )


@pytest.fixture
def server_factory(tmp_path: Path, db_option, _pg_schemas):
    """Start/stop/kill/restart servers; everything started is stopped after the test."""
    factory = ServerFactory(tmp_path, db_option, _pg_schemas)
    if db_option and not _pg_schemas:
        factory.db_url_for = lambda data_dir, db=None: db or db_option  # type: ignore[method-assign]
    yield factory
    factory.cleanup()


# --- clients of the session server, shared by the integration test modules ---
@pytest.fixture(scope="module")
def service(reference_server):
    """A platform-channel service for the session's reference server (one per test module)."""
    from qiskit_rest_provider import ProviderService

    return ProviderService(
        channel="ibm_quantum_platform",
        url=reference_server.url,
        token=reference_server.token,
        instance=reference_server.instance_crn,
    )


@pytest.fixture(scope="module")
def ideal(service):
    """The server's ideal simulator backend."""
    return service.backend("rest_simulator")


@pytest.fixture(scope="module")
def noisy(service):
    """The server's noisy 5-qubit line device."""
    return service.backend("rest_line_5q")


@pytest.fixture
def official_service(reference_server, monkeypatch):
    """qiskit-ibm-runtime's ``QiskitRuntimeService`` on the session's reference server.

    ``IAM_URL`` points its IAM login at the server; the URL resolver maps the platform URL onto
    the server's ``/api/v1``.
    """
    runtime = pytest.importorskip("qiskit_ibm_runtime")
    monkeypatch.setenv("QISKIT_FUNCTIONS_EXPERIMENTAL", "1")
    monkeypatch.setenv("IAM_URL", reference_server.url)
    return runtime.QiskitRuntimeService(
        channel="ibm_quantum_platform",
        token=reference_server.token,
        instance=reference_server.instance_crn,
        url=reference_server.url,
        url_resolver=lambda url, instance, private, channel: f"{url}/api/v1",
    )
