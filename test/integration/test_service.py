"""ProviderService against the real reference server: accounts, both channels, listing, jobs.

A user story per test: "user lists backends (one request)", "user logs out, then gets 401", ...
Requests are counted with a ``requests`` response hook on the service's own session.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from urllib.parse import urlparse

import pytest

from qiskit_rest_provider import ProviderService, RestBackend
from qiskit_rest_provider.exceptions import (
    AuthenticationError,
    NotFoundError,
    QiskitRestProviderError,
)

BUILTIN = {"rest_simulator", "rest_line_5q", "rest_hex_27q", "rest_hex_127q"}
X_MEASURE = 'OPENQASM 3.0;\ninclude "stdgates.inc";\nbit[1] c;\nx $0;\nc[0] = measure $0;\n'


class RequestLog:
    """Counts the responses a service's session receives, by (method, path)."""

    def __init__(self, service: ProviderService) -> None:
        self.calls: list[tuple[str, str]] = []
        service.client.transport.session.hooks["response"].append(self._hook)

    def _hook(self, response, *args, **kwargs):
        self.calls.append((response.request.method, urlparse(response.request.url).path))

    def count(self, suffix: str, method: str = "GET") -> int:
        return sum(1 for m, p in self.calls if m == method and p.endswith(suffix))

    def runtime_calls(self) -> Counter:
        return Counter(
            (m, p)
            for m, p in self.calls
            if not p.endswith(("/identity/token", "/loginWithToken", "/logout"))
        )

    def clear(self) -> None:
        self.calls.clear()


@pytest.fixture
def service(reference_server) -> ProviderService:
    return ProviderService(
        channel="ibm_quantum_platform",
        url=reference_server.url,
        token=reference_server.token,
        instance=reference_server.instance_crn,
    )


@pytest.fixture
def classic(reference_server) -> ProviderService:
    return ProviderService(
        channel="ibm_quantum",
        url=reference_server.url,
        token=reference_server.token,
        instance=reference_server.instance_hgp,
    )


# ------------------------------------------------------------------------------- listing


def test_user_lists_backends_in_one_request(service):
    log = RequestLog(service)
    backends = service.backends()
    assert BUILTIN <= {b.name for b in backends}
    assert all(isinstance(b, RestBackend) for b in backends)
    assert log.runtime_calls() == Counter({("GET", "/api/v1/backends"): 1})
    # cheap attributes come from the listing: still no per-backend request
    sizes = {b.name: b.num_qubits for b in backends}
    assert sizes["rest_line_5q"] == 5 and sizes["rest_hex_127q"] == 127
    assert {b.name for b in backends if b.simulator} >= {"rest_simulator"}
    assert log.runtime_calls() == Counter({("GET", "/api/v1/backends"): 1})


def test_user_filters_backends_each_with_one_request(service):
    log = RequestLog(service)
    big = {b.name for b in service.backends(min_num_qubits=27)}
    assert {"rest_hex_27q", "rest_hex_127q", "rest_simulator"} <= big
    assert "rest_line_5q" not in big
    devices = {b.name for b in service.backends(simulator=False)}
    assert "rest_simulator" not in devices and "rest_line_5q" in devices
    sims = {b.name for b in service.backends(simulator=True)}
    assert "rest_simulator" in sims and "rest_hex_27q" not in sims
    assert {b.name for b in service.backends(name="rest_line_5q")} == {"rest_line_5q"}
    assert BUILTIN <= {b.name for b in service.backends(operational=True)}
    assert not BUILTIN & {b.name for b in service.backends(operational=False)}
    picked = service.backends(filters=lambda b: b.name.endswith("_5q"), simulator=False)
    assert [b.name for b in picked] == ["rest_line_5q"]
    assert log.runtime_calls() == Counter({("GET", "/api/v1/backends"): 7})


def test_backend_objects_are_cached_per_service(service):
    first = service.backends(name="rest_hex_27q")[0]
    assert service.backend("rest_hex_27q") is first
    assert service.backends(name="rest_hex_27q")[0] is first


def test_least_busy_picks_the_shortest_queue(service):
    log = RequestLog(service)
    seen = []
    backend = service.least_busy(
        min_num_qubits=5, simulator=False, filters=lambda b: seen.append(b) or True
    )
    assert backend.name in BUILTIN - {"rest_simulator"}
    assert log.runtime_calls() == Counter({("GET", "/api/v1/backends"): 1})
    # judged on the listing of that one request (queues may move afterwards)
    online = [b.listing for b in seen if b.listing["status"]["name"] == "online"]
    assert all(b.listing.get("qubits", 0) >= 5 and not b.listing["is_simulator"] for b in seen)
    assert backend.listing["queue_length"] == min(e["queue_length"] for e in online)
    with pytest.raises(QiskitRestProviderError, match="No operational backend"):
        service.least_busy(min_num_qubits=100_000)


