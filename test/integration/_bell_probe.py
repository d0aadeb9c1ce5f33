"""Another instance's Bell job, submitted again and again from a process of its own.

Used by ``test_edge_attacks.py``: run in a separate process, B's latencies measure the server,
not the test process (whose attacker threads would otherwise share B's GIL).
"""

from __future__ import annotations

import time
from multiprocessing.connection import Connection

import requests

BELL = (
    'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] meas; h q[0]; cx q[0], q[1]; '
    "meas[0] = measure q[0]; meas[1] = measure q[1];"
)


def bell(runtime_url: str, token: str, session: requests.Session | None = None) -> float:
    """Submit a Bell job as ``token`` and long-poll it; seconds from POST to Completed."""
    http = session or requests
    headers = {"Authorization": f"apikey {token}"}
    body = {"program_id": "sampler", "backend": "rest_simulator",
            "params": {"pubs": [[BELL, None, 16]], "version": 2}}  # fmt: skip
    started = time.perf_counter()
    r = http.post(f"{runtime_url}/jobs", json=body, headers=headers, timeout=30)
    if r.status_code != 200:
        raise RuntimeError(f"B's Bell was refused: {r.status_code} {r.text[:300]}")
    job_id = r.json()["id"]
    while True:
        r = http.get(f"{runtime_url}/jobs/{job_id}", params={"wait": 5}, headers=headers,
                     timeout=30)  # fmt: skip
        status = r.json()["state"]["status"]
        if status in ("Completed", "Failed", "Cancelled"):
            if status != "Completed":
                raise RuntimeError(f"B's Bell ended {status}: {r.text[:300]}")
            return time.perf_counter() - started


def serve(runtime_url: str, token: str, conn: Connection) -> None:
    """On "start", submit Bells until "stop" (and at least two), then send back the latencies."""
    session = requests.Session()
    while True:
        if conn.recv() != "start":
            return
        latencies: list[float] = []
        try:
            while True:
                latencies.append(bell(runtime_url, token, session))
                if len(latencies) >= 2 and conn.poll():
                    conn.recv()
                    break
            conn.send(latencies)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            conn.send(f"{type(exc).__name__}: {exc}")
