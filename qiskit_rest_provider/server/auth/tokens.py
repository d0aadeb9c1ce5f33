"""Who is calling: API tokens, classic access tokens, IAM-style JWTs, rate limits.

Secrets are stored as salted SHA-256 hashes only (API tokens are random 256-bit strings, so a
slow KDF buys nothing). JWTs are HS256, signed with a key generated once and kept (mode 0600) in
the data dir, checked on every request (the signature once per token text, the expiry every
time) and revocable by logout (their ``jti`` is a row of ``access_tokens``). Nothing here logs
a credential.

Verified API tokens and JWTs are cached for 30 s (matching a token means hashing it against every
stored one), but a cache hit still reads its API token's ``revoked`` flag by primary key: a token
revoked by ``qiskit-rest-provider tokens revoke`` in another process fails on the next request.

Other routers authenticate with the FastAPI dependency :func:`get_caller`::

    @router.get("/thing")
    def thing(caller: Caller = Depends(get_caller)) -> dict: ...

A cache hit is answered on the event loop (:meth:`Authenticator.answers_from_cache`), the rest
in a worker thread.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from ..config import ServerConfig, instance_crn
from ..http import ApiError
from ..jobs.models import AccessToken, Instance
from ..jobs.store import Store, new_id
from .throttle import LoginThrottle

logger = logging.getLogger(__name__)

JWT_ALGORITHM = "HS256"
_API_CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class Caller:
    """An authenticated caller and the instance it acts on."""

    user_id: str
    instance_id: str
    instance_crn: str
    instance_hgp: str
    token_id: str  # the API token behind the credential (rate-limit key)
    access_id: str | None = None  # the access-token / JWT row, for logout

    def owns_instance(self, name: str | None) -> bool:
        """Whether ``name`` (CRN or hub/group/project) is the caller's instance."""
        return not name or name in (self.instance_crn, self.instance_hgp)


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256((salt + secret).encode()).hexdigest()


def new_secret(nbytes: int = 32) -> str:
    """A random URL-safe secret of ``nbytes`` bytes that does not start with ``-``.

    One in 64 of ``secrets.token_urlsafe`` values does, and a command line then reads it as an
    option (``--token -x…``: "expected one argument").
    """
    while True:
        value = secrets.token_urlsafe(nbytes)
        if not value.startswith("-"):
            return value


def load_or_create_secret(path: Path, nbytes: int = 32) -> str:
    """Read a secret file, or create it (mode 0600) with a fresh random value."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = new_secret(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


class RateLimiter:
    """Token bucket per key: ``rate`` requests/second, bursts of ``2 * rate`` (at least 10)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(10.0, 2.0 * rate)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Take one token for ``key`` or raise 429 with ``Retry-After``."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = max(1, math.ceil((1.0 - tokens) / self.rate))
                raise ApiError(
                    429,
                    f"rate limit of {self.rate:g} requests/second exceeded; retry in {wait} s",
                    code="1202",
                    headers={"Retry-After": str(wait)},
                )
            self._buckets[key] = (tokens - 1.0, now)