def test_backend_and_target(service):
    log = RequestLog(service)
    backend = service.backend("rest_hex_27q")
    assert log.runtime_calls() == Counter(
        {("GET", "/api/v1/backends/rest_hex_27q/configuration"): 1}
    )
    assert service.backend("rest_hex_27q") is backend  # cached: no new request
    target = service.target("rest_hex_27q")
    assert target is backend.target
    assert log.count("/properties") == 1 and log.count("/configuration") == 1
    assert target.num_qubits == backend.num_qubits == 27
    assert {"cz", "rz", "sx", "x", "measure"} <= set(target.operation_names)
    assert backend.coupling_map.size() == 27 and len(backend.coupling_map.get_edges()) > 0
    assert backend.dt == target.dt
    assert backend.get_translation_stage_plugin() == "rest_provider"
    assert isinstance(backend.configuration(), dict) and backend.configuration()["n_qubits"] == 27
    props = backend.properties()
    assert props is not None and len(props["qubits"]) == 27
    log.clear()
    backend.target  # noqa: B018 - attribute access must not request anything
    backend.num_qubits  # noqa: B018
    assert log.calls == []
    status = backend.status()
    assert status.operational and status.backend_name == "rest_hex_27q" and status.pending_jobs >= 0
    assert log.count("/status") == 1
    backend.refresh()
    assert backend.target.num_qubits == 27
    assert log.count("/configuration") == 1 and log.count("/properties") == 1


def test_ideal_simulator_has_no_properties(service):
    backend = service.backend("rest_simulator")
    assert backend.properties() is None
    assert backend.target.num_qubits == backend.num_qubits >= 30


def test_unknown_backend_error_lists_the_known_ones(service):
    with pytest.raises(NotFoundError, match=r"No backend named 'nope'.*rest_line_5q") as info:
        service.backend("nope")
    assert info.value.status_code == 404


# ------------------------------------------------------------------------------- channels


def test_classic_channel_lists_backends_and_builds_targets(classic):
    log = RequestLog(classic)
    assert BUILTIN <= {b.name for b in classic.backends()}
    assert log.count("/runtime/backends") == 1
    assert classic.target("rest_line_5q").num_qubits == 5


def test_platform_without_instance_uses_the_tokens_instance(reference_server):
    service = ProviderService(url=reference_server.url, token=reference_server.token)
    assert BUILTIN <= {b.name for b in service.backends()}


@pytest.mark.parametrize("channel", ["ibm_quantum_platform", "ibm_quantum"])
def test_logout_then_401(reference_server, channel):
    instance = (
        reference_server.instance_hgp if channel == "ibm_quantum" else reference_server.instance_crn
    )
    service = ProviderService(
        channel=channel, url=reference_server.url, token=reference_server.token, instance=instance
    )
    service.backends()
    service.logout()
    with pytest.raises(AuthenticationError) as info:
        service.backends()
    assert info.value.status_code == 401
    service.login()  # a new login works again
    assert service.backends()


@pytest.mark.parametrize("channel", ["ibm_quantum_platform", "ibm_quantum"])
def test_bad_token_is_an_authentication_error(reference_server, channel):
    service = ProviderService(channel=channel, url=reference_server.url, token="not-a-token")
    with pytest.raises(AuthenticationError) as info:
        service.backends()
    assert "not-a-token" not in str(info.value)


# ------------------------------------------------------------------------------- accounts


def test_saved_account_round_trip(reference_server, tmp_path, monkeypatch):
    path = tmp_path / "accounts.json"
    monkeypatch.setenv("QISKIT_REST_CONFIG_FILE", str(path))
    for var in ("QISKIT_REST_TOKEN", "QISKIT_REST_URL", "QISKIT_REST_INSTANCE"):
        monkeypatch.delenv(var, raising=False)
    ProviderService.save_account(
        token=reference_server.token,
        url=reference_server.url,
        instance=reference_server.instance_hgp,
        channel="ibm_quantum",
        name="local-classic",
        set_as_default=True,
    )
    assert path.stat().st_mode & 0o777 == 0o600
    service = ProviderService()
    assert service.channel == "ibm_quantum"
    assert "rest_line_5q" in {b.name for b in service.backends()}
    assert ProviderService.delete_account("local-classic")


