"""A reference server for the examples: started on a free port of 127.0.0.1, stopped at the end.

Each example runs standalone: ``python examples/vqe_session.py`` starts its own server (with a
throw-away data directory) through :func:`local_service` and stops it when done. Pass ``--url``
and ``--token`` to an example to run it against a service that is already up instead.
It needs the ``server`` extra (``pip install -e ".[server]"``).
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

from qiskit_rest_provider import ProviderService


def add_service_arguments(parser: argparse.ArgumentParser) -> None:
    """``--url`` and ``--token``: use that service instead of starting one."""
    parser.add_argument("--url", default=None, help="a running service (default: start one)")
    parser.add_argument("--token", default=None, help="its API token (with --url)")


@contextmanager
def local_service(args: argparse.Namespace, workers: int = 2) -> Iterator[ProviderService]:
    """A :class:`ProviderService` on ``args.url``, or on a server started for the block."""
    if args.url:
        yield ProviderService(url=args.url, token=args.token)
        return
    token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="qrp-example-") as data_dir:
        log_path = os.path.join(data_dir, "server.log")
        cmd = [
            sys.executable, "-m", "qiskit_rest_provider", "serve",
            "--host", "127.0.0.1", "--port", "0", "--data-dir", data_dir,
            f"--token={token}", "--workers", str(workers), "--log-level", "warning",
        ]  # fmt: skip
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield ProviderService(url=_base_url(proc, log_path), token=token)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _base_url(proc: subprocess.Popen[bytes], log_path: str) -> str:
    """Read the server's log until it announces its base URL."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            for line in log:
                if line.startswith("Base URL:"):
                    return line.split(":", 1)[1].strip()
        if proc.poll() is not None:
            with open(log_path, encoding="utf-8", errors="replace") as log:
                raise RuntimeError(f"server exited with code {proc.returncode}:\n{log.read()}")
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start within 120 s")
