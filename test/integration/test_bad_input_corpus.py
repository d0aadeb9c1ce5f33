"""Bad input never hurts the server: a corpus of malformed requests over HTTP (issue 7).

Each case is one request sent with ``requests`` to the real reference server. It must be answered
with the right 4xx and a D10 error body (``{"errors": [{"code", "message", "more_info"}], "trace",
"status_code"}``) whose message names the problem; no job may be created for it (the job counts of
both instances are unchanged) and the server stays healthy (``/health``; a good job still completes
at the end). Body-size cases run against a second server started with a small
``--max-body-bytes``.
"""

from __future__ import annotations

import base64
import functools
import io
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
import numpy as np
import pytest
import requests

pytest.importorskip("fastapi")

BELL = (
    'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] meas; h q[0]; cx q[0], q[1]; '
    "meas[0] = measure q[0]; meas[1] = measure q[1];"
)
ISA_5Q = 'OPENQASM 3.0; include "stdgates.inc"; bit[1] c; x $0; c[0] = measure $0;'
PARAM2 = (
    'OPENQASM 3.0; include "stdgates.inc"; input float[64] a; input float[64] b; qubit[1] q; '
    "bit[1] c; rx(a) q[0]; ry(b) q[0]; c[0] = measure q[0];"
)
NO_MEAS_2Q = 'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; h q[0]; cx q[0], q[1];'
PARAM_EST = (
    'OPENQASM 3.0; include "stdgates.inc"; input float[64] t; qubit[2] q; ry(t) q[0]; '
    "cx q[0], q[1];"
)


def wide(n: int) -> str:
    """A GHZ-like circuit on ``n`` qubits."""
    body = " ".join(f"cx q[0], q[{i}];" for i in range(1, n))
    return (
        f'OPENQASM 3.0; include "stdgates.inc"; qubit[{n}] q; bit[{n}] c; h q[0]; {body} '
        "c = measure q;"
    )


def sampler(*pubs: Any, **params: Any) -> dict:
    """A sampler job body with these PUBs (and extra params)."""
    return {
        "program_id": "sampler",
        "backend": "rest_simulator",
        "params": {"pubs": list(pubs), "version": 2, **params},
    }


def estimator(*pubs: Any, **params: Any) -> dict:
    """An estimator job body with these PUBs (and extra params)."""
    return {
        "program_id": "estimator",
        "backend": "rest_simulator",
        "params": {"pubs": list(pubs), "version": 2, **params},
    }


def job(**over: Any) -> dict:
    """A good sampler job body with some top-level fields replaced."""
    body = sampler([BELL, None, 10])
    body.update(over)
    return body


def with_options(**options: Any) -> dict:
    """A good sampler job with these ``options``."""
    return sampler([BELL, None, 10], options=options)


@dataclass
class Case:
    """One malformed request and the answer it must get."""

    id: str
    method: str
    path: str  # relative to the runtime base (/api/v1) unless it starts with "/"
    status: int
    words: tuple[str, ...]
    json: Any = None
    data: bytes | None = None
    params: dict | None = None
    headers: Callable[[Any], dict] | dict | None = None  # default: the main API key
    extra: dict = field(default_factory=dict)
    bug: str | None = None  # a known server bug: the case is xfail(strict) with this reason


def C(id, method, path, status, words, **kw) -> Case:  # noqa: N802 - table constructor
    """A :class:`Case` (words: str or tuple of substrings expected in the error message)."""
    return Case(id, method, path, status, (words,) if isinstance(words, str) else words, **kw)


def _expired_jwt(server) -> str:
    key = (server.data_dir / "jwt_signing_key").read_text().strip()
    now = int(time.time())
    claims = {"sub": "x", "iat": now - 7200, "exp": now - 3600, "jti": "nope"}
    return jwt.encode(claims, key, algorithm="HS256")


