"""The dashboard over plain HTTP against the real reference server: sign-in, cookie flags,
CSRF on every POST, isolation between instances, escaping, figures, vendored assets."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
import requests

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")

from test_tls import certificate  # noqa: E402, F401 - the self-signed certificate fixture
from workloads import slow_qasm  # noqa: E402

pytestmark = pytest.mark.timeout(240)

BELL = (
    'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] meas; h q[0]; cx q[0], q[1]; '
    "meas[0] = measure q[0]; meas[1] = measure q[1];"
)
HTML = {"Accept": "text/html"}


def _submit(server, qasm=BELL, shots=64, token=None, tags=None, crn=None, private=False):
    body = {
        "private": private,
        "program_id": "sampler",
        "backend": "rest_simulator",
        "params": {"pubs": [[qasm, None, shots]], "version": 2},
    }
    if tags:
        body["tags"] = tags
    headers = server.platform_headers(token, crn)
    r = requests.post(f"{server.runtime_url}/jobs", json=body, headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["id"], headers


def _sign_in(server, token=None) -> requests.Session:
    s = requests.Session()
    s.get(f"{server.url}/ui/login", timeout=30).raise_for_status()
    r = s.post(
        f"{server.url}/ui/login",
        data={"csrf": s.cookies["qrp_ui_login_csrf"], "token": token or server.token},
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code == 303, r.text
    return s


def _csrf(page_html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]{64})"', page_html).group(1)


@pytest.fixture(scope="module")
def other_crn(reference_server):
    r = requests.get(
        f"{reference_server.runtime_url}/instance",
        headers=reference_server.platform_headers(reference_server.other_token, None),
        timeout=30,
    )
    return r.json()["crn"]


def test_signed_out_pages_redirect_and_everything_else_is_401(reference_server):
    url = reference_server.url
    r = requests.get(f"{url}/ui/jobs?state=Queued", headers=HTML, allow_redirects=False, timeout=30)
    assert r.status_code == 303
    assert r.headers["location"] == "/ui/login?next=%2Fui%2Fjobs%3Fstate%3DQueued"
    assert requests.get(f"{url}/ui/jobs/stream?ids=x", timeout=30).status_code == 401
    r = requests.get(f"{url}/ui/jobs/x/panel", headers={**HTML, "HX-Request": "true"}, timeout=30)
    assert r.status_code == 401 and r.headers["HX-Redirect"] == "/ui/login"
    assert requests.post(f"{url}/ui/jobs/x/cancel", timeout=30).status_code == 401
    # an API token put into the cookie by hand is not a session
    r = requests.get(
        f"{url}/ui/jobs",
        cookies={"qrp_ui_session": reference_server.token},
        headers=HTML,
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code == 303


def test_session_cookie_is_httponly_strict_and_scoped(reference_server):
    s = requests.Session()
    login = s.get(f"{reference_server.url}/ui/login", timeout=30)
    pre = login.headers["set-cookie"]
    assert "HttpOnly" in pre and "SameSite=strict" in pre and "Path=/ui" in pre
    r = s.post(
        f"{reference_server.url}/ui/login",
        data={"csrf": s.cookies["qrp_ui_login_csrf"], "token": reference_server.token},
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code == 303 and r.headers["location"] == "/ui/jobs"
    cookie = next(c for c in r.headers["set-cookie"].split(", q") if "qrp_ui_session=" in c)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback; HTTPS requests get Secure
    assert re.search(r"Max-Age=\d+", cookie)
    assert r.headers["content-security-policy"].startswith("default-src 'self'")


def test_sign_in_needs_the_login_csrf_and_a_valid_token(reference_server):
    url = reference_server.url
    s = requests.Session()
    s.get(f"{url}/ui/login", timeout=30)
    no_csrf = s.post(f"{url}/ui/login", data={"token": reference_server.token}, timeout=30)
    assert no_csrf.status_code == 403
    wrong = s.post(
        f"{url}/ui/login", data={"csrf": "guess", "token": reference_server.token}, timeout=30
    )
    assert wrong.status_code == 403
    bad = s.post(
        f"{url}/ui/login",
        data={"csrf": s.cookies["qrp_ui_login_csrf"], "token": "not-a-token"},
        timeout=30,
    )
    assert bad.status_code == 401 and "invalid API token" in bad.text
    assert "qrp_ui_session" not in s.cookies
    empty = s.post(
        f"{url}/ui/login", data={"csrf": s.cookies["qrp_ui_login_csrf"], "token": " "}, timeout=30
    )
    assert empty.status_code == 400 and "token: enter your API token" in empty.text
    # the redirect after sign-in stays on the dashboard
    r = s.post(
        f"{url}/ui/login",
        data={
            "csrf": s.cookies["qrp_ui_login_csrf"],
            "token": reference_server.token,
            "next": "https://evil.example/",
        },
        allow_redirects=False,
        timeout=30,
    )
    assert r.headers["location"] == "/ui/jobs"


def test_every_post_checks_the_session_csrf_token(reference_server):
    url = reference_server.url
    job_id, headers = _submit(reference_server, slow_qasm(), shots=100_000)
    s = _sign_in(reference_server)
    page = s.get(f"{url}/ui/jobs/{job_id}", timeout=30)
    assert page.status_code == 200
    token = _csrf(page.text)
    cancel = f"{url}/ui/jobs/{job_id}/cancel"
    assert s.post(cancel, timeout=30, allow_redirects=False).status_code == 403
    assert s.post(cancel, data={"csrf": "0" * 64}, timeout=30).status_code == 403
    other_origin = s.post(
        cancel, data={"csrf": token}, headers={"Origin": "http://evil.example"}, timeout=30
    )
    assert other_origin.status_code == 403
    state = requests.get(
        f"{reference_server.runtime_url}/jobs/{job_id}", headers=headers, timeout=30
    )
    assert state.json()["status"] in ("Queued", "Running")
    # the htmx header form and the form field both work
    ok = s.post(cancel, headers={"X-CSRF-Token": token}, allow_redirects=False, timeout=30)
    assert ok.status_code == 303 and "message=cancelled" in ok.headers["location"]
    final = reference_server.wait_job(reference_server.runtime_url, job_id, headers, timeout=60)
    assert final["status"] == "Cancelled"
    again = s.post(cancel, data={"csrf": token}, timeout=30)
    assert again.status_code == 200 and "not cancelled: the job is already Cancelled" in again.text
    # sign-out is a POST too, and ends the session for good
    assert s.post(f"{url}/ui/logout", timeout=30, allow_redirects=False).status_code == 403
    old = s.cookies["qrp_ui_session"]
    out = s.post(f"{url}/ui/logout", data={"csrf": token}, allow_redirects=False, timeout=30)
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    replay = requests.get(
        f"{url}/ui/jobs", cookies={"qrp_ui_session": old}, headers=HTML, allow_redirects=False,
        timeout=30,
    )  # fmt: skip
    assert replay.status_code == 303


def test_another_instances_jobs_are_invisible(reference_server, other_crn):
    url = reference_server.url
    theirs, their_headers = _submit(
        reference_server, token=reference_server.other_token, crn=other_crn
    )
    reference_server.wait_job(reference_server.runtime_url, theirs, their_headers)
    mine, _ = _submit(reference_server)
    s = _sign_in(reference_server)
    listing = s.get(f"{url}/ui/jobs", timeout=30).text
    assert mine in listing and theirs not in listing
    assert s.get(f"{url}/ui/jobs/{theirs}", timeout=30).status_code == 404
    assert s.get(f"{url}/ui/jobs/{theirs}/panel", timeout=30).status_code == 404
    page = s.get(f"{url}/ui/jobs/{mine}", timeout=30)
    cancel = s.post(f"{url}/ui/jobs/{theirs}/cancel", data={"csrf": _csrf(page.text)}, timeout=30)
    assert cancel.status_code == 404
    with s.get(f"{url}/ui/jobs/stream?ids={theirs}", stream=True, timeout=30) as r:
        body = r.raw.read(decode_content=True).decode()
    assert theirs not in body and "event: done" in body
    # the other instance sees its job and not ours
    t = _sign_in(reference_server, reference_server.other_token)
    listing = t.get(f"{url}/ui/jobs", timeout=30).text
    assert theirs in listing and mine not in listing
    assert "other/team/project" in listing
    assert t.get(f"{url}/ui/admin/tokens", timeout=30).status_code == 403


def test_output_is_escaped(reference_server):
    evil = '<script>alert("x")</script>'
    job_id, headers = _submit(reference_server, tags=[evil])
    reference_server.wait_job(reference_server.runtime_url, job_id, headers)
    s = _sign_in(reference_server)
    for path in (f"/ui/jobs/{job_id}", "/ui/jobs"):
        html = s.get(f"{reference_server.url}{path}", timeout=30).text
        assert evil not in html
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    missing = s.get(f"{reference_server.url}/ui/jobs/{evil}", timeout=30)
    assert missing.status_code == 404 and evil not in missing.text


def test_sampler_histogram_counts_add_up(reference_server):
    job_id, headers = _submit(reference_server, shots=400)
    reference_server.wait_job(reference_server.runtime_url, job_id, headers)
    s = _sign_in(reference_server)
    html = s.get(f"{reference_server.url}/ui/jobs/{job_id}", timeout=30).text
    assert 'data-testid="histogram"' in html
    bars = dict(re.findall(r'data-outcome="([01]+)" data-count="(\d+)"', html))
    assert set(bars) <= {"00", "11"} and sum(map(int, bars.values())) == 400
    # a Bell state: both outcomes within 5 standard errors of 200
    assert all(abs(int(n) - 200) <= 5 * np.sqrt(400 * 0.25) for n in bars.values())
    assert '<td class="num">400</td>' in html  # the PUB summary's shots


def test_a_private_jobs_result_stays_for_its_client(reference_server):
    job_id, headers = _submit(reference_server, private=True)
    reference_server.wait_job(reference_server.runtime_url, job_id, headers)
    s = _sign_in(reference_server)
    html = s.get(f"{reference_server.url}/ui/jobs/{job_id}", timeout=30).text
    assert 'data-testid="histogram"' not in html and "only for its owner" in html
    # the page did not use up the one read of the result
    r = requests.get(
        f"{reference_server.runtime_url}/jobs/{job_id}/results", headers=headers, timeout=30
    )
    assert r.status_code == 200 and r.content


def test_estimator_plot_shows_expectation_values(reference_server, service):
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter
    from qiskit.quantum_info import SparsePauliOp
    from qiskit.transpiler import generate_preset_pass_manager

    from qiskit_rest_provider import EstimatorV2

    backend = service.backend("rest_simulator")
    theta = Parameter("θ")
    qc = QuantumCircuit(1)
    qc.ry(theta, 0)
    isa = generate_preset_pass_manager(optimization_level=1, backend=backend).run(qc)
    angles = np.linspace(0, np.pi, 7)
    job = EstimatorV2(mode=backend).run([(isa, SparsePauliOp("Z"), angles[:, None])])
    result = job.result(timeout=120)[0].data
    s = _sign_in(reference_server)
    html = s.get(f"{reference_server.url}/ui/jobs/{job.job_id()}", timeout=30).text
    assert 'data-testid="evs-plot"' in html
    plotted = [float(v) for v in re.findall(r'class="ev" [^>]*data-value="([-0-9.e]+)"', html)]
    assert np.allclose(plotted, np.asarray(result.evs).ravel())
    assert np.allclose(plotted, np.cos(angles), atol=5 * float(np.max(result.stds)) + 0.05)


def test_backend_pages_sort_and_draw(reference_server):
    s = _sign_in(reference_server)
    url = reference_server.url
    html = s.get(f"{url}/ui/backends/rest_hex_27q?sort=T1&order=desc", timeout=30).text
    assert html.count('class="edge"') == 28 and html.count('class="qubit"') == 27
    assert "hsl(120, 70%, 42%)" in html and "hsl(0, 70%, 42%)" in html  # best and worst edge
    table = html.split('data-testid="calibration"')[1]
    t1 = [float(v) for v in re.findall(r'data-col="T1" data-value="([^"]+)"', table)]
    assert len(t1) == 27 and t1 == sorted(t1, reverse=True)
    bad = s.get(f"{url}/ui/backends/rest_hex_27q?sort=evil", timeout=30)
    assert bad.status_code == 400 and "sort: expected one of" in bad.text
    assert s.get(f"{url}/ui/backends/nope", timeout=30).status_code == 404
    sim = s.get(f"{url}/ui/backends/rest_simulator", timeout=30).text
    assert "All-to-all connectivity" in sim
    listing = s.get(f"{url}/ui/backends", timeout=30).text
    assert 'data-testid="queue-rest_hex_27q"' in listing


def test_filters_usage_and_admin_tokens(reference_server):
    s = _sign_in(reference_server)
    url = reference_server.url
    bad = s.get(f"{url}/ui/jobs?state=Sleeping&program=vqe", timeout=30)
    assert bad.status_code == 400
    assert "state: expected one of" in bad.text and "program: expected sampler" in bad.text
    job_id, headers = _submit(reference_server)
    reference_server.wait_job(reference_server.runtime_url, job_id, headers)
    done = s.get(f"{url}/ui/jobs?state=Completed&program=sampler", timeout=30).text
    assert job_id in done
    assert job_id not in s.get(f"{url}/ui/jobs?state=Queued", timeout=30).text
    assert job_id not in s.get(f"{url}/ui/jobs?program=estimator", timeout=30).text
    body = {
        "program_id": "sampler",
        "backend": "rest_simulator",
        "start_session": True,
        "params": {"pubs": [[BELL, None, 16]], "version": 2},
    }
    r = requests.post(
        f"{reference_server.runtime_url}/jobs", json=body, headers=headers, timeout=60
    )
    in_session, session_id = r.json()["id"], r.json()["session_id"]
    listing = s.get(f"{url}/ui/jobs", params={"session": session_id}, timeout=30).text
    assert in_session in listing and job_id not in listing
    assert f"/ui/jobs?session={session_id}" in s.get(f"{url}/ui/jobs/{in_session}", timeout=30).text
    theirs = _sign_in(reference_server, reference_server.other_token)
    assert in_session not in theirs.get(f"{url}/ui/jobs?session={session_id}", timeout=30).text
    newer = s.get(f"{url}/ui/jobs/newer", params={"after": time.time() - 3600}, timeout=30)
    assert newer.status_code == 200 and "new job" in newer.text
    assert "new job" not in s.get(f"{url}/ui/jobs/newer?after={time.time() + 60}", timeout=30).text
    assert s.get(f"{url}/ui/jobs/newer?after=soon", timeout=30).status_code == 400
    usage = s.get(f"{url}/ui/usage", timeout=30).text
    assert "local/default/main" in usage and "other/team/project" in usage  # admin: all
    tokens = s.get(f"{url}/ui/admin/tokens", timeout=30).text
    assert "other/team/project" in tokens and reference_server.token not in tokens


def test_docs_and_static_assets_are_served_locally(reference_server):
    url = reference_server.url
    docs = requests.get(f"{url}/docs", timeout=30).text
    assert "/ui/static/swagger/swagger-ui-bundle.js" in docs
    assert not re.search(r"""(src|href)=["']https?://""", docs)
    assert requests.get(f"{url}/redoc", timeout=30).status_code == 404
    for asset, marker in (
        ("htmx.min.js", "Zero-Clause BSD"),
        ("sse.min.js", "Zero-Clause BSD"),
        ("swagger/swagger-ui-bundle.js", "license information"),
    ):
        r = requests.get(f"{url}/ui/static/{asset}", timeout=30)
        assert r.status_code == 200 and marker in r.text[:200]
    started = time.monotonic()
    assert requests.get(f"{url}/openapi.json", timeout=30).status_code == 200
    assert time.monotonic() - started < 30


def test_session_cookie_is_secure_over_https(server_factory, certificate, monkeypatch):  # noqa: F811
    cert, key = certificate
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    server = server_factory.start(workers=1, args=["--tls-cert", str(cert), "--tls-key", str(key)])
    assert server.url.startswith("https://")
    s = requests.Session()
    s.get(f"{server.url}/ui/login", timeout=30).raise_for_status()
    r = s.post(
        f"{server.url}/ui/login",
        data={"csrf": s.cookies["qrp_ui_login_csrf"], "token": server.token},
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code == 303
    cookie = next(c for c in r.headers["set-cookie"].split(", q") if "qrp_ui_session=" in c)
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert s.get(f"{server.url}/ui/jobs", timeout=30).status_code == 200
