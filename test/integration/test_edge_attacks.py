"""Issue 15's attacks, each against a server under an address-space cap, with a bystander.

One server for the module; its API process runs under ``RLIMIT_AS`` (so a regression fails here
with a ``MemoryError`` instead of taking the machine down). Each attack of the issue is replayed
while a second instance ("B") keeps submitting a Bell job, and the test asserts

* the 4xx (or the closed connection) the attack must get,
* the API process's peak resident memory grew by at most :data:`PEAK_GROWTH_LIMIT` during it
  (``VmHWM`` after resetting it through ``/proc/<pid>/clear_refs``; workers are other processes),
* every one of B's Bell jobs completed within :data:`BELL_LIMIT` seconds while it ran.

Run with ``-s`` to see the table of peak growth and Bell latency per attack.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import resource
import secrets
import socket
import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

pytest.importorskip("fastapi")

import _bell_probe  # noqa: E402
from _bell_probe import bell  # noqa: E402
from conftest import OTHER_INSTANCE  # noqa: E402
from test_edge_hardening import call, closed_by_server, connect, head, read_response  # noqa: E402
from workloads import (  # noqa: E402
    BELL_QASM,
    big_qasm_bodies,
    inflation_bomb_body,
    padding_bodies,
    sampler_job,
)

PEAK_GROWTH_LIMIT = 200 << 20
BELL_LIMIT = 1.0
BODY_TIMEOUT = 2.0
HEADER_TIMEOUT = 2.0
AS_HEADROOM = 1 << 30  # address space allowed above the warmed-up peak

RESULTS: dict[str, dict[str, float]] = {}


def _status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "VmSize", "VmPeak"):
            out[key] = int(value.split()[0]) * 1024
    return out


@pytest.fixture(scope="module")
def target(_session_factory):
    """The server (A's token, B's token), warmed up, its API process under RLIMIT_AS."""
    other = "other-token-" + secrets.token_hex(8)
    s = _session_factory.start(
        workers=1,
        extra_tokens={other: OTHER_INSTANCE},
        args=[
            "--body-timeout", str(BODY_TIMEOUT),
            "--header-timeout", str(HEADER_TIMEOUT),
            "--max-connections-per-client", "16",
            "--rate-limit", "1000",
        ],
    )  # fmt: skip
    with ThreadPoolExecutor(4) as pool:  # warm up the importers and the handler threads
        list(pool.map(lambda _: bell(s.runtime_url, other), range(8)))
    # B submits from a process of its own: its latencies then measure the server alone.
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    probe = context.Process(target=_bell_probe.serve, args=(s.runtime_url, other, theirs),
                            daemon=True)  # fmt: skip
    probe.start()
    vm = _status(s.process.pid)
    cap = vm["VmPeak"] + AS_HEADROOM
    resource.prlimit(s.process.pid, resource.RLIMIT_AS, (cap, cap))
    yield s, ours
    ours.send("exit")
    probe.join(timeout=30)
    print("\n| attack | API peak growth (MiB) | B's Bell p50 (ms) | max (ms) | Bells |")
    print("|---|---|---|---|---|")
    for name, row in RESULTS.items():
        print(f"| {name} | {row['peak_mib']:.1f} | {row['p50_ms']:.0f} | {row['max_ms']:.0f} "
              f"| {row['bells']:.0f} |")  # fmt: skip
    assert s.alive()


class Meter:
    """The API process's peak resident growth, per request where an attack sends several."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self.reset()

    def reset(self) -> None:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        self.base = _status(self.pid)["VmRSS"]

    def checkpoint(self) -> None:
        """Record the growth since the last reset (one request's worth), and reset."""
        self.peak = max(self.peak, _status(self.pid)["VmHWM"] - self.base)
        self.reset()