def _forged_jwt(server) -> str:
    now = int(time.time())
    claims = {"sub": "x", "iat": now, "exp": now + 3600, "jti": "nope"}
    return jwt.encode(claims, "not-the-server-key-" + "x" * 32, algorithm="HS256")


def _none_jwt(server) -> str:
    now = int(time.time())
    claims = {"sub": "x", "iat": now, "exp": now + 3600, "jti": "nope"}
    return jwt.encode(claims, None, algorithm="none")


def _logged_out(server) -> str:
    access = server.classic_login()
    r = requests.post(
        f"{server.url}/api/users/logout", headers={"X-Access-Token": access}, timeout=30
    )
    assert r.status_code in (200, 204), r.text
    return access


def _bad_qpy() -> dict:
    return {"__type__": "QuantumCircuit", "__value__": base64.b64encode(b"garbage").decode()}


def _bad_qpy_zlib() -> dict:
    payload = base64.b64encode(zlib.compress(b"QISKITnot really qpy")).decode()
    return {"__type__": "QuantumCircuit", "__value__": payload}


def _bad_ndarray() -> dict:
    return {"__type__": "ndarray", "__value__": "!!!not base64!!!"}


def _inflation_bomb() -> dict:
    """An npy array declaring 144 MB of zeros in ~150 KiB of zlib (issue 15)."""
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 2)))
    header["shape"] = (9_000_000, 2)
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    deflate = zlib.compressobj(9)
    raw = deflate.compress(buffer.getvalue())
    chunk = bytes(1 << 20)
    for _ in range(9_000_000 * 16 >> 20):
        raw += deflate.compress(chunk)
    raw += deflate.compress(bytes(9_000_000 * 16 % (1 << 20))) + deflate.flush()
    return {"__type__": "ndarray", "__value__": base64.b64encode(raw).decode()}


_QASM_HEAD = 'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] c; '
# Issue 15: programs each of which took the API process's CPU (or crashed it) before any check.
QASM_GENERAL_3000 = _QASM_HEAD + "gate g(a) x { rz(a) x; } " + "g(0.5) q[0]; " * 3000
QASM_DEEP_EXPR = _QASM_HEAD + "rz(" + "+".join(["1"] * 10_240) + ") q[0]; c[0] = measure q[0];"
QASM_LONG_LOOP = _QASM_HEAD + "for int i in [0:100000000] { x q[0]; } c[0] = measure q[0];"
QASM_5_MIB = BELL + " //" + "x" * (5 << 20)