class Authenticator:
    """Issues and checks every kind of credential the server accepts."""

    def __init__(self, store: Store, config: ServerConfig) -> None:
        self.store = store
        self.config = config
        self.signing_key = load_or_create_secret(config.data_dir / "jwt_signing_key")
        self.limiter = RateLimiter(config.rate_limit)
        self.throttle = LoginThrottle(config.max_failed_logins, config.failed_login_window)
        self._pepper = secrets.token_bytes(32)
        self._api_cache: dict[bytes, tuple[float, Caller]] = {}
        # JWT id -> (valid until, caller): skips a store read on every request. Safe because
        # one server process owns a database and revoke() drops the entry at once.
        self._jwt_cache: dict[str, tuple[float, Caller]] = {}
        # JWT text -> (exp, jti) of a token whose signature and claims checked out: the same
        # text under the same key always checks out again, so later requests only compare
        # its expiry with the clock (a client sends one JWT for many requests)
        self._jwt_verified: dict[str, tuple[float, str]] = {}
        self._instances: dict[str, Instance] = {}
        self._lock = threading.Lock()

    # --------------------------------------------------------------- provisioning
    def add_api_token(self, token: str, hgp: str, user_name: str = "local-user") -> Caller:
        """Register ``token`` for instance ``hgp`` (idempotent for a token already known).

        Raises:
            ValueError: ``token`` was revoked: registering it again (say a restart with the same
                ``--token``) would silently undo the revocation.
        """
        known = self._find_api_token(token)
        if known is not None:
            return known
        if self._revoked_match(token):
            raise ValueError(
                "this API token was revoked (qiskit-rest-provider tokens revoke); "
                "use another token or let the server generate one"
            )
        inst = self.store.ensure_instance(hgp, instance_crn(hgp))
        salt = secrets.token_hex(16)
        row = self.store.add_user_with_api_token(user_name, inst.id, salt, _hash(salt, token))
        return self._caller(row.user_id, row.instance_id, row.id)

    def _instance(self, instance_id: str) -> Instance:
        inst = self._instances.get(instance_id)
        if inst is None:
            inst = self.store.instance(instance_id)
            if inst is None:  # pragma: no cover - foreign key guarantees it
                raise ApiError(401, "the credential's instance no longer exists")
            self._instances[instance_id] = inst
        return inst

    def _caller(
        self, user_id: str, instance_id: str, token_id: str, access_id: str | None = None
    ) -> Caller:
        inst = self._instance(instance_id)
        return Caller(user_id, inst.id, inst.crn, inst.hgp, token_id, access_id)

    def _find_api_token(self, token: str) -> Caller | None:
        if not token or len(token) > 512:
            return None
        key = hmac.new(self._pepper, token.encode(), hashlib.sha256).digest()
        now = time.monotonic()
        hit = self._api_cache.get(key)
        if hit is not None and hit[0] > now:
            if self.store.api_token_active(hit[1].token_id):
                return hit[1]
            with self._lock:
                self._api_cache.pop(key, None)
            return None
        for row in self.store.active_api_tokens():
            if hmac.compare_digest(row.hash, _hash(row.salt, token)):
                caller = self._caller(row.user_id, row.instance_id, row.id)
                with self._lock:
                    self._api_cache[key] = (now + _API_CACHE_SECONDS, caller)
                return caller
        return None

    def _revoked_match(self, token: str) -> bool:
        """Whether ``token`` is one of the revoked API tokens."""
        return any(
            hmac.compare_digest(row.hash, _hash(row.salt, token))
            for row, _ in self.store.api_tokens()
            if row.revoked
        )

    def revoke_api_token(self, token_id: str) -> bool:
        """Revoke an API token and what was issued from it; this process forgets it at once.

        Other processes sharing the store see it on their next request (see the module doc).
        """
        changed = self.store.revoke_api_token(token_id)
        with self._lock:
            for key in [k for k, (_, c) in self._api_cache.items() if c.token_id == token_id]:
                self._api_cache.pop(key, None)
            for jti in [k for k, (_, c) in self._jwt_cache.items() if c.token_id == token_id]:
                self._jwt_cache.pop(jti, None)
        return changed

    def api_caller(self, token: str) -> Caller:
        """The caller owning an API token, or 401."""
        caller = self._find_api_token(token)
        if caller is None:
            raise ApiError(401, "invalid API token", code="1201")
        return caller

    def login_caller(self, token: str, host: str) -> Caller:
        """Like :meth:`api_caller` for the login routes, throttled on failures per address/key.

        Raises:
            ApiError: 429 (too many recent failures: the key is not even checked) or 401.
        """
        self.throttle.check(host, token)
        caller = self._find_api_token(token)
        if caller is None:
            self.throttle.failed(host, token)
            raise ApiError(401, "invalid API token", code="1201")
        return caller

    # ------------------------------------------------------------------- issuing
    def issue_access_token(self, caller: Caller) -> tuple[str, AccessToken]:
        """A classic access token ``<id>.<secret>`` (``loginWithToken``)."""
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_hex(16)
        now = time.time()
        row = AccessToken(
            id=new_id(),
            kind="access",
            api_token_id=caller.token_id,
            salt=salt,
            hash=_hash(salt, secret),
            created=now,
            expires=now + self.config.access_token_ttl,
            revoked=False,
        )
        self.store.add_access_token(row)
        return f"{row.id}.{secret}", row

    def issue_jwt(self, caller: Caller) -> tuple[str, int, int]:
        """An IAM-style JWT; returns ``(token, iat, exp)``."""
        iat = int(time.time())
        exp = iat + self.config.jwt_ttl
        row = AccessToken(
            id=new_id(),
            kind="jwt",
            api_token_id=caller.token_id,
            created=float(iat),
            expires=float(exp),
            revoked=False,
        )
        self.store.add_access_token(row)
        claims = {
            "iss": "qiskit-rest-provider",
            "sub": caller.user_id,
            "iat": iat,
            "exp": exp,
            "jti": row.id,
            "instance": caller.instance_crn,
        }
        return jwt.encode(claims, self.signing_key, algorithm=JWT_ALGORITHM), iat, exp

    def revoke(self, caller: Caller) -> None:
        """Logout: the access token / JWT the caller used stops working at once."""
        if caller.access_id is None:
            return
        with self._lock:
            self._jwt_cache.pop(caller.access_id, None)
        self.store.revoke_access_token(caller.access_id)

    # ------------------------------------------------------------------ checking
    def _from_access_row(self, access_id: str, secret: str | None) -> Caller | None:
        found = self.store.access_token_with_api_token(access_id)
        if found is None:
            return None
        row, api = found
        if row.revoked or row.expires < time.time():
            return None
        if row.kind == "access":
            if secret is None or row.hash is None or row.salt is None:
                return None
            if not hmac.compare_digest(row.hash, _hash(row.salt, secret)):
                return None
        if api is None or api.revoked:
            return None
        return self._caller(api.user_id, api.instance_id, api.id, row.id)

    def _verified_jwt(self, token: str) -> tuple[float, str] | None:
        """``(exp, jti)`` of a JWT this server signed and that has not expired, else ``None``.

        Raises:
            ApiError: 401, the token expired.
        """
        verified = self._jwt_verified.get(token)
        if verified is None:
            try:
                claims = jwt.decode(
                    token,
                    self.signing_key,
                    algorithms=[JWT_ALGORITHM],
                    options={"require": ["exp", "iat", "jti"]},
                )
            except jwt.ExpiredSignatureError as exc:
                raise ApiError(401, "access token expired", code="1201") from exc
            except jwt.PyJWTError:
                return None
            verified = (float(claims["exp"]), str(claims["jti"]))
            with self._lock:
                if len(self._jwt_verified) > 10_000:
                    self._jwt_verified.clear()
                self._jwt_verified[token] = verified
        elif verified[0] <= time.time():  # what jwt.decode checks of "exp" (no leeway)
            with self._lock:
                self._jwt_verified.pop(token, None)
            raise ApiError(401, "access token expired", code="1201")
        return verified

    def _from_jwt(self, token: str) -> Caller | None:
        verified = self._verified_jwt(token)
        if verified is None:
            return None
        exp, jti = verified
        now = time.monotonic()
        hit = self._jwt_cache.get(jti)
        if hit is not None and hit[0] > now:
            if self.store.api_token_active(hit[1].token_id):
                return hit[1]
            with self._lock:
                self._jwt_cache.pop(jti, None)
            return None
        caller = self._from_access_row(jti, None)
        if caller is not None:
            # never past the token's own expiry (and _verified_jwt checks exp on every request)
            ttl = min(_API_CACHE_SECONDS, max(0.0, exp - time.time()))
            with self._lock:
                if len(self._jwt_cache) > 10_000:
                    self._jwt_cache.clear()
                self._jwt_cache[jti] = (now + ttl, caller)
        return caller

    def resolve(self, credential: str) -> Caller | None:
        """Whatever kind of credential this is, the caller it names (or ``None``)."""
        credential = credential.strip()
        if not credential:
            return None
        if credential.count(".") == 2 and credential.startswith("eyJ"):
            return self._from_jwt(credential)
        if credential.count(".") == 1:
            access_id, _, secret = credential.partition(".")
            caller = self._from_access_row(access_id, secret)
            if caller is not None:
                return caller
        return self._find_api_token(credential)

    def answers_from_cache(self, request: Request) -> bool:
        """Whether :meth:`authenticate` would answer ``request`` from this process' caches.

        Then it costs one primary-key read on SQLite (the revoked flag), cheap enough for the
        event loop: :func:`get_caller` skips the hop to a worker thread. Anything else (a cache
        miss, a wrong credential, another database) goes to a thread as before.
        """
        if self.store.engine.dialect.name != "sqlite":
            return False
        credential = _credential(request.headers).strip()
        now = time.monotonic()
        if credential.count(".") == 2 and credential.startswith("eyJ"):
            verified = self._jwt_verified.get(credential)  # its jti, once it checked out
            hit = None if verified is None else self._jwt_cache.get(verified[1])
        elif credential and credential.count(".") != 1 and len(credential) <= 512:
            key = hmac.new(self._pepper, credential.encode(), hashlib.sha256).digest()
            hit = self._api_cache.get(key)
        else:
            return False
        return hit is not None and hit[0] > now

    def authenticate(self, request: Request) -> Caller:
        """Authenticate a runtime request (both channels) and apply the rate limit."""
        headers = request.headers
        credential = _credential(headers)
        if not credential:
            raise ApiError(
                401,
                "missing credentials: send X-Access-Token, Authorization: Bearer <token> "
                "or Authorization: apikey <key>",
                code="1200",
            )
        host = client_host(request)
        self.throttle.check(host, credential)
        try:
            caller = self.resolve(credential)
        except ApiError as exc:  # an expired JWT
            if exc.status_code == 401:
                self.throttle.failed(host, credential)
            raise
        if caller is None:
            self.throttle.failed(host, credential)
            # failed attempts count against the client address: guessing is rate limited too
            self.limiter.check(f"ip:{host}")
            raise ApiError(401, "invalid, expired or logged-out credentials", code="1201")
        self.limiter.check(caller.token_id)
        crn = headers.get("service-crn")
        if crn and not caller.owns_instance(crn.strip()):
            raise ApiError(
                403,
                "Service-CRN names an instance this credential has no access to",
                code="forbidden_instance",
            )
        return caller


def _credential(headers: Any) -> str:
    """The credential a request carries (``X-Access-Token`` or ``Authorization``), or ``""``."""
    credential = headers.get("x-access-token")
    if not credential:
        auth = headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() in ("bearer", "apikey") and value:
            credential = value
    return credential or ""


def client_host(request: Request) -> str:
    """The client address of a request (the key of per-address limits)."""
    return request.client.host if request.client else "?"


async def get_caller(request: Request) -> Caller:
    """FastAPI dependency: the authenticated caller of a request (401/403/429 otherwise).

    A caller known to the caches is checked on the event loop (no hop to a worker thread on
    every request); anything that needs the database beyond one primary-key read runs in a
    thread.
    """
    auth: Authenticator = request.app.state.auth
    if auth.answers_from_cache(request):
        caller = auth.authenticate(request)
    else:
        caller = await run_in_threadpool(auth.authenticate, request)
    request.state.caller = caller
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]
"""Annotated dependency: ``def route(caller: CallerDep)``."""