@contextlib.contextmanager
def attack(target, name: str) -> Iterator[Meter]:
    """Measure the API process and B's Bell latency while the block runs (and assert both)."""
    s, probe = target
    meter = Meter(s.process.pid)
    probe.send("start")
    try:
        yield meter
    finally:
        probe.send("stop")
        answer = probe.recv() if probe.poll(120) else "no answer from B's probe in 120 s"
    errors = [answer] if isinstance(answer, str) else []
    latencies: list[float] = [] if errors else answer
    meter.checkpoint()
    peak = meter.peak
    RESULTS[name] = {
        "peak_mib": peak / 2**20,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "max_ms": 1000 * max(latencies) if latencies else float("nan"),
        "bells": len(latencies),
    }
    assert not errors, errors
    assert s.alive(), s.log_text()[-3000:]
    assert peak <= PEAK_GROWTH_LIMIT, f"{name}: the API process grew by {peak / 2**20:.0f} MiB"
    assert max(latencies) < BELL_LIMIT, f"{name}: B's Bell took {max(latencies):.2f} s"


def post_job(s, body: bytes | dict, source: str = "127.0.4.1") -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Authorization": f"apikey {s.token}", "Content-Type": "application/json"}
    status, _, raw = call(s, source, "POST", "/api/v1/jobs", headers, data)
    return status, json.loads(raw)


def assert_400(status: int, body: dict, *words: str) -> None:
    assert status == 400, body
    message = body["errors"][0]["message"]
    for word in words:
        assert word in message, message


# ------------------------------------------------------------------------------ the attacks
def wrong_key_huge_body(s) -> None:
    socks = []
    try:
        for _ in range(8):
            sock = connect(s, "127.0.4.10", timeout=5.0)
            socks.append(sock)
            sock.sendall(head("POST", "/api/v1/jobs", {
                "Authorization": "apikey wrong-key-" + "x" * 20,
                "Content-Type": "application/json",
                "Content-Length": str(50 << 20),
            }) + b'{"program_id": "sampler", "params": {"pubs": [' + b" " * (1 << 20))  # fmt: skip
        for sock in socks:
            status, _, _ = read_response(sock)
            assert status == 401
            assert closed_by_server(sock)
    finally:
        for sock in socks:
            sock.close()


def trickle_body(s) -> None:
    with connect(s, "127.0.4.11", timeout=BODY_TIMEOUT + 8) as sock:
        sock.sendall(head("POST", "/api/v1/jobs", {
            "Authorization": f"apikey {s.token}", "Content-Type": "application/json",
            "Content-Length": "100000",
        }) + b'{"program_id"')  # fmt: skip
        for _ in range(6):
            time.sleep(0.4)
            with contextlib.suppress(OSError):
                sock.sendall(b" ")
        status, _, _ = read_response(sock)
        assert status == 408
        assert closed_by_server(sock)


def half_open_heads(s) -> None:
    held: list[socket.socket] = []
    try:
        for a in range(25):
            for _ in range(8):
                sock = connect(s, f"127.0.5.{a + 1}", timeout=HEADER_TIMEOUT + 6)
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                held.append(sock)
        assert requests.get(f"{s.url}/health", timeout=5).status_code == 200
        assert all(closed_by_server(sock) for sock in held)
    finally:
        for sock in held:
            sock.close()


def inflation_bomb(s, body: bytes) -> None:
    assert 400 << 10 < len(body) < 540 << 10  # ~340 KiB of zlib, Base64 in JSON
    assert_400(*post_job(s, body), "pubs[0]", "declares")


def big_qasm_programs(s, bodies: list[bytes]) -> None:
    assert all(len(body) > 580 << 10 for body in bodies)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda b: post_job(s, b), bodies))
    for answer in answers[:2]:
        assert_400(*answer, "pubs[0].circuit", "--max-general-statements")
    for answer in answers[2:]:
        assert_400(*answer, "pubs[0].shots")


def unknown_params_padding(s, bodies: list[bytes], meter: Meter) -> None:
    for body in bodies:  # the growth is asserted per request (6 of them, one after the other)
        meter.reset()
        status, answer = post_job(s, body)
        meter.checkpoint()
        assert_400(status, answer, "padding")


def failed_login_flood(s) -> None:
    statuses = []
    for i in range(60):
        form = f"grant_type=urn:ibm:params:oauth:grant-type:apikey&apikey=wrong-{i:06d}".encode()
        form_type = {"Content-Type": "application/x-www-form-urlencoded"}
        status, _, _ = call(s, "127.0.4.20", "POST", "/identity/token", form_type, form)
        statuses.append(status)
        body = json.dumps({"apiToken": f"wrong-{i:06d}-classic"}).encode()
        statuses.append(call(s, "127.0.4.21", "POST", "/api/users/loginWithToken",
                             {"Content-Type": "application/json"}, body)[0])  # fmt: skip
    assert set(statuses) == {401, 429} and statuses.count(429) >= 90, statuses


