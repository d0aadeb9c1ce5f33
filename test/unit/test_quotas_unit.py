"""Per-instance quotas: the UTC day, the values admins write, defaults, and how shots count."""

from __future__ import annotations

import calendar

import pytest

pytest.importorskip("sqlalchemy")

from qiskit_rest_provider.server.backends.catalog import BackendCatalog  # noqa: E402
from qiskit_rest_provider.server.config import ServerConfig  # noqa: E402
from qiskit_rest_provider.server.jobs import quota_store  # noqa: E402
from qiskit_rest_provider.server.jobs.admission import prepare_job  # noqa: E402
from qiskit_rest_provider.server.jobs.quotas import (  # noqa: E402
    UNLIMITED,
    day_window,
    job_shots,
    parse_limit,
    resolve,
)
from qiskit_rest_provider.server.jobs.store import Store  # noqa: E402

BELL = (
    'OPENQASM 3.0; include "stdgates.inc"; bit[2] meas; h $0; cx $0, $1; '
    "meas[0] = measure $0; meas[1] = measure $1;"
)
ONE_PARAM = (
    'OPENQASM 3.0; include "stdgates.inc"; input float[64] t; bit[1] c; rx(t) $0; '
    "c[0] = measure $0;"
)


@pytest.fixture(scope="module")
def backend():
    return BackendCatalog.load().get("rest_simulator")


def test_the_day_is_the_utc_calendar_day():
    noon = calendar.timegm((2026, 12, 31, 12, 0, 0))
    start, end = day_window(noon)
    assert start == calendar.timegm((2026, 12, 31, 0, 0, 0))
    assert end == calendar.timegm((2027, 1, 1, 0, 0, 0))
    assert day_window(end) == (end, end + 86400)  # midnight opens the next day


@pytest.mark.parametrize(
    ("name", "text", "stored"),
    [
        ("max_shots_per_day", "1000", 1000),
        ("max_shots_per_day", "0", 0),
        ("max_queued_jobs", "Unlimited", UNLIMITED),
        ("max_seconds_per_day", "2.5", 2.5),
        ("max_seconds_per_day", "default", None),
    ],
)
def test_admin_values(name, text, stored):
    assert parse_limit(name, text) == stored


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("max_shots_per_day", "-1"),
        ("max_shots_per_day", "1.5"),
        ("max_seconds_per_day", "nan"),
        ("max_seconds_per_day", "inf"),
        ("max_queued_jobs", str(2**31)),
        ("max_queued_jobs", "lots"),
    ],
)
def test_bad_admin_values_name_the_quota(name, text):
    with pytest.raises(ValueError, match=name):
        parse_limit(name, text)


def test_own_quota_wins_over_the_server_default(tmp_path):
    config = ServerConfig(data_dir=tmp_path, max_queued_per_instance=7, max_shots_per_day=500)
    assert resolve(config, None, "max_queued_jobs").limit == 7
    assert resolve(config, None, "max_shots_per_day").limit == 500
    assert resolve(config, None, "max_seconds_per_day").limit is None  # 0 = no server limit
    config.prepare_data_dir()
    store = Store(config)
    try:
        instance = store.ensure_instance("a/b/c", "crn:a")
        quota_store.set_quota(store, instance.id, max_shots_per_day=UNLIMITED, max_queued_jobs=0)
        row = quota_store.get_quota(store, instance.id)
        assert row is not None and row.instance_id == instance.id
        assert [r.instance for r in quota_store.list_quotas(store)] == ["a/b/c"]
        assert resolve(config, row, "max_shots_per_day").limit is None  # unlimited
        assert resolve(config, row, "max_queued_jobs").limit == 0  # suspended
        assert resolve(config, row, "max_seconds_per_day").source == "server"
        quota_store.set_quota(store, instance.id, max_seconds_per_day=3.0)  # others kept
        row = quota_store.get_quota(store, instance.id)
        assert (row.max_queued_jobs, row.max_seconds_per_day) == (0, 3.0)
        assert quota_store.clear_quota(store, instance.id)
        assert quota_store.get_quota(store, instance.id) is None
        assert not quota_store.clear_quota(store, instance.id)
    finally:
        store.close()


def test_shots_count_parameter_sets_and_estimator_precision(backend):
    sampler = prepare_job(
        "sampler",
        {"pubs": [[BELL, None, 100], [ONE_PARAM, [[0.1], [0.2], [0.3]], 10]], "version": 2},
        backend,
    )
    assert job_shots(sampler) == 100 + 3 * 10
    zz = "Z" * 2 + "I" * (backend.num_qubits - 2)
    estimator = prepare_job(
        "estimator",
        {"pubs": [['OPENQASM 3.0; include "stdgates.inc"; h $0; cx $0, $1;', zz, None, 0.125]],
         "version": 2},
        backend,
    )  # fmt: skip
    assert job_shots(estimator) == 64  # 1 / 0.125**2
