"""Accounts: resolution order, environment variables, the saved-accounts file (mode 0600)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from qiskit_rest_provider import ProviderService
from qiskit_rest_provider.account import Account, config_file, resolve_account
from qiskit_rest_provider.exceptions import AccountError

ENV_NAMES = [
    "QISKIT_REST_TOKEN",
    "QISKIT_REST_URL",
    "QISKIT_REST_INSTANCE",
    "QISKIT_REST_CHANNEL",
    "QISKIT_REST_IAM_URL",
    "QISKIT_REST_VERIFY",
    "QISKIT_REST_ACCOUNT",
]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Never touch the real home: accounts file in tmp, no QISKIT_REST_* from the caller."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "cfg" / "accounts.json"
    monkeypatch.setenv("QISKIT_REST_CONFIG_FILE", str(path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return path


def test_config_file_env_override(isolated):
    assert config_file() == isolated


def test_save_account_writes_mode_0600_atomically(isolated):
    name = ProviderService.save_account(token="secret-1", url="http://127.0.0.1:9", name="local")
    assert name == "local"
    assert stat.S_IMODE(os.stat(isolated).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(isolated.parent).st_mode) == 0o700
    data = json.loads(isolated.read_text())
    assert data["default"] == "local"  # the first saved account becomes the default
    assert data["accounts"]["local"]["token"] == "secret-1"
    assert [p.name for p in isolated.parent.iterdir()] == ["accounts.json"]  # no temp leftovers
    # rewriting keeps the mode
    ProviderService.save_account(token="secret-2", url="http://h:1", name="other")
    assert stat.S_IMODE(os.stat(isolated).st_mode) == 0o600


def test_saved_accounts_round_trip_and_default(isolated):
    ProviderService.save_account(token="t1", url="http://a:1", name="a")
    ProviderService.save_account(
        token="t2",
        url="http://b:2",
        name="b",
        channel="ibm_quantum",
        instance="h/g/p",
        set_as_default=True,
    )
    accounts = ProviderService.saved_accounts()
    assert set(accounts) == {"a", "b"}
    assert accounts["b"]["is_default"] and not accounts["a"]["is_default"]
    assert accounts["b"]["instance"] == "h/g/p"
    assert set(ProviderService.saved_accounts(default=True)) == {"b"}
    assert set(ProviderService.saved_accounts(channel="ibm_quantum_platform")) == {"a"}
    service = ProviderService()  # the default account
    assert service.account.url == "http://b:2" and service.channel == "ibm_quantum"
    service = ProviderService(name="a")
    assert service.account.token == "t1"


def test_save_refuses_silent_overwrite(isolated):
    ProviderService.save_account(token="t1", url="http://a:1", name="a")
    ProviderService.save_account(token="t1", url="http://a:1", name="a")  # identical: fine
    with pytest.raises(AccountError, match="overwrite=True"):
        ProviderService.save_account(token="t2", url="http://a:1", name="a")
    ProviderService.save_account(token="t2", url="http://a:1", name="a", overwrite=True)
    assert ProviderService.saved_accounts()["a"]["token"] == "t2"


def test_delete_account(isolated):
    ProviderService.save_account(token="t1", url="http://a:1", name="a")
    ProviderService.save_account(token="t2", url="http://b:1", name="b")
    assert ProviderService.delete_account("b")
    assert not ProviderService.delete_account("b")
    assert set(ProviderService.saved_accounts()) == {"a"}
    assert ProviderService.delete_account()  # the default one
    assert ProviderService.saved_accounts() == {}
    with pytest.raises(AccountError, match="No API token"):
        ProviderService()


def test_unknown_saved_name_lists_the_known_ones(isolated):
    ProviderService.save_account(token="t1", url="http://a:1", name="a")
    with pytest.raises(AccountError, match=r"No saved account named 'zz'.*saved: a"):
        ProviderService(name="zz")


def test_resolution_order_arguments_env_saved(isolated, monkeypatch):
    ProviderService.save_account(
        token="saved-token", url="http://saved:1", instance="crn:saved", name="s"
    )
    # saved only
    acc = resolve_account()
    assert (acc.token, acc.url, acc.instance) == ("saved-token", "http://saved:1", "crn:saved")
    # env token: the saved account is not consulted at all (no saved token to another URL)
    monkeypatch.setenv("QISKIT_REST_TOKEN", "env-token")
    monkeypatch.setenv("QISKIT_REST_URL", "http://env:2")
    acc = resolve_account()
    assert (acc.token, acc.url, acc.instance) == ("env-token", "http://env:2", None)
    # arguments beat env
    acc = resolve_account(token="arg-token", instance="crn:arg")
    assert (acc.token, acc.url, acc.instance) == ("arg-token", "http://env:2", "crn:arg")
    acc = resolve_account(url="http://arg:3")
    assert (acc.token, acc.url) == ("env-token", "http://arg:3")
    # a named saved account is used even with env set, arguments/env override its fields
    acc = resolve_account(name="s")
    assert (acc.token, acc.url) == ("env-token", "http://env:2")
    assert acc.instance == "crn:saved"


def test_env_channel_verify_and_iam(monkeypatch):
    monkeypatch.setenv("QISKIT_REST_TOKEN", "tok")
    monkeypatch.setenv("QISKIT_REST_CHANNEL", "ibm_quantum")
    monkeypatch.setenv("QISKIT_REST_URL", "http://127.0.0.1:8000")
    monkeypatch.setenv("QISKIT_REST_INSTANCE", "local/default/main")
    monkeypatch.setenv("QISKIT_REST_VERIFY", "false")
    acc = resolve_account()
    assert acc.channel == "ibm_quantum" and acc.verify is False
    assert acc.runtime_url == "http://127.0.0.1:8000/runtime"
    assert acc.hgp == ("local", "default", "main")
    monkeypatch.setenv("QISKIT_REST_VERIFY", "/etc/ca.pem")
    monkeypatch.setenv("QISKIT_REST_CHANNEL", "ibm_cloud")
    monkeypatch.setenv("QISKIT_REST_INSTANCE", "crn:v1:x")
    monkeypatch.setenv("QISKIT_REST_IAM_URL", "http://iam:1")
    acc = resolve_account()
    assert acc.verify == "/etc/ca.pem" and acc.resolved_iam_url == "http://iam:1"
    assert acc.runtime_url == "http://127.0.0.1:8000/api/v1"


def test_missing_token_error_names_what_is_missing():
    with pytest.raises(AccountError) as info:
        ProviderService(url="http://127.0.0.1:8000")
    message = str(info.value)
    assert "token" in message and "QISKIT_REST_TOKEN" in message and "save_account" in message


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"channel": "bogus"}, "Invalid channel 'bogus'"),
        ({"url": "ftp://x"}, "Invalid url"),
        ({"url": "not a url"}, "Invalid url"),
        ({"channel": "ibm_quantum", "instance": "hub/group"}, "hub/group/project"),
        ({"token": "has space"}, "whitespace"),
        ({"iam_url": "iam.example"}, "Invalid iam_url"),
    ],
)
def test_invalid_fields_are_named(kwargs, pattern):
    kwargs = {"token": "tok", "url": "http://127.0.0.1:1", **kwargs}
    with pytest.raises(AccountError, match=pattern):
        ProviderService(**kwargs)


def test_defaults_and_iam_url_rules():
    acc = resolve_account(token="t", channel="ibm_quantum_platform")
    assert acc.url == "https://quantum.cloud.ibm.com"
    assert acc.runtime_url == "https://quantum.cloud.ibm.com/api/v1"
    assert acc.resolved_iam_url == "https://iam.cloud.ibm.com"
    acc = resolve_account(token="t", url="http://127.0.0.1:8000/")
    assert acc.resolved_iam_url == "http://127.0.0.1:8000"
    assert acc.runtime_url == "http://127.0.0.1:8000/api/v1"
    acc = resolve_account(token="t", url="http://127.0.0.1:8000/api/v1")
    assert acc.runtime_url == "http://127.0.0.1:8000/api/v1"


def test_platform_region_from_crn():
    crn = "crn:v1:bluemix:public:quantum-computing:eu-de:a/acc:inst::"
    acc = resolve_account(token="t", instance=crn, channel="ibm_quantum_platform")
    assert acc.runtime_url == "https://eu-de.quantum.cloud.ibm.com/api/v1"
    assert acc.resolved_iam_url == "https://iam.cloud.ibm.com"
    crn = "crn:v1:bluemix:public:quantum-computing:us-east:a/acc:inst::"
    assert (
        resolve_account(token="t", instance=crn, channel="ibm_cloud").url
        == "https://quantum.cloud.ibm.com"
    )
    assert resolve_account(token="t", instance=crn, url="http://h:1").url == "http://h:1"


def test_token_without_url_names_url_unless_the_channel_is_explicit(monkeypatch, tmp_path):
    """A token alone used to target IBM's cloud silently; now it asks for ``url``."""
    monkeypatch.setenv("QISKIT_REST_CONFIG_FILE", str(tmp_path / "accounts.json"))
    for var in ("QISKIT_REST_URL", "QISKIT_REST_CHANNEL", "QISKIT_REST_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(
        AccountError, match=r"No url: pass url=\.\.\..*channel='ibm_quantum_platform'"
    ):
        ProviderService(token="t")
    with pytest.raises(AccountError, match="No url"):
        resolve_account(token="t", instance="crn:v1:bluemix:public:quantum-computing:eu-de:a::")
    # an explicit channel (argument or environment) still means IBM's cloud, as before
    assert resolve_account(token="t", channel="ibm_quantum").url.startswith("https://auth.")
    monkeypatch.setenv("QISKIT_REST_CHANNEL", "ibm_quantum_platform")
    assert resolve_account(token="t").url == "https://quantum.cloud.ibm.com"


def test_repr_hides_token():
    acc = Account("ibm_cloud", "http://h:1", "super-secret-token")
    assert "super-secret-token" not in repr(acc)
    service = ProviderService(token="super-secret-token", url="http://h:1")
    assert "super-secret-token" not in repr(service)


def test_constructor_does_no_network_io():
    # Port 9 on a TEST-NET address: any request would hang or fail; construction must not care.
    ProviderService(token="t", url="http://192.0.2.1:9")


def test_world_readable_file_is_warned_about(isolated, caplog):
    ProviderService.save_account(token="t1", url="http://a:1", name="a")
    os.chmod(isolated, 0o644)
    ProviderService.saved_accounts()
    assert any("0600" in r.getMessage() for r in caplog.records)


def test_corrupt_file_gives_account_error(isolated):
    isolated.parent.mkdir(parents=True)
    isolated.write_text("{not json")
    with pytest.raises(AccountError, match="not valid JSON"):
        ProviderService.saved_accounts()


def test_active_account_has_no_token():
    service = ProviderService(token="tok-secret", url="http://h:1", instance="crn:x")
    active = service.active_account()
    assert "token" not in active and active["url"] == "http://h:1" and active["instance"] == "crn:x"