def listing_offset_2_63(s) -> None:
    for name in ("offset", "skip"):
        status, _, raw = call(s, "127.0.4.30", "GET", f"/api/v1/jobs?{name}={2**63}",
                              {"Authorization": f"apikey {s.token}"})  # fmt: skip
        assert_400(status, json.loads(raw), name)


def tags_1500(s) -> None:
    query = "&".join(["tags=t"] * 1500)
    status, _, raw = call(s, "127.0.4.31", "GET", f"/api/v1/jobs?{query}",
                          {"Authorization": f"apikey {s.token}"})  # fmt: skip
    assert_400(status, json.loads(raw), "tags")


def nested_experimental(s) -> None:
    deep: dict = {}
    for _ in range(300):
        deep = {"x": deep}
    answer = post_job(s, sampler_job([BELL_QASM, None, 10], options={"experimental": deep}))
    assert_400(*answer, "params.options.experimental")


def tags_substring(s) -> None:
    status, job = post_job(s, {**sampler_job([BELL_QASM, None, 10]), "tags": ['x","y']})
    assert status == 200, job
    headers = {"Authorization": f"apikey {s.token}"}
    for tag, found in (('x","y', True), ("y", False), ("x", False)):
        page = requests.get(f"{s.runtime_url}/jobs", params={"tags": tag}, headers=headers,
                            timeout=30).json()  # fmt: skip
        assert (job["id"] in [j["id"] for j in page["jobs"]]) is found, tag


PREPARE: dict[str, Callable] = {
    "340 KiB inflation bomb": inflation_bomb_body,
    "583 KiB OpenQASM programs": big_qasm_bodies,
    "unknown params padding": padding_bodies,
}
ATTACKS: dict[str, Callable] = {
    "wrong key + 50 MiB bodies": wrong_key_huge_body,
    "trickled body": trickle_body,
    "200 half-open heads": half_open_heads,
    "340 KiB inflation bomb": inflation_bomb,
    "583 KiB OpenQASM programs": big_qasm_programs,
    "unknown params padding": unknown_params_padding,
    "failed-login flood": failed_login_flood,
    "offset 2^63": listing_offset_2_63,
    "1500 tags": tags_1500,
    "nested experimental": nested_experimental,
    "tags substring": tags_substring,
}


# serial: every one of B's Bells must finish within BELL_LIMIT (1 s) during the attack; a test on
# the other xdist worker taking the CPU pushed some to 1.0-1.7 s (three attacks failed that way)
@pytest.mark.serial
@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_is_refused_in_bounded_memory_while_b_is_served(target, name):
    prepared = [PREPARE[name]()] if name in PREPARE else []  # the attacker's own CPU, before
    with attack(target, name) as meter:
        run = ATTACKS[name]
        if "meter" in run.__code__.co_varnames:
            run(target[0], *prepared, meter=meter)
        else:
            run(target[0], *prepared)


def test_circuit_limit_flags_reach_the_workers(server_factory):
    """--max-general-statements raised: admission and the worker both import the program."""
    s = server_factory.start(workers=1, args=["--max-general-statements", "2200",
                                              "--max-circuit-bytes", "40000"])  # fmt: skip
    header = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nqubit[2] q;\nbit[2] b;\n'
    program = (header + "b[0] = measure q[0];\nif (b[0]) { x q[1]; }\n"  # -> the ANTLR importer
               + "rz(0.5) q[0];\n" * 2050 + "b[1] = measure q[1];\n")  # fmt: skip
    status, job = post_job(s, sampler_job([program, None, 10]))
    assert status == 200, job
    headers = {"Authorization": f"apikey {s.token}"}
    assert s.wait_job(s.runtime_url, job["id"], headers)["state"]["status"] == "Completed"
    status, answer = post_job(s, sampler_job([program + "// " + "x" * 20_000, None, 10]))
    assert_400(status, answer, "pubs[0].circuit", "at most 40000 bytes", "--max-circuit-bytes")
