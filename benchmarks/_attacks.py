"""Issue 15's attacks on a server's edge, for ``benchmarks/load.py``'s "under attack" rows.

Each attack is a function ``attack(url, token, quick)`` that plays the attacker from its own
127.0.x.y source addresses (raw sockets where the bytes and their timing matter) and returns a
short description of the answers it got. :func:`measure` runs one while another instance ("B")
keeps submitting a Bell job, and reports B's latencies and the API process's peak growth.
"""

from __future__ import annotations

import contextlib
import json
import socket
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "test"))  # the shared payloads
from workloads import (  # noqa: E402
    BELL_QASM,
    big_qasm_bodies,
    inflation_bomb_body,
    padding_bodies,
    sampler_job,
)

BODY_TIMEOUT = 2.0
HEADER_TIMEOUT = 2.0
SERVER_ARGS = ["--body-timeout", str(BODY_TIMEOUT), "--header-timeout", str(HEADER_TIMEOUT),
               "--max-connections-per-client", "16"]  # fmt: skip
"""Extra ``serve`` flags: short edge timeouts so each attack is decided in seconds."""


def _addr(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _connect(url: str, source: str, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(_addr(url), timeout=timeout, source_address=(source, 0))


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1",
        "Host: 127.0.0.1",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _status_of(sock: socket.socket) -> str:
    """The status of the response on ``sock`` (``closed`` if none came)."""
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return "closed"
            data += chunk
    except (TimeoutError, ConnectionResetError):
        return "closed"
    return data.split(b" ", 2)[1].decode()


def _call(
    url: str, source: str, method: str, path: str, headers: dict, body: bytes | None = None
) -> int:
    import http.client

    conn = http.client.HTTPConnection(*_addr(url), timeout=30, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def _post(url: str, token: str, body: bytes | dict, source: str = "127.0.6.1") -> int:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Authorization": f"apikey {token}", "Content-Type": "application/json"}
    return _call(url, source, "POST", "/api/v1/jobs", headers, data)


def _answers(values: list) -> str:
    return ", ".join(f"{k} x{n}" for k, n in sorted(Counter(map(str, values)).items()))


# ------------------------------------------------------------------------------ attacks
def wrong_key_huge_body(url: str, token: str, quick: bool) -> str:
    socks = [_connect(url, "127.0.6.10", 5.0) for _ in range(8)]
    try:
        for sock in socks:
            sock.sendall(_head("POST", "/api/v1/jobs", {
                "Authorization": "apikey wrong-key-" + "x" * 20,
                "Content-Type": "application/json", "Content-Length": str(50 << 20),
            }) + b'{"pubs": [' + b" " * (1 << 20))  # fmt: skip
        return _answers([_status_of(sock) for sock in socks])
    finally:
        for sock in socks:
            sock.close()


def trickle_body(url: str, token: str, quick: bool) -> str:
    with _connect(url, "127.0.6.11", BODY_TIMEOUT + 8) as sock:
        sock.sendall(_head("POST", "/api/v1/jobs", {
            "Authorization": f"apikey {token}", "Content-Type": "application/json",
            "Content-Length": "100000",
        }) + b'{"program_id"')  # fmt: skip
        for _ in range(6):
            time.sleep(0.4)
            with contextlib.suppress(OSError):
                sock.sendall(b" ")
        return _status_of(sock)


def half_open_heads(url: str, token: str, quick: bool) -> str:
    held = []
    try:
        for a in range(12 if quick else 25):
            for _ in range(8):
                sock = _connect(url, f"127.0.7.{a + 1}", HEADER_TIMEOUT + 6)
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                held.append(sock)
        return _answers([_status_of(sock) for sock in held])
    finally:
        for sock in held:
            sock.close()


def _padding(quick: bool) -> list[bytes]:
    return padding_bodies(2 if quick else 6)


def inflation_bomb(url: str, token: str, quick: bool, body: bytes) -> str:
    return _answers([_post(url, token, body)])


def big_qasm_programs(url: str, token: str, quick: bool, bodies: list[bytes]) -> str:
    with ThreadPoolExecutor(len(bodies)) as pool:
        return _answers(list(pool.map(lambda b: _post(url, token, b), bodies)))


def unknown_params_padding(url: str, token: str, quick: bool, bodies: list[bytes]) -> str:
    return _answers([_post(url, token, body) for body in bodies])


def failed_login_flood(url: str, token: str, quick: bool) -> str:
    statuses = []
    form_type = {"Content-Type": "application/x-www-form-urlencoded"}
    for i in range(30 if quick else 100):
        form = f"grant_type=urn:ibm:params:oauth:grant-type:apikey&apikey=wrong-{i:06d}".encode()
        statuses.append(_call(url, "127.0.6.20", "POST", "/identity/token", form_type, form))
        body = json.dumps({"apiToken": f"wrong-{i:06d}-classic"}).encode()
        statuses.append(_call(url, "127.0.6.21", "POST", "/api/users/loginWithToken",
                              {"Content-Type": "application/json"}, body))  # fmt: skip
    return _answers(statuses)


def odd_queries(url: str, token: str, quick: bool) -> str:
    auth = {"Authorization": f"apikey {token}"}
    deep: dict = {}
    for _ in range(300):
        deep = {"x": deep}
    return _answers([
        _call(url, "127.0.6.30", "GET", f"/api/v1/jobs?offset={2**63}", auth),
        _call(url, "127.0.6.30", "GET", f"/api/v1/jobs?skip={2**63}", auth),
        _call(url, "127.0.6.30", "GET", "/api/v1/jobs?" + "&".join(["tags=t"] * 1500), auth),
        _post(url, token, sampler_job([BELL_QASM, None, 10], options={"experimental": deep})),
    ])  # fmt: skip


ATTACKS: dict[str, tuple[Callable, Callable | None]] = {
    "wrong key + 50 MiB bodies": (wrong_key_huge_body, None),
    "trickled body": (trickle_body, None),
    "half-open heads": (half_open_heads, None),
    "340 KiB inflation bomb": (inflation_bomb, lambda quick: inflation_bomb_body()),
    "583 KiB OpenQASM programs": (big_qasm_programs, lambda quick: big_qasm_bodies()),
    "unknown params padding (50 MiB)": (unknown_params_padding, _padding),
    "failed-login flood": (failed_login_flood, None),
    "offset 2^63, 1500 tags, nested options": (odd_queries, None),
}
"""Name -> (attack, what it prepares beforehand, outside the measured window, or ``None``)."""


# ------------------------------------------------------------------------------ measuring
def _status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def bell_latency(url: str, token: str) -> float:
    """Submit a Bell job as ``token`` and long-poll it; seconds from POST to Completed."""
    headers = {"Authorization": f"apikey {token}"}
    started = time.perf_counter()
    r = requests.post(
        f"{url}/api/v1/jobs", json=sampler_job([BELL_QASM, None, 16]), headers=headers, timeout=60
    )
    r.raise_for_status()
    job_id = r.json()["id"]
    while True:
        r = requests.get(
            f"{url}/api/v1/jobs/{job_id}", params={"wait": 5}, headers=headers, timeout=60
        )
        if r.json()["state"]["status"] in ("Completed", "Failed", "Cancelled"):
            return time.perf_counter() - started


def measure(
    url: str, token: str, other_token: str, pid: int, name: str | None, quick: bool
) -> dict:
    """B's Bell latencies (ms) and the API process's peak growth while attack ``name`` runs.

    ``name=None`` measures the idle baseline (a few Bells, nothing else).
    """
    attack, prepare = ATTACKS[name] if name else (None, None)
    prepared = [prepare(quick)] if prepare else []
    clear_refs = Path(f"/proc/{pid}/clear_refs")
    can_reset = clear_refs.exists()
    if can_reset:
        clear_refs.write_text("5")  # VmHWM := VmRSS
    base = _status(pid, "VmRSS")
    latencies: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set() or len(latencies) < (10 if attack is None else 3):
            latencies.append(bell_latency(url, other_token))

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    started = time.perf_counter()
    answers = attack(url, token, quick, *prepared) if attack else "-"
    took = time.perf_counter() - started
    stop.set()
    thread.join(timeout=120)
    ms = sorted(1000 * t for t in latencies)
    p99 = ms[min(len(ms) - 1, max(0, int(round(0.99 * len(ms) + 0.5)) - 1))]
    peak = _status(pid, "VmHWM") - base if can_reset else float("nan")
    return {
        "attack": name or "none (baseline)",
        "answers": answers,
        "attack_s": took,
        "bells": len(ms),
        "bell_p50_ms": statistics.median(ms),
        "bell_p99_ms": p99,
        "api_peak_growth_mib": peak / 2**20,
    }
