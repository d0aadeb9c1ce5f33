"""Unit tests of credentials: hashed storage, JWT signature/expiry, logout, rate limits."""

from __future__ import annotations

import time

import jwt
import pytest

pytest.importorskip("fastapi")

from qiskit_rest_provider.server.auth.tokens import Authenticator, RateLimiter
from qiskit_rest_provider.server.config import ServerConfig
from qiskit_rest_provider.server.http import ApiError
from qiskit_rest_provider.server.jobs.store import Store


@pytest.fixture
def auth(tmp_path):
    config = ServerConfig(data_dir=tmp_path, jwt_ttl=60)
    config.prepare_data_dir()
    store = Store(config)
    yield Authenticator(store, config)
    store.close()


def test_tokens_are_stored_as_salted_hashes_only(auth, tmp_path):
    secret = "plain-secret-token-value-123"
    caller = auth.add_api_token(secret, "a/b/c")
    access, _ = auth.issue_access_token(caller)
    auth.store.close()
    raw = (tmp_path / "store.sqlite3").read_bytes()
    for name in ("store.sqlite3-wal",):
        path = tmp_path / name
        if path.exists():
            raw += path.read_bytes()
    assert secret.encode() not in raw
    assert access.split(".")[1].encode() not in raw
    assert oct((tmp_path / "jwt_signing_key").stat().st_mode & 0o777) == "0o600"


def test_each_credential_kind_resolves_to_the_instance(auth):
    caller = auth.add_api_token("tok-a", "a/b/c")
    other = auth.add_api_token("tok-b", "x/y/z")
    assert caller.instance_id != other.instance_id
    assert auth.resolve("tok-a").instance_hgp == "a/b/c"
    access, _ = auth.issue_access_token(caller)
    assert auth.resolve(access).instance_hgp == "a/b/c"
    token, iat, exp = auth.issue_jwt(other)
    assert exp - iat == 60
    assert auth.resolve(token).instance_hgp == "x/y/z"
    assert auth.resolve("nope") is None
    assert auth.resolve(access[:-2] + "xx") is None  # wrong secret


def test_logout_revokes_access_tokens_and_jwts(auth):
    caller = auth.add_api_token("tok-a", "a/b/c")
    access, _ = auth.issue_access_token(caller)
    token, _, _ = auth.issue_jwt(caller)
    auth.revoke(auth.resolve(access))
    auth.revoke(auth.resolve(token))
    assert auth.resolve(access) is None
    assert auth.resolve(token) is None
    assert auth.resolve("tok-a") is not None  # the API token itself stays valid


def test_jwt_signature_and_expiry_are_enforced(auth):
    caller = auth.add_api_token("tok-a", "a/b/c")
    token, _, _ = auth.issue_jwt(caller)
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode(claims, "not-the-key-" + "x" * 32, algorithm="HS256")
    assert auth.resolve(forged) is None
    expired = jwt.encode(
        {**claims, "iat": int(time.time()) - 100, "exp": int(time.time()) - 50},
        auth.signing_key,
        algorithm="HS256",
    )
    with pytest.raises(ApiError) as err:
        auth.resolve(expired)
    assert err.value.status_code == 401


def test_rate_limiter_answers_429_with_retry_after():
    limiter = RateLimiter(rate=1.0)
    for _ in range(10):  # burst capacity
        limiter.check("k")
    with pytest.raises(ApiError) as err:
        limiter.check("k")
    assert err.value.status_code == 429
    assert int(err.value.headers["Retry-After"]) >= 1
    limiter.check("other-key")  # per key
    RateLimiter(rate=0).check("k")  # disabled


def test_generated_secrets_are_kept_with_mode_0600(tmp_path):
    from qiskit_rest_provider.server.auth.tokens import load_or_create_secret

    first = load_or_create_secret(tmp_path / "api_token")
    assert load_or_create_secret(tmp_path / "api_token") == first  # generated once, then kept
    assert oct((tmp_path / "api_token").stat().st_mode & 0o777) == "0o600"
    assert len(first) >= 40


def test_cli_add_token_registers_another_instance(tmp_path, capsys):
    from qiskit_rest_provider.cli import main

    assert (
        main(["add-token", "--data-dir", str(tmp_path), "--instance", "x/y/z", "--token", "T1"])
        == 0
    )
    out = capsys.readouterr().out
    assert "API token: T1" in out and "crn:v1:local:public:quantum-computing:local:a/x:y-z::" in out
    config = ServerConfig(data_dir=tmp_path)
    store = Store(config)
    try:
        assert Authenticator(store, config).resolve("T1").instance_hgp == "x/y/z"
    finally:
        store.close()


def test_a_jwt_checked_once_still_expires_on_time(tmp_path):
    """Its signature is verified once per token text; its expiry on every request."""
    config = ServerConfig(data_dir=tmp_path, jwt_ttl=2)
    config.prepare_data_dir()
    store = Store(config)
    try:
        auth = Authenticator(store, config)
        caller = auth.add_api_token("tok-a", "a/b/c")
        token, _, exp = auth.issue_jwt(caller)
        assert auth.resolve(token).instance_hgp == "a/b/c"
        assert auth.resolve(token).instance_hgp == "a/b/c"  # from the caches
        time.sleep(max(0.0, exp - time.time()) + 0.05)
        with pytest.raises(ApiError) as err:
            auth.resolve(token)
        assert err.value.status_code == 401 and "expired" in str(err.value)
    finally:
        store.close()


def test_a_cached_jwt_of_a_revoked_api_token_fails_at_once(auth):
    caller = auth.add_api_token("tok-a", "a/b/c")
    token, _, _ = auth.issue_jwt(caller)
    assert auth.resolve(token) is not None  # now cached (signature and caller)
    assert auth.store.revoke_api_token(caller.token_id)  # as another process would
    assert auth.resolve(token) is None


def test_generated_secrets_never_start_with_a_dash():
    """A token that starts with ``-`` reads as an option on a command line (``--token -x``):
    one in 64 of ``token_urlsafe`` values would. ``new_secret`` keeps the length and alphabet."""
    import re

    from qiskit_rest_provider.server.auth.tokens import new_secret

    values = [new_secret() for _ in range(3000)]  # ~47 would start with "-" otherwise
    assert not any(v.startswith("-") for v in values)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{43}", v) for v in values)
    assert len(set(values)) == len(values)
    assert any("-" in v for v in values)  # the dash is still in the alphabet elsewhere