def test_environment_variables_resolve_the_account(reference_server, tmp_path, monkeypatch):
    monkeypatch.setenv("QISKIT_REST_CONFIG_FILE", str(tmp_path / "none.json"))
    monkeypatch.setenv("QISKIT_REST_TOKEN", reference_server.token)
    monkeypatch.setenv("QISKIT_REST_URL", reference_server.url)
    monkeypatch.setenv("QISKIT_REST_INSTANCE", reference_server.instance_crn)
    monkeypatch.setenv("QISKIT_REST_CHANNEL", "ibm_cloud")
    service = ProviderService()
    assert service.account.url == reference_server.url
    assert "rest_hex_27q" in {b.name for b in service.backends()}


# ------------------------------------------------------------------------------- jobs


def _submit(service: ProviderService, tag: str, backend: str = "rest_simulator") -> str:
    params = {"pubs": [[X_MEASURE, None, 16]], "version": 2}
    return service.client.create_job(
        program_id="sampler", backend=backend, params=params, tags=[tag]
    )["id"]


def _wait_final(service: ProviderService, job_id: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = service.client.job(job_id, wait=5)
        if data["state"]["status"] in ("Completed", "Failed", "Cancelled"):
            return data
    raise AssertionError(f"job {job_id} not final after {timeout} s")


def test_jobs_listing_pages_on_exact_count(service, monkeypatch):
    import qiskit_rest_provider.service as service_module

    tag = f"page-{uuid.uuid4().hex[:8]}"
    ids = [_submit(service, tag) for _ in range(5)]
    monkeypatch.setattr(service_module, "JOBS_PAGE_SIZE", 2)
    log = RequestLog(service)
    jobs = service.jobs(limit=None, job_tags=[tag])
    assert [j.job_id() for j in jobs] == ids[::-1]  # newest first
    assert log.count("/api/v1/jobs") == 3  # pages of 2, 2, 1; stops on the exact count
    ascending = service.jobs(limit=None, job_tags=[tag], descending=False)
    assert [j.job_id() for j in ascending] == ids
    assert [j.job_id() for j in service.jobs(limit=3, skip=1, job_tags=[tag])] == ids[::-1][1:4]
    assert {
        j.job_id() for j in service.jobs(limit=None, job_tags=[tag], program_id="sampler")
    } == set(ids)
    assert service.jobs(limit=None, job_tags=[tag], program_id="estimator") == []
    assert service.jobs(limit=None, job_tags=[tag], backend_name="rest_line_5q") == []
    for job_id in ids:
        _wait_final(service, job_id)
    assert service.jobs(limit=None, job_tags=[tag], pending=True) == []
    assert len(service.jobs(limit=None, job_tags=[tag], pending=False)) == 5


def test_job_retrieval_and_delete(service):
    tag = f"del-{uuid.uuid4().hex[:8]}"
    job_id = _submit(service, tag)
    assert _wait_final(service, job_id)["state"]["status"] == "Completed"
    job = service.job(job_id)
    assert job.job_id() == job_id
    assert job.backend().name == "rest_simulator"
    service.delete_job(job_id)
    with pytest.raises(NotFoundError):
        service.job(job_id)
    with pytest.raises(NotFoundError):
        service.delete_job(job_id)


def test_idempotency_key_dedupes_at_the_server(service):
    tag = f"idem-{uuid.uuid4().hex[:8]}"
    key = str(uuid.uuid4())
    params = {"pubs": [[X_MEASURE, None, 8]], "version": 2}
    first = service.client.create_job(
        program_id="sampler",
        backend="rest_simulator",
        params=params,
        tags=[tag],
        idempotency_key=key,
    )
    again = service.client.create_job(
        program_id="sampler",
        backend="rest_simulator",
        params=params,
        tags=[tag],
        idempotency_key=key,
    )
    assert first["id"] == again["id"]
    assert service.client.jobs(job_tags=[tag])["count"] == 1


def test_usage(service):
    usage = service.usage()
    assert isinstance(usage, dict)


def test_one_service_shared_by_threads_logs_in_once(service):
    from concurrent.futures import ThreadPoolExecutor

    log = RequestLog(service)
    names = ["rest_line_5q", "rest_hex_27q", "rest_simulator", "rest_hex_127q"] * 10
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(lambda n: service.client.backend_status(n), names))
    assert len(statuses) == 40 and all(s["state"] for s in statuses)
    assert log.count("/identity/token", "POST") == 1


def test_classic_channel_jobs_round_trip(classic):
    tag = f"classic-{uuid.uuid4().hex[:8]}"
    job_id = _submit(classic, tag)
    assert _wait_final(classic, job_id)["state"]["status"] == "Completed"
    assert [j.job_id() for j in classic.jobs(job_tags=[tag])] == [job_id]
    assert classic.job(job_id).job_id() == job_id
    assert isinstance(classic.usage(), dict)