AUTH_FAIL = ("credential",)
CASES: list[Case] = [
    # --- broken JSON and wrong top-level shapes
    C("json-syntax", "POST", "jobs", 400, "JSON", data=b"{not json"),
    C("json-truncated", "POST", "jobs", 400, "JSON", data=b'{"program_id": "sampler", "back'),
    C("json-empty", "POST", "jobs", 400, "JSON", data=b""),
    C("json-array", "POST", "jobs", 400, "object", data=b"[1, 2]"),
    C("json-string", "POST", "jobs", 400, "object", data=b'"sampler"'),
    C("json-null", "POST", "jobs", 400, "object", data=b"null"),
    C("json-bad-utf8", "POST", "jobs", 400, "JSON", data=b'{"program_id": "\xff\xfe"}'),
    C("json-deep", "POST", "jobs", 400, "JSON", data=b"[" * 100_000 + b"]" * 100_000),
    C("json-trailing", "POST", "jobs", 400, "JSON", data=b'{"program_id": "sampler"} xx'),
    # --- top-level fields
    C("program-missing", "POST", "jobs", 400, "program_id", json={"backend": "rest_simulator"}),
    C("program-int", "POST", "jobs", 400, "program_id", json=job(program_id=7)),
    C("program-unknown", "POST", "jobs", 404, "program_id", json=job(program_id="qaoa")),
    C("backend-missing", "POST", "jobs", 400, "backend", json=job(backend=None)),
    C("backend-list", "POST", "jobs", 400, "backend", json=job(backend=["rest_simulator"])),
    C("backend-unknown", "POST", "jobs", 404, "ibm_nowhere", json=job(backend="ibm_nowhere")),
    C("params-missing", "POST", "jobs", 400, "params", json=job(params=None)),
    C("params-list", "POST", "jobs", 400, "params", json=job(params=[BELL])),
    C("tags-string", "POST", "jobs", 400, "tags", json=job(tags="a,b")),
    C("tags-ints", "POST", "jobs", 400, "tags", json=job(tags=[1, 2])),
    C("tags-too-many", "POST", "jobs", 400, "tags", json=job(tags=[f"t{i}" for i in range(500)])),
    C("log-level", "POST", "jobs", 400, "log_level", json=job(log_level="LOUD")),
    C("cost-negative", "POST", "jobs", 400, "cost", json=job(cost=-3)),
    C("cost-string", "POST", "jobs", 400, "cost", json=job(cost="1h")),
    C("private-maybe", "POST", "jobs", 400, "private", json=job(private="maybe")),
    C("session-unknown", "POST", "jobs", 404, "no-such-sess", json=job(session_id="no-such-sess")),
    C("session-int", "POST", "jobs", 400, "session_id", json=job(session_id=5)),
    C(
        "foreign-hgp",
        "POST",
        "jobs",
        403,
        "hub/group/project",
        json=job(hub="other", group="team", project="project"),
    ),
    # --- params structure
    C("version-3", "POST", "jobs", 400, "version", json=sampler([BELL], version=3)),
    C("version-word", "POST", "jobs", 400, "version", json=sampler([BELL], version="two")),
    C("pubs-missing", "POST", "jobs", 400, "pubs", json=job(params={"version": 2})),
    C("pubs-dict", "POST", "jobs", 400, "pubs", json=job(params={"pubs": {}, "version": 2})),
    C("pubs-empty", "POST", "jobs", 400, "pubs", json=sampler()),
    C("pub-number", "POST", "jobs", 400, "pubs[0]", json=sampler(42)),
    C("pub-too-long", "POST", "jobs", 400, "pubs[0]", json=sampler([BELL, None, 10, 1, 2])),
    C("pub-empty-list", "POST", "jobs", 400, "pubs[0]", json=sampler([])),
    # --- circuits
    C("circuit-int", "POST", "jobs", 400, "pubs[0]", json=sampler([17])),
    C(
        "circuit-empty",
        "POST",
        "jobs",
        400,
        ("pubs[0]", "empty"),
        json=sampler([""]),
    ),
    C("qasm-garbage", "POST", "jobs", 400, "pubs[0]", json=sampler(["hello world"])),
    C(
        "qasm-unknown-gate",
        "POST",
        "jobs",
        400,
        ("pubs[0]", "frobnicate"),
        json=sampler(["OPENQASM 3.0; qubit[1] q; bit[1] c; frobnicate q[0]; c[0] = measure q[0];"]),
    ),
    C(
        "qasm-syntax",
        "POST",
        "jobs",
        400,
        "pubs[0]",
        json=sampler(['OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; h q[0]] cx;']),
    ),
    C(
        "qasm-undeclared",
        "POST",
        "jobs",
        400,
        "pubs[0]",
        json=sampler(['OPENQASM 3.0; include "stdgates.inc"; bit[1] c; h r[0];']),
    ),
    C("qpy-garbage", "POST", "jobs", 400, "pubs[0]", json=sampler([_bad_qpy()])),
    C("qpy-bad-payload", "POST", "jobs", 400, "pubs[0]", json=sampler([_bad_qpy_zlib()])),
    C(
        "non-isa-5q",
        "POST",
        "jobs",
        400,
        ("pubs[0]", "h"),
        json={**sampler([BELL, None, 10]), "backend": "rest_line_5q"},
    ),
    C(
        "non-isa-qubits-5q",
        "POST",
        "jobs",
        400,
        ("pubs[0]", "cz"),
        json={
            **sampler(
                [
                    'OPENQASM 3.0; include "stdgates.inc"; bit[2] c; cz $0, $4; '
                    "c[0] = measure $0; c[1] = measure $4;"
                ]
            ),
            "backend": "rest_line_5q",
        },
    ),
    C("too-many-qubits-sim", "POST", "jobs", 400, ("pubs[0]", "qubit"), json=sampler([wide(40)])),
    C(
        "hw-qubit-out-of-range",
        "POST",
        "jobs",
        400,
        ("pubs[0]", "qubit"),
        json={
            **sampler(['OPENQASM 3.0; include "stdgates.inc"; bit[1] c; x $9; c[0] = measure $9;']),
            "backend": "rest_line_5q",
        },
    ),
    # --- shots
    C("shots-zero", "POST", "jobs", 400, ("pubs[0]", "shots"), json=sampler([BELL, None, 0])),
    C("shots-negative", "POST", "jobs", 400, ("pubs[0]", "shots"), json=sampler([BELL, None, -5])),
    C("shots-float", "POST", "jobs", 400, ("pubs[0]", "shots"), json=sampler([BELL, None, 1.5])),
    C("shots-string", "POST", "jobs", 400, ("pubs[0]", "shots"), json=sampler([BELL, None, "9"])),
    C("shots-bool", "POST", "jobs", 400, ("pubs[0]", "shots"), json=sampler([BELL, None, True])),
    C("shots-huge", "POST", "jobs", 400, ("pubs[0]", "shots"), json=sampler([BELL, None, 10**9])),
    C("run-shots-zero", "POST", "jobs", 400, "shots", json=sampler([BELL], shots=0)),
    # --- parameter values
    C("values-too-few", "POST", "jobs", 400, "pubs[0]", json=sampler([PARAM2, [0.1], 10])),
    C("values-too-many", "POST", "jobs", 400, "pubs[0]", json=sampler([PARAM2, [0.1, 0.2, 3], 10])),
    C("values-missing", "POST", "jobs", 400, "pubs[0]", json=sampler([PARAM2, None, 10])),
    C("values-unexpected", "POST", "jobs", 400, "pubs[0]", json=sampler([BELL, [0.5], 10])),
    C("values-strings", "POST", "jobs", 400, "pubs[0]", json=sampler([PARAM2, ["x", "y"], 10])),
    C("values-ragged", "POST", "jobs", 400, "pubs[0]", json=sampler([PARAM2, [[1, 2], [3]], 10])),
    C(
        "values-unknown-name",
        "POST",
        "jobs",
        400,
        ("pubs[0]", "zeta"),
        json=sampler([PARAM2, {"a": 0.1, "zeta": 0.2}, 10]),
    ),
    C("values-bad-ndarray", "POST", "jobs", 400, "pubs[0]", json=sampler([PARAM2, _bad_ndarray()])),
    # --- estimator
    C("obs-missing", "POST", "jobs", 400, "pubs[0]", json=estimator([NO_MEAS_2Q])),
    C("obs-width", "POST", "jobs", 400, "pubs[0]", json=estimator([NO_MEAS_2Q, "ZZZ"])),
    C("obs-bad-pauli", "POST", "jobs", 400, "pubs[0]", json=estimator([NO_MEAS_2Q, "AB"])),
    C("obs-bad-coeff", "POST", "jobs", 400, "pubs[0]", json=estimator([NO_MEAS_2Q, {"ZZ": "x"}])),
    C("obs-int", "POST", "jobs", 400, "pubs[0]", json=estimator([NO_MEAS_2Q, 5])),
    C(
        "obs-values-broadcast",
        "POST",
        "jobs",
        400,
        "pubs[0]",
        json=estimator([PARAM_EST, ["ZZ", "XX"], [[0.1], [0.2], [0.3]]]),
    ),
    C(
        "precision-zero",
        "POST",
        "jobs",
        400,
        "precision",
        json=estimator([NO_MEAS_2Q, "ZZ", None, 0]),
    ),
    C(
        "precision-negative",
        "POST",
        "jobs",
        400,
        "precision",
        json=estimator([NO_MEAS_2Q, "ZZ"], precision=-0.1),
    ),
    C(
        "resilience-level",
        "POST",
        "jobs",
        400,
        "resilience_level",
        json=estimator([NO_MEAS_2Q, "ZZ"], resilience_level=9),
    ),
    # --- options
    C("option-unknown", "POST", "jobs", 400, "bogus", json=with_options(bogus=1)),
    C(
        "option-nested-unknown",
        "POST",
        "jobs",
        400,
        "bogus",
        json=with_options(simulator={"bogus": 1}),
    ),
    C(
        "option-shots-type",
        "POST",
        "jobs",
        400,
        "default_shots",
        json=with_options(default_shots="x"),
    ),
    C(
        "option-shots-zero",
        "POST",
        "jobs",
        400,
        "default_shots",
        json=with_options(default_shots=0),
    ),
    C(
        "option-seed-type",
        "POST",
        "jobs",
        400,
        "seed_simulator",
        json=with_options(simulator={"seed_simulator": "abc"}),
    ),
    C("options-list", "POST", "jobs", 400, "options", json=sampler([BELL], options=[1])),
    C(
        "options-experimental-300-deep",
        "POST",
        "jobs",
        400,
        "params.options.experimental",
        json=with_options(experimental=functools.reduce(lambda d, _: {"x": d}, range(300), {})),
    ),
    C(
        "params-unknown-padding",
        "POST",
        "jobs",
        400,
        "params.padding",
        json=sampler([BELL, None, 10], padding="x" * (1 << 20)),
    ),
    # --- issue 15: circuits bounded before they are parsed, arrays before they are inflated
    C(
        "qasm-general-3000-statements",
        "POST",
        "jobs",
        400,
        ("pubs[0].circuit", "--max-general-statements", "QPY"),
        json=sampler([QASM_GENERAL_3000, None, 10]),
    ),
    C(
        "qasm-10240-term-expression",
        "POST",
        "jobs",
        400,
        ("pubs[0].circuit", "10240 operators"),
        json=sampler([QASM_DEEP_EXPR, None, 10]),
    ),
    C(
        "qasm-for-1e8-iterations",
        "POST",
        "jobs",
        400,
        ("pubs[0].circuit", "max_loop_iterations"),
        json=sampler([QASM_LONG_LOOP, None, 10]),
    ),
    C(
        "qasm-5-mib",
        "POST",
        "jobs",
        400,
        ("pubs[0].circuit", "--max-circuit-bytes"),
        json=sampler([QASM_5_MIB, None, 10]),
    ),
    C(
        "values-inflation-bomb",
        "POST",
        "jobs",
        400,
        ("pubs[0]", "declares 144000000 bytes"),
        json=sampler([PARAM2, _inflation_bomb(), 10]),
    ),
    # --- unknown objects and bad queries on other endpoints
    C("job-unknown", "GET", "jobs/nope123", 404, "nope123"),
    C("job-results-unknown", "GET", "jobs/nope123/results", 404, "nope123"),
    C("job-cancel-unknown", "POST", "jobs/nope123/cancel", 404, "nope123"),
    C("job-delete-unknown", "DELETE", "jobs/nope123", 404, "nope123"),
    C("job-metrics-unknown", "GET", "jobs/nope123/metrics", 404, "nope123"),
    C("job-tags-unknown", "PUT", "jobs/nope123/tags", 404, "nope123", json={"tags": ["a"]}),
    C("session-get-unknown", "GET", "sessions/nope123", 404, "nope123"),
    C("session-close-unknown", "DELETE", "sessions/nope123/close", 404, "nope123"),
    C(
        "session-patch-unknown",
        "PATCH",
        "sessions/nope123",
        404,
        "nope123",
        json={"accepting_jobs": False},
    ),
    C(
        "session-bad-mode",
        "POST",
        "sessions",
        400,
        "mode",
        json={"mode": "solo", "backend": "rest_simulator"},
    ),
    C(
        "session-bad-backend",
        "POST",
        "sessions",
        404,
        "nowhere",
        json={"mode": "batch", "backend": "nowhere"},
    ),
    C(
        "session-bad-ttl",
        "POST",
        "sessions",
        400,
        "max_ttl",
        json={"mode": "batch", "backend": "rest_simulator", "max_ttl": -5},
    ),
    C("backend-config-unknown", "GET", "backends/nowhere/configuration", 404, "nowhere"),
    C("backend-props-unknown", "GET", "backends/nowhere/properties", 404, "nowhere"),
    C("backend-status-unknown", "GET", "backends/nowhere/status", 404, "nowhere"),
    C("list-limit-word", "GET", "jobs", 400, "limit", params={"limit": "many"}),
    C("list-limit-negative", "GET", "jobs", 400, "limit", params={"limit": -1}),
    C("list-offset-negative", "GET", "jobs", 400, "offset", params={"offset": -5}),
    C("list-offset-2-63", "GET", "jobs", 400, "offset", params={"offset": 2**63}),
    C("list-skip-2-63", "GET", "jobs", 400, "skip", params={"skip": 2**63}),
    C("list-1500-tags", "GET", "jobs", 400, "tags", params={"tags": ["t"] * 1500}),
    C("list-bad-date", "GET", "jobs", 400, "created_after", params={"created_after": "yesterday"}),
    C("list-bad-sort", "GET", "jobs", 400, "sort", params={"sort": "SIDEWAYS"}),
    C("list-bad-pending", "GET", "jobs", 400, "pending", params={"pending": "perhaps"}),
    C("wait-negative", "GET", "jobs/nope123", 400, "wait", params={"wait": -1}),
    # --- credentials
    C("auth-none", "GET", "jobs", 401, "credentials", headers={}),
    C("auth-wrong-key", "GET", "jobs", 401, AUTH_FAIL, headers={"Authorization": "apikey wrong"}),
    C("auth-garbage-bearer", "GET", "jobs", 401, AUTH_FAIL, headers={"Authorization": "Bearer x"}),
    C("auth-basic", "GET", "jobs", 401, "credentials", headers={"Authorization": "Basic dTpw"}),
    C(
        "auth-expired-jwt",
        "GET",
        "jobs",
        401,
        "expired",
        headers=lambda s: {"Authorization": f"Bearer {_expired_jwt(s)}"},
    ),
    C(
        "auth-forged-jwt",
        "GET",
        "jobs",
        401,
        AUTH_FAIL,
        headers=lambda s: {"Authorization": f"Bearer {_forged_jwt(s)}"},
    ),
    C(
        "auth-alg-none-jwt",
        "GET",
        "jobs",
        401,
        AUTH_FAIL,
        headers=lambda s: {"Authorization": f"Bearer {_none_jwt(s)}"},
    ),
    C(
        "auth-logged-out",
        "GET",
        "jobs",
        401,
        AUTH_FAIL,
        headers=lambda s: {"X-Access-Token": _logged_out(s)},
    ),
    C(
        "auth-post-without-token",
        "POST",
        "jobs",
        401,
        "credentials",
        json=job(),
        headers={},
    ),
    C(
        "foreign-service-crn",
        "GET",
        "jobs",
        403,
        "Service-CRN",
        headers=lambda s: {
            "Authorization": f"apikey {s.token}",
            "Service-CRN": "crn:v1:local:public:quantum-computing:local:a/other:team-project::",
        },
    ),
    C(
        "login-wrong-token",
        "POST",
        "/api/users/loginWithToken",
        401,
        (),
        json={"apiToken": "wrong"},
        headers={},
    ),
    C(
        "login-no-token",
        "POST",
        "/api/users/loginWithToken",
        400,
        "apiToken",
        json={},
        headers={},
    ),
    C(
        "iam-bad-grant",
        "POST",
        "/identity/token",
        400,
        "grant_type",
        data=b"grant_type=password&apikey=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ),
]
# Another instance's job: found for its owner, 404 for everyone else (no existence leak).
FOREIGN = [
    ("GET", "jobs/{job}", None),
    ("GET", "jobs/{job}/results", None),
    ("POST", "jobs/{job}/cancel", None),
    ("DELETE", "jobs/{job}", None),
    ("PUT", "jobs/{job}/tags", {"tags": ["mine"]}),
    ("GET", "jobs/{job}/metrics", None),
]


def check_error(r: requests.Response, status: int, words: tuple[str, ...]) -> None:
    """The right status and a D10 body whose message holds every word."""
    assert r.status_code == status, (r.status_code, r.text[:500])
    body = r.json()
    assert set(body) == {"errors", "trace", "status_code"}, body
    assert body["status_code"] == status and body["trace"]
    assert isinstance(body["errors"], list) and body["errors"]
    err = body["errors"][0]
    assert {"code", "message", "more_info"} <= set(err), err
    message = err["message"]
    for word in words:
        assert word.lower() in message.lower(), f"{word!r} not in {message!r}"


def job_count(server, token: str) -> int:
    """All jobs of the instance owning ``token``."""
    r = requests.get(
        f"{server.runtime_url}/jobs",
        headers={"Authorization": f"apikey {token}"},
        params={"limit": 1},
        timeout=30,
    )
    r.raise_for_status()
    return r.json()["count"]


def send(server, case: Case) -> requests.Response:
    """Send a case's request (default credentials: the main API key)."""
    url = case.path if case.path.startswith("http") else None
    if url is None:
        url = (
            server.url + case.path
            if case.path.startswith("/")
            else f"{server.runtime_url}/{case.path}"
        )
    if case.headers is None:
        headers = {"Authorization": f"apikey {server.token}"}
    elif callable(case.headers):
        headers = case.headers(server)
    else:
        headers = dict(case.headers)
    kwargs: dict[str, Any] = {"headers": headers, "params": case.params, "timeout": 60}
    if case.data is not None:
        kwargs["data"] = case.data
        headers.setdefault("Content-Type", "application/json")
    elif case.json is not None:
        kwargs["json"] = case.json
    return requests.request(case.method, url, **kwargs)


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.bug)] if c.bug else []
        )
        for c in CASES
    ],
)
def test_bad_request_is_rejected_cleanly(reference_server, case):
    before = (
        job_count(reference_server, reference_server.token),
        job_count(reference_server, reference_server.other_token),
    )
    r = send(reference_server, case)
    check_error(r, case.status, case.words)
    after = (
        job_count(reference_server, reference_server.token),
        job_count(reference_server, reference_server.other_token),
    )
    assert after == before, "a rejected request created a job"
    assert requests.get(f"{reference_server.url}/health", timeout=30).status_code == 200


