"""Fuzzing the running server through its own OpenAPI document: zero server errors (issue 7).

Part 1 is a bounded `schemathesis <https://schemathesis.readthedocs.io>`_ run: every operation of
``/openapi.json`` (both runtime prefixes, auth, transpile) gets a few generated requests
(path/query parameters and the request bodies the document declares, positive and negative),
authenticated with the platform token flow (``POST /identity/token`` -> ``Authorization: Bearer
<jwt>`` + ``Service-CRN``). Any 5xx fails; so does a 2xx whose body does not match the
operation's declared response model. So that generated bodies get past "no such job" and "no
such program", every other case is aimed at a real job/session of ours and every other job body
names a real program and backend (then ``params`` reaches the runner's model validation).

Part 2 complements it with hypothesis: arbitrary JSON and mutated *valid* bodies (which a schema
generator rarely produces) POSTed/PUT/PATCHed to every endpoint that takes one. Whatever comes
in, the answer is never a 5xx and every error is D10.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

pytest.importorskip("fastapi")
schemathesis = pytest.importorskip("schemathesis")

EXAMPLES_PER_OPERATION = 5
BELL = (
    'OPENQASM 3.0; include "stdgates.inc"; bit[2] c; x $0; cz $0, $1; '
    "c[0] = measure $0; c[1] = measure $1;"
)


@pytest.fixture(scope="module")
def auth_headers(reference_server) -> dict[str, str]:
    """Platform flow: API key -> IAM JWT (plus the instance CRN)."""
    return {
        "Authorization": f"Bearer {reference_server.iam_token()}",
        "Service-CRN": reference_server.instance_crn,
    }


def _check_response(response: requests.Response, what: str) -> str | None:
    """``None`` if the answer is fine (no 5xx; errors in D10 form), else what is wrong."""
    if response.status_code >= 500:
        return f"{what} -> {response.status_code}: {response.text[:300]}"
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            return f"{what} -> {response.status_code} with a body that is not JSON"
        if not (
            isinstance(body, dict)
            and body.get("status_code") == response.status_code
            and body.get("errors")
            and body["errors"][0].get("message")
            and "trace" in body
        ):
            return f"{what} -> {response.status_code} without a D10 body: {body}"
    return None


def _aim(case: Any, targets: dict[str, str], turn: int) -> None:
    """On every other case, point path ids at our job/session and job bodies at real programs."""
    if turn % 2:
        return
    for name, key in (("job_id", "job"), ("session_id", "session")):
        if name in (case.path_parameters or {}):
            case.path_parameters[name] = targets[key]
    if (
        case.method.upper() == "POST"
        and case.path.endswith("/jobs")
        and isinstance(case.body, dict)
    ):
        case.body["program_id"] = ("sampler", "estimator")[turn // 2 % 2]
        case.body["backend"] = "rest_line_5q"
        case.body.pop("backend_name", None)


@pytest.mark.timeout(300)
def test_no_server_error_for_any_operation(reference_server, auth_headers, targets):
    """Every operation of ``/openapi.json``, positive and negative examples (schemathesis).

    Schemathesis' pytest loader for a schema that only exists at run time
    (``schemathesis.pytest.from_fixture``) does not work with pytest 9 (it sets
    ``request.node._nodeid``), so the operations are driven with its strategies directly.
    """
    from schemathesis.generation.modes import GenerationMode
    from schemathesis.specs.openapi.checks import response_schema_conformance

    schema = schemathesis.openapi.from_url(f"{reference_server.url}/openapi.json")
    problems: list[str] = []
    operations = tried = with_body = 0
    turns = iter(range(10**9))
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path.endswith("/logout"):  # would end the fuzzing session's credentials
            continue
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=True,  # reproducible in CI
                database=None,
            )
            @given(operation.as_strategy(generation_mode=mode))
            def run(case) -> None:
                nonlocal with_body
                _aim(case, targets, next(turns))
                with_body += isinstance(case.body, (dict, list, str))
                response = case.call(
                    base_url=reference_server.url,
                    session=session,
                    headers=auth_headers,
                    timeout=60,
                )
                what = f"{case.method} {case.formatted_path} {case.query or ''} {case.body!r:.200}"
                problem = _check_response(response, what)
                if problem is None and response.status_code < 300:
                    try:
                        case.validate_response(response, checks=[response_schema_conformance])
                    except Exception as exc:  # noqa: BLE001 - schemathesis' failure group
                        problem = f"{what} -> body does not match the response model: {exc}"
                if problem:
                    problems.append(problem)

            try:
                run()
            except Unsatisfiable:  # nothing to make invalid (an operation without parameters)
                assert mode is GenerationMode.NEGATIVE, operation.path
            else:
                tried += 1
    assert operations >= 40, f"only {operations} operations in /openapi.json"
    assert tried > operations  # negative examples ran too
    assert with_body >= 60, f"only {with_body} generated request bodies"
    assert not problems, "\n".join(problems[:20])


# ---------------------------------------------------------------------------- request bodies
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
    max_leaves=15,
)


def _good_bodies() -> dict[str, Any]:
    return {
        "jobs": {
            "program_id": "sampler",
            "backend": "rest_line_5q",
            "params": {"pubs": [[BELL, None, 10]], "version": 2, "options": {}},
            "tags": ["fuzz"],
        },
        "estimator": {
            "program_id": "estimator",
            "backend": "rest_line_5q",
            "params": {
                "pubs": [[BELL.split("c[0] =")[0], ["ZZ", "XI"], None, 0.1]],
                "version": 2,
            },
        },
        "sessions": {"mode": "batch", "backend": "rest_line_5q", "max_ttl": 60},
        "tags": {"tags": ["a", "b"]},
        "patch": {"accepting_jobs": False},
        "login": {"apiToken": "x"},
        "transpile": {"qasm_circuits": BELL, "backend": "rest_line_5q", "optimization_level": 1},
    }


GOOD = _good_bodies()


def _mutations(doc: Any) -> st.SearchStrategy:
    """``doc`` with one node (anywhere in it) replaced by arbitrary JSON."""
    paths: list[tuple] = []

    def walk(node: Any, prefix: tuple) -> None:
        paths.append(prefix)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, (*prefix, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*prefix, i))

    walk(doc, ())

    def replace(node: Any, path: tuple, value: Any) -> Any:
        if not path:
            return value
        copy = dict(node) if isinstance(node, dict) else list(node)
        copy[path[0]] = replace(node[path[0]], path[1:], value)
        return copy

    return st.builds(replace, st.just(doc), st.sampled_from(paths), json_values)


TARGETS = [
    ("POST", "/api/v1/jobs", "jobs"),
    ("POST", "/api/v1/jobs", "estimator"),
    ("POST", "/runtime/jobs", "jobs"),
    ("POST", "/api/v1/sessions", "sessions"),
    ("PUT", "/api/v1/jobs/{job}/tags", "tags"),
    ("PATCH", "/api/v1/sessions/{session}", "patch"),
    ("POST", "/api/users/loginWithToken", "login"),
    ("POST", "/transpile", "transpile"),
]


@pytest.fixture(scope="module")
def targets(reference_server, auth_headers):
    """A job and a session of ours to aim the PUT/PATCH bodies at."""
    base = reference_server.runtime_url
    job = requests.post(f"{base}/jobs", headers=auth_headers, json=GOOD["jobs"], timeout=60)
    session = requests.post(
        f"{base}/sessions", headers=auth_headers, json=GOOD["sessions"], timeout=60
    )
    assert job.status_code == session.status_code == 200, (job.text, session.text)
    yield {"job": job.json()["id"], "session": session.json()["id"]}
    requests.delete(
        f"{base}/sessions/{session.json()['id']}/close", headers=auth_headers, timeout=60
    )


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "method,path,kind", TARGETS, ids=[f"{m}-{p.split('/')[1]}-{k}" for m, p, k in TARGETS]
)
def test_no_server_error_for_any_body(reference_server, auth_headers, targets, method, path, kind):
    url = reference_server.url + path.format(**targets)
    headers = {**auth_headers, "Content-Type": "application/json"}

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(_mutations(GOOD[kind]) | json_values)
    def run(body: Any) -> None:
        data = json.dumps(body, allow_nan=False).encode()
        r = requests.request(method, url, headers=headers, data=data, timeout=60)
        assert r.status_code < 500, (method, path, body, r.status_code, r.text[:500])
        if r.status_code >= 400:
            payload = r.json()
            assert payload["status_code"] == r.status_code and payload["errors"][0]["message"]
        elif kind == "sessions" and isinstance(r.json(), dict) and "id" in r.json():
            requests.delete(f"{url}/{r.json()['id']}/close", headers=headers, timeout=60)
        elif kind in ("jobs", "estimator") and "id" in r.json():
            requests.post(f"{url}/{r.json()['id']}/cancel", headers=headers, timeout=60)

    run()


def test_huge_list_offset_is_a_400_naming_it(reference_server, auth_headers):
    """Found by the schemathesis run: an offset past 64 bits overflowed the database (500)."""
    for name in ("offset", "skip"):
        r = requests.get(
            f"{reference_server.runtime_url}/jobs",
            headers=auth_headers,
            params={name: 34596636607447785472},
            timeout=30,
        )
        assert r.status_code == 400 and name in r.json()["errors"][0]["message"], r.text
