"""Shared helpers for the benchmark scripts: timing medians, tables, JSON out, a local server."""

from __future__ import annotations

import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests


def median_seconds(
    fn: Callable[[], Any], repeats: int, *, setup: Callable[[], Any] | None = None
) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs (``setup()`` runs untimed before each)."""
    times = []
    for _ in range(max(1, repeats)):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def markdown_table(rows: Sequence[dict], columns: Sequence[str]) -> str:
    """Render ``rows`` (dicts) as a Markdown table with the given column order."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: str | None, payload: Any) -> None:
    """Write ``payload`` as indented JSON to ``path`` (no-op when ``path`` is falsy)."""
    if path:
        Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")


@dataclass
class RunningServer:
    """A reference server started by :func:`reference_server` (a child process)."""

    process: subprocess.Popen
    url: str
    token: str
    instance_crn: str
    data_dir: str


@contextmanager
def reference_server(
    *, workers: int = 1, prefix: str = "qrp-bench-", extra_args: Sequence[str] = ()
) -> Iterator[RunningServer]:
    """Start ``qiskit-rest-provider serve`` on a free port of 127.0.0.1 with a temporary data dir.

    Rate limiting is off (benchmarks send many requests) and the server logs only warnings.
    Its output is drained by a thread so the pipe never fills. Yields once ``/health`` answers;
    stops the server (SIGTERM, then SIGKILL after 30 s) on exit.
    """
    token = "bench-" + secrets.token_urlsafe(12)
    with tempfile.TemporaryDirectory(prefix=prefix) as data_dir:
        cmd = [sys.executable, "-m", "qiskit_rest_provider", "serve", "--host", "127.0.0.1",
               "--port", "0", "--data-dir", data_dir, "--token", token,
               "--workers", str(workers), "--rate-limit", "0", "--log-level", "warning",
               *extra_args]  # fmt: skip
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            banner: dict[str, str] = {}
            assert proc.stdout is not None
            for line in proc.stdout:
                key, sep, value = line.strip().partition(": ")
                if sep:
                    banner[key] = value
                if key == "Data dir":
                    break
            if "Base URL" not in banner:
                raise RuntimeError(f"the reference server did not start (exit {proc.poll()})")
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            url = banner["Base URL"]
            deadline = time.monotonic() + 120
            while True:
                try:
                    if requests.get(f"{url}/health", timeout=2).ok:
                        break
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the reference server did not become healthy in 120 s")
                time.sleep(0.1)
            yield RunningServer(proc, url, token, banner.get("Instance CRN", ""), data_dir)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