def test_corpus_is_large_enough():
    assert len(CASES) + len(FOREIGN) + 3 >= 60
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.fixture(scope="module")
def foreign_job(reference_server) -> str:
    """A completed job of the *other* instance."""
    headers = {"Authorization": f"apikey {reference_server.other_token}"}
    r = requests.post(
        f"{reference_server.runtime_url}/jobs", headers=headers, json=job(), timeout=60
    )
    assert r.status_code == 200, r.text
    job_id = r.json()["id"]
    reference_server.wait_job(reference_server.runtime_url, job_id, headers)
    return job_id


@pytest.mark.parametrize(
    "method,path,body", FOREIGN, ids=[f"{m}-{p.split('/')[-1]}" for m, p, _ in FOREIGN]
)
def test_another_instances_job_is_not_found(reference_server, foreign_job, method, path, body):
    url = f"{reference_server.runtime_url}/{path.format(job=foreign_job)}"
    mine = {"Authorization": f"apikey {reference_server.token}"}
    r = requests.request(method, url, headers=mine, json=body, timeout=30)
    check_error(r, 404, (foreign_job,))
    # the classic channel sees the same
    classic = f"{reference_server.classic_runtime_url}/{path.format(job=foreign_job)}"
    r = requests.request(
        method, classic, headers=reference_server.classic_headers(), json=body, timeout=30
    )
    check_error(r, 404, (foreign_job,))
    # and the owner still has it, untouched
    theirs = {"Authorization": f"apikey {reference_server.other_token}"}
    job_doc = requests.get(
        f"{reference_server.runtime_url}/jobs/{foreign_job}", headers=theirs, timeout=30
    ).json()
    assert job_doc["state"]["status"] == "Completed" and "mine" not in (job_doc.get("tags") or [])


