"""The dashboard in a real browser: Playwright driving Debian's Chromium (``/usr/bin/chromium``).

A user story against a real reference server (one worker, so a job can be held Queued behind a
slow one): sign in, see the jobs, watch a job go Queued → Completed without a reload, open its
histogram, cancel a queued job, view a backend's coupling map; another instance's jobs never
appear. The browser's network is closed: every request that does not go to 127.0.0.1 is
aborted and recorded, and the module ends by asserting there were none. Screenshots are saved
under ``test-artifacts/screenshots`` (git-ignored; CI keeps them as artifacts).

``scripts/test`` installs Chromium where it can (root with apt-get); elsewhere these tests skip,
saying why.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

pytest.importorskip("fastapi")
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

from conftest import OTHER_INSTANCE  # noqa: E402
from workloads import slow_qasm  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.timeout(120),
    # serial: Chromium keeps a core busy, and the page waits (30 s) and the sign-out check
    # (< 20 s) are timings: these run after the rest, with nothing beside them
    pytest.mark.serial,
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason=f"{CHROMIUM} is absent: install Debian's chromium (scripts/test does, as root)",
    ),
]
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS_DIR = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
BELL = (
    'OPENQASM 3.0; include "stdgates.inc"; qubit[2] q; bit[2] meas; h q[0]; cx q[0], q[1]; '
    "meas[0] = measure q[0]; meas[1] = measure q[1];"
)
OTHER_TOKEN = "other-browser-token-0123456789abcdef"


class Api:
    """The REST API of the test server, for submitting and cancelling jobs."""

    def __init__(self, server, token: str, crn: str | None) -> None:
        self.server = server
        self.headers = server.platform_headers(token, crn)

    def submit(self, qasm: str = BELL, shots: int = 1000) -> str:
        body = {
            "program_id": "sampler",
            "backend": "rest_simulator",
            "params": {"pubs": [[qasm, None, shots]], "version": 2},
        }
        r = requests.post(
            f"{self.server.runtime_url}/jobs", json=body, headers=self.headers, timeout=60
        )
        assert r.status_code == 200, r.text
        return r.json()["id"]

    def state(self, job_id: str) -> str:
        r = requests.get(
            f"{self.server.runtime_url}/jobs/{job_id}", headers=self.headers, timeout=30
        )
        return r.json()["status"]

    def cancel(self, job_id: str) -> None:
        r = requests.post(
            f"{self.server.runtime_url}/jobs/{job_id}/cancel", headers=self.headers, timeout=30
        )
        assert r.status_code == 204, r.text

    def wait(self, job_id: str) -> None:
        self.server.wait_job(self.server.runtime_url, job_id, self.headers, timeout=90)


@pytest.fixture(scope="module")
def server(_session_factory):
    return _session_factory.start(
        workers=1,
        extra_tokens={OTHER_TOKEN: OTHER_INSTANCE},
        args=["--rate-limit", "1000", "--cancel-grace", "1"],
    )


@pytest.fixture(scope="module")
def api(server) -> Api:
    return Api(server, server.token, server.instance_crn)


@pytest.fixture(scope="module")
def their_job(server) -> str:
    r = requests.get(
        f"{server.runtime_url}/instance",
        headers=server.platform_headers(OTHER_TOKEN, None),
        timeout=30,
    )
    theirs = Api(server, OTHER_TOKEN, r.json()["crn"])
    job_id = theirs.submit()
    theirs.wait(job_id)
    return job_id


@pytest.fixture(scope="module")
def browser_context():
    """One browser context whose network ends at the loopback; yields it and the records."""
    SHOTS_DIR.mkdir(parents=True, exist_ok=True)
    seen: list[str] = []
    blocked: list[str] = []

    def gate(route) -> None:
        host = urlsplit(route.request.url).hostname
        if host == "127.0.0.1":
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.route("**/*", gate)
        context.on("request", lambda req: seen.append(req.url))
        context.set_default_timeout(20_000)
        yield context, seen, blocked
        context.close()
        browser.close()
    assert not blocked, f"requests left the loopback: {blocked}"
    outside = [u for u in seen if urlsplit(u).hostname != "127.0.0.1"]
    assert not outside, f"requests to other hosts: {outside}"


@pytest.fixture(scope="module")
def page(browser_context):
    context, _, _ = browser_context
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # console errors include Content-Security-Policy violations and failed asset loads
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield page
    # the one expected console error: the 404 page of another instance's job
    errors = [e for e in errors if "404" not in e]
    assert not errors, f"script or console errors on the dashboard: {errors}"


def shot(page, name: str) -> None:
    page.screenshot(path=str(SHOTS_DIR / f"{name}.png"), full_page=True)


def test_sign_in_and_see_jobs(server, api, their_job, page):
    done = api.submit()
    api.wait(done)
    page.goto(f"{server.url}/ui/jobs")
    assert "/ui/login" in page.url  # signed out: the sign-in page, then back to the jobs
    shot(page, "01-sign-in")
    page.fill("input[name=token]", server.token)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/jobs")
    row = page.locator(f"tr[data-job='{done}']")
    assert row.locator("[data-state]").get_attribute("data-state") == "Completed"
    assert page.locator("[data-testid=instance]").inner_text() == server.instance_hgp
    # the session cookie is HttpOnly: no script can read it
    assert "qrp_ui_session" not in page.evaluate("document.cookie")
    assert their_job not in page.content()
    shot(page, "02-jobs")


def test_watch_queued_to_completed_and_cancel_a_queued_job(server, api, page, browser_context):
    blocker = api.submit(slow_qasm(), shots=100_000)  # holds the only worker
    watched = api.submit()
    doomed = api.submit()
    assert api.state(watched) == "Queued" and api.state(doomed) == "Queued"
    page.goto(f"{server.url}/ui/jobs")
    page.evaluate("window.__no_reload = 'still the same page'")
    state = page.locator(f"tr[data-job='{watched}'] [data-state]")
    assert state.get_attribute("data-state") == "Queued"
    shot(page, "03-queued")

    # cancel the other queued job from its own page (a second tab)
    context, _, _ = browser_context
    other = context.new_page()
    other.goto(f"{server.url}/ui/jobs/{doomed}")
    other.click("[data-testid=cancel]")
    other.wait_for_selector("[data-testid=job-state] [data-state=Cancelled]")
    assert "cancelled" in other.locator("[data-testid=message]").inner_text()
    shot(other, "04-cancelled")
    other.close()
    assert api.state(doomed) == "Cancelled"

    # free the worker: the watched job runs and completes; the open page follows without reload
    api.cancel(blocker)
    page.wait_for_selector(f"tr[data-job='{watched}'] [data-state=Completed]", timeout=60_000)
    page.wait_for_selector(f"tr[data-job='{doomed}'] [data-state=Cancelled]")
    assert page.evaluate("window.__no_reload") == "still the same page"
    shot(page, "05-completed-live")

    # its page: timeline, PUB summary, histogram of the Bell counts
    page.click(f"tr[data-job='{watched}'] a")
    page.wait_for_selector("[data-testid=histogram]")
    bars = page.locator("[data-testid=histogram] rect.bar")
    outcomes = {
        bar.get_attribute("data-outcome"): int(bar.get_attribute("data-count"))
        for bar in bars.all()
    }
    assert set(outcomes) <= {"00", "11"} and sum(outcomes.values()) == 1000
    assert all(abs(n - 500) <= 5 * (1000 * 0.25) ** 0.5 for n in outcomes.values())
    timeline = page.locator("[data-testid=timeline]").inner_text()
    assert "Queued" in timeline and "Completed" in timeline
    assert "queued" in page.locator("[data-testid=logs]").inner_text()
    shot(page, "06-histogram")


def test_job_page_follows_its_job_live(server, api, page):
    blocker = api.submit(slow_qasm(), shots=100_000)
    job = api.submit()
    page.goto(f"{server.url}/ui/jobs/{job}")
    assert page.locator("[data-testid=job-state] [data-state]").get_attribute("data-state") in (
        "Queued",
        "Running",
    )
    api.cancel(blocker)
    page.wait_for_selector("[data-testid=job-state] [data-state=Completed]", timeout=60_000)
    page.wait_for_selector("[data-testid=histogram]")  # the panel was fetched again
    assert page.locator("[data-testid=cancel]").count() == 0  # and offers no cancel any more


def test_new_jobs_are_announced_without_reload(server, api, page):
    page.goto(f"{server.url}/ui/jobs?program=sampler")
    page.evaluate("window.__no_reload = 'same page'")
    fresh = api.submit()
    link = page.wait_for_selector("[data-testid=newer-link]", timeout=15_000)
    assert link.inner_text().startswith("1 new job")
    assert page.evaluate("window.__no_reload") == "same page"
    link.click()
    page.wait_for_selector(f"tr[data-job='{fresh}']")


def test_backend_coupling_map_and_sorting(server, page):
    page.goto(f"{server.url}/ui/backends")
    page.click("a[href='/ui/backends/rest_hex_27q']")
    page.wait_for_selector("[data-testid=coupling-map]")
    assert page.locator("[data-testid=coupling-map] line.edge").count() == 28
    assert page.locator("[data-testid=coupling-map] g.qubit").count() == 27
    page.click("th a[data-sort=T1]")
    page.wait_for_url("**sort=T1**")
    page.click("th a[data-sort=T1]")  # again: descending
    page.wait_for_url("**order=desc**")
    cells = page.locator("td[data-col=T1]")
    values = [float(cells.nth(i).get_attribute("data-value")) for i in range(cells.count())]
    assert len(values) == 27 and values == sorted(values, reverse=True)
    shot(page, "07-coupling-map")


def test_another_instances_jobs_never_appear(server, their_job, page):
    page.goto(f"{server.url}/ui/jobs")
    assert their_job not in page.content()
    response = page.goto(f"{server.url}/ui/jobs/{their_job}")
    assert response.status == 404
    assert "not found" in page.locator("[data-testid=error]").inner_text()


def test_usage_tokens_and_docs_work_offline(server, page):
    page.goto(f"{server.url}/ui/usage")
    assert OTHER_INSTANCE in page.locator("[data-testid=usage]").inner_text()  # admin view
    page.goto(f"{server.url}/ui/admin/tokens")
    assert page.locator("[data-testid=tokens] tbody tr").count() == 2
    shot(page, "08-tokens")
    page.goto(f"{server.url}/ui/admin/quotas")
    row = page.locator(f"[data-testid=quotas] tr[data-instance='{OTHER_INSTANCE}']")
    row.locator("input[name=max_shots_per_day]").fill("5000")
    row.locator("button[value=set]").click()
    page.wait_for_selector("[data-testid=message]")
    assert "max_shots_per_day 5000" in page.locator("[data-testid=message]").inner_text()
    assert "/ 5000" in row.locator("[data-quota=max_shots_per_day]").inner_text()
    shot(page, "08b-quotas")
    row.locator("button[value=clear]").click()
    page.wait_for_selector("[data-testid=message]")
    assert "cleared" in page.locator("[data-testid=message]").inner_text()
    page.goto(f"{server.url}/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
    shot(page, "09-api-docs")
    page.goto(f"{server.url}/ui/jobs")
    page.click("text=Sign out")
    page.wait_for_url("**/ui/login")
    started = time.monotonic()
    page.goto(f"{server.url}/ui/backends")
    assert "/ui/login" in page.url and time.monotonic() - started < 20


def test_chromium_is_debians(browser_context):
    context, _, _ = browser_context
    assert context.browser is not None and context.browser.version
    assert shutil.which("chromium") == CHROMIUM or os.path.exists(CHROMIUM)