# ---------------------------------------------------------------------------- body size cap
@pytest.fixture(scope="module")
def capped_server(_session_factory):
    """A server whose request bodies are capped at 20 000 bytes."""
    return _session_factory.start(workers=1, args=["--max-body-bytes", "20000"])


@pytest.mark.parametrize("how", ["json", "chunked", "form"])
def test_oversized_body_is_413(capped_server, how):
    s = capped_server
    headers = {"Authorization": f"apikey {s.token}", "Content-Type": "application/json"}
    big = job(params={"pubs": [[BELL + " " * 30_000, None, 10]], "version": 2})
    before = job_count(s, s.token)
    if how == "json":
        r = requests.post(f"{s.runtime_url}/jobs", headers=headers, json=big, timeout=60)
    elif how == "chunked":  # no Content-Length: the cap must hold while the body streams in
        import json as _json

        data = _json.dumps(big).encode()

        def chunks():
            for i in range(0, len(data), 4096):
                yield data[i : i + 4096]

        r = requests.post(f"{s.runtime_url}/jobs", headers=headers, data=chunks(), timeout=60)
    else:
        r = requests.post(
            f"{s.url}/identity/token",
            data={"grant_type": "x", "apikey": "k" * 30_000},
            timeout=60,
        )
    check_error(r, 413, ("20000",))
    assert job_count(s, s.token) == before
    small = requests.post(f"{s.runtime_url}/jobs", headers=headers, json=job(), timeout=60)
    assert small.status_code == 200, small.text


def test_server_is_healthy_after_the_corpus(reference_server):
    """Runs last in this module: a good job still completes with the right counts."""
    headers = {"Authorization": f"apikey {reference_server.token}"}
    r = requests.post(
        f"{reference_server.runtime_url}/jobs",
        headers=headers,
        json=sampler([BELL, None, 100]),
        timeout=60,
    )
    assert r.status_code == 200, r.text
    final = reference_server.wait_job(reference_server.runtime_url, r.json()["id"], headers)
    assert final["state"]["status"] == "Completed"
    results = requests.get(
        f"{reference_server.runtime_url}/jobs/{r.json()['id']}/results",
        headers=headers,
        timeout=30,
    ).json()
    samples = results["results"][0]["data"]["meas"]["samples"]
    assert len(samples) == 100 and set(samples) <= {"0x0", "0x3"}


@pytest.mark.parametrize(
    "qasm",
    [
        'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; h q[0]] cx;',
        'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; h q[0] cx q[1];',
    ],
    ids=["stray-bracket", "missing-semicolon"],
)
def test_qasm_syntax_error_message_locates_the_problem(reference_server, qasm):
    r = requests.post(
        f"{reference_server.runtime_url}/jobs",
        headers={"Authorization": f"apikey {reference_server.token}"},
        json=sampler([qasm, None, 10]),
        timeout=60,
    )
    check_error(r, 400, ("pubs[0]",))
    message = r.json()["errors"][0]["message"]
    assert re.search(r"line \d+|\d+[:,]\d+", message), message
