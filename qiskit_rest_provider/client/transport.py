"""HTTP policy: one keep-alive ``requests.Session``, timeouts, bounded retries, error mapping.

Retry rules (each attempt counts against :attr:`RetryPolicy.max_retries`, and the sleeps
against :attr:`RetryPolicy.max_elapsed`, so a call always ends within a known bound):

* **connection never made** (DNS failure, refused, connect timeout): retried for every method,
  since the request never reached the service. One exception: a connection *refused* by a service
  this transport has never reached is retried only within :attr:`RetryPolicy.refused_budget`
  seconds of sleeping (nothing listens there: most likely the server is not running, and a person
  should hear so in a second or two, with the URL, not after 12 s). Once a service has answered,
  refusals get the full policy (a restart on the same port is worth riding out);
* **connection dropped, read timeout, truncated body**: retried only for idempotent requests
  (GET, PUT, DELETE, and POSTs the caller marks idempotent: login, cancel, logout, and job
  creation, which carries an ``Idempotency-Key`` so the service answers a repeat with the same
  job);
* **429**: retried for every method (the service refused the request without acting on it),
  sleeping ``Retry-After`` seconds (capped by :attr:`RetryPolicy.retry_after_max`) or the backoff;
  but not a 429 with code ``quota_exceeded`` (a daily quota: it frees up hours later), raised at
  once;
* **500/502/503/504/520-524**: retried for idempotent requests only; ``PATCH`` never is.

Backoff is exponential with jitter: attempt *n* sleeps a random time in
``[d/2, d]`` with ``d = min(backoff_max, backoff_base * 2**(n-1))``.

No qiskit import here (a test checks it): the transport deals in bytes and plain dicts.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlparse

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter

from ..exceptions import RequestError

logger = logging.getLogger(__name__)

#: Statuses that mean "the service (or a proxy in front of it) failed; trying again may work".
RETRY_STATUSES = frozenset({500, 502, 503, 504, 520, 521, 522, 523, 524})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: Headers that carry credentials: removed when a redirect leaves the original host.
CREDENTIAL_HEADERS = ("Authorization", "X-Access-Token", "Service-CRN", "Proxy-Authorization")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard the transport tries before giving up.

    Attributes:
        max_retries: retries after the first attempt (so at most ``max_retries + 1`` attempts).
        backoff_base: seconds before the first retry (before jitter); doubled per retry.
        backoff_max: cap of one backoff sleep, in seconds.
        retry_after_max: cap of an honoured ``Retry-After``, in seconds; a longer one is
            shortened to this.
        max_elapsed: total seconds of sleeping between attempts one call may spend; once
            reached the last failure is raised (or returned) at once.
        refused_budget: seconds of sleeping a call may spend retrying "connection refused"
            from a service this transport has never reached (a server that is not running);
            the default fails such a call in about 1.5 s.
    """

    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    retry_after_max: float = 30.0
    max_elapsed: float = 60.0
    refused_budget: float = 2.0

    def backoff(self, retry: int) -> float:
        """Seconds to sleep before retry number ``retry`` (1-based), with jitter."""
        delay = min(self.backoff_max, self.backoff_base * (2 ** (retry - 1)))
        return delay * (0.5 + random.random() / 2)


NO_RETRY = RetryPolicy(max_retries=0)


#: The error code of a 429 that retrying soon cannot cure: a per-instance quota that resets
#: at a fixed time (the reference server's D10 body; see the server guide's "Quotas").
QUOTA_EXCEEDED_CODE = "quota_exceeded"


def _is_quota_refusal(response: requests.Response) -> bool:
    """Whether a 429 says a quota is spent (``errors[0].code``), so it is raised at once."""
    try:
        body = response.json()
        return bool(body["errors"][0]["code"] == QUOTA_EXCEEDED_CODE)
    except (ValueError, KeyError, IndexError, TypeError):
        return False


def _retry_after(response: requests.Response) -> float | None:
    """``Retry-After`` in seconds (integer or HTTP-date form), or ``None``."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _never_connected(err: BaseException) -> bool:
    """Whether a ``requests`` error proves the request never reached the service."""
    if isinstance(err, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(err, requests.exceptions.ProxyError):
        return False
    if isinstance(err, requests.exceptions.ConnectionError):
        reason = err.args[0] if err.args else None
        if isinstance(reason, urllib3.exceptions.MaxRetryError):
            reason = reason.reason
        return isinstance(
            reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)
        )
    return False


def _refused(err: BaseException) -> bool:
    """Whether a ``requests`` error is a refused TCP connection (nothing listens there)."""
    if not isinstance(err, requests.exceptions.ConnectionError) or isinstance(
        err, requests.exceptions.ProxyError
    ):
        return False
    reason = err.args[0] if err.args else None
    if isinstance(reason, urllib3.exceptions.MaxRetryError):
        reason = reason.reason
    if not isinstance(reason, urllib3.exceptions.NewConnectionError):
        return False
    seen: set[int] = set()
    cause: BaseException | None = reason
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, ConnectionRefusedError):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return "refused" in str(reason).lower()


def _origin(url: str) -> str:
    """``scheme://host:port`` of a URL (what a person needs to know which service is down)."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    host = f"[{parsed.hostname}]" if parsed.hostname and ":" in parsed.hostname else parsed.hostname
    return f"{parsed.scheme}://{host}:{port}"


def _query_string(params: Any) -> str:
    """``params`` as the query string requests would build (``None`` values left out).

    Handing requests a string skips its per-request type checks of a mapping (runtime
    ``Protocol`` checks, ~20 µs a request); an empty string stands for no parameters.
    """
    if params is None:
        return ""
    if isinstance(params, (str, bytes)):
        return params.decode() if isinstance(params, bytes) else params
    pairs: list[tuple[Any, Any]] = []
    for key, values in params.items() if isinstance(params, Mapping) else params:
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
            values = [values]
        pairs.extend((key, value) for value in values if value is not None)
    return urlencode(pairs)


def _describe(err: BaseException) -> str:
    """A short description of a transport failure (no URL credentials: we never put any in URLs)."""
    if isinstance(err, requests.exceptions.ConnectTimeout):
        return "connection timed out"
    if isinstance(err, requests.exceptions.ReadTimeout):
        return "no response within the read timeout"
    if isinstance(err, requests.exceptions.ChunkedEncodingError):
        return "the response body was cut off"
    if _never_connected(err):
        return "could not connect"
    if isinstance(err, requests.exceptions.ConnectionError):
        return "the connection was dropped"
    return type(err).__name__


def _keep_headers(request: Any) -> Any:
    """``requests`` auth hook that leaves the request as it is."""
    return request


class _Session(requests.Session):
    """A ``requests.Session`` that drops our credential headers on cross-host redirects.

    It also resolves the environment's settings (proxy variables, CA bundle variables) once per
    origin: ``requests`` re-reads them on every request, about 1 ms each, which was a tenth of a
    small job's round trip. A process that changes ``HTTPS_PROXY`` and the like after its first
    request to a host keeps the earlier settings for that host.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[tuple, Any] = {}

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        parsed = urlparse(str(url))
        key = (
            parsed.scheme,
            parsed.hostname,
            parsed.port,
            tuple(sorted((proxies or {}).items())),
            stream,
            verify,
            cert if not isinstance(cert, list) else tuple(cert),
        )
        settings = self._environment.get(key)
        if settings is None:
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            if len(self._environment) > 64:
                self._environment.clear()
            self._environment[key] = settings
        return {k: dict(v) if isinstance(v, dict) else v for k, v in settings.items()}

    def rebuild_auth(self, prepared_request: Any, response: requests.Response) -> None:
        super().rebuild_auth(prepared_request, response)
        old = urlparse(response.request.url)
        new = urlparse(prepared_request.url)
        if (old.scheme, old.hostname, old.port) != (new.scheme, new.hostname, new.port):
            for name in CREDENTIAL_HEADERS:
                prepared_request.headers.pop(name, None)


class Transport:
    """Sends requests with the retry policy; knows nothing about authentication or endpoints.

    Args:
        verify: TLS verification (``True``, ``False`` or a CA bundle path).
        proxies: ``requests``-style proxies.
        connect_timeout: seconds to establish a connection.
        read_timeout: seconds to wait for each chunk of a response.
        retry: the :class:`RetryPolicy`.
        pool_size: keep-alive connections kept per host (threads beyond it wait for one).
        sleep: the sleep function (tests replace it to observe backoff without waiting).
    """

    def __init__(
        self,
        *,
        verify: bool | str = True,
        proxies: Mapping[str, str] | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        pool_size: int = 16,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.session = _Session()
        self._bound = threading.local()
        self.session.trust_env = proxies is None  # explicit proxies win over *_PROXY variables
        # A no-op auth object: stops requests from replacing our Authorization header with
        # credentials from ~/.netrc (which it does when trust_env is on and no auth is set).
        self.session.auth = _keep_headers
        self.session.verify = verify
        if proxies:
            self.session.proxies.update(proxies)
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.clear()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        #: Origins (``scheme://host:port``) that have answered at least once: refusals from
        #: them are a restart worth riding out, from the others a server that is not running.
        self._reached: set[str] = set()

    def close(self) -> None:
        """Close pooled connections."""
        self.session.close()

    @contextmanager
    def bounded(self, deadline: float | None) -> Iterator[None]:
        """Bound every request this thread sends inside the block by ``deadline``.

        A logical call may send several requests (a login or token refresh before the call
        itself); each of them must respect the caller's deadline, not only the last one.
        """
        previous = getattr(self._bound, "deadline", None)
        if deadline is not None and (previous is None or deadline < previous):
            self._bound.deadline = deadline
        try:
            yield
        finally:
            self._bound.deadline = previous

    def send(
        self,
        method: str,
        url: str,
        *,
        what: str,
        headers: Mapping[str, str] | None = None,
        params: Any = None,
        data: bytes | Mapping[str, str] | None = None,
        timeout: float | None = None,
        idempotent: bool | None = None,
        retry: RetryPolicy | None = None,
        deadline: float | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send one logical request, retrying per the policy; return the final response.

        A non-2xx response is returned, not raised (the caller maps it, and may re-authenticate
        on 401). A transport failure that survives the retries raises :class:`RequestError`
        with ``status_code=None``.

        Args:
            method: HTTP method.
            url: absolute URL.
            what: the request in words for messages and logs, e.g. ``"GET /jobs/abc"``.
            headers: request headers (credentials included; never logged).
            params: query parameters.
            data: the body, already encoded (bytes) or a form mapping; reused on every retry.
            timeout: read timeout for this call, in seconds (default :attr:`read_timeout`).
            idempotent: whether repeating the request is harmless; default by method.
            retry: a policy for this call instead of the transport's.
            deadline: a ``time.monotonic()`` instant after which no attempt starts and no read
                waits: the call then fails with the last error (bounds the whole call, retries
                included, e.g. for ``job.result(timeout=...)``).
            stream: do not read the body before returning (``requests``' ``stream=True``): the
                caller reads it as it arrives and closes the response.
        """
        method = method.upper()
        policy = retry or self.retry
        bound = getattr(self._bound, "deadline", None)
        if bound is not None and (deadline is None or bound < deadline):
            deadline = bound
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        read_timeout = self.read_timeout if timeout is None else timeout
        slept = 0.0
        attempt = 0
        streaming: dict[str, Any] = {"stream": True} if stream else {}
        if not self.session.params:  # else requests merges the session's own params in
            params = _query_string(params)
        while True:
            attempt += 1
            started = time.monotonic()
            this_read = read_timeout
            this_connect = self.connect_timeout
            if deadline is not None:
                left = max(deadline - started, 0.05)
                this_read = min(read_timeout, left) if read_timeout is not None else left
                this_connect = min(this_connect, left)
            try:
                response = self.session.request(
                    method,
                    url,
                    headers=headers,
                    params=params,
                    data=data,
                    timeout=(this_connect, this_read),
                    **streaming,
                )
            except requests.exceptions.RequestException as err:
                if isinstance(
                    err,
                    (
                        requests.exceptions.InvalidURL,
                        requests.exceptions.MissingSchema,
                        requests.exceptions.InvalidSchema,
                        requests.exceptions.InvalidHeader,
                        requests.exceptions.TooManyRedirects,
                    ),
                ):
                    raise RequestError(f"{what} failed: {err}") from err
                reason = _describe(err)
                safe = idempotent or _never_connected(err)
                delay = policy.backoff(attempt)
                refused = _refused(err) and _origin(url) not in self._reached
                if refused:
                    reason = (
                        f"could not connect: connection refused by {_origin(url)} "
                        "(is the server running?)"
                    )
                if (
                    not safe
                    or attempt > policy.max_retries
                    or slept + delay > policy.max_elapsed
                    or (refused and slept + delay > policy.refused_budget)
                    or (deadline is not None and time.monotonic() + delay >= deadline)
                ):
                    why = "" if safe else " (not retried: repeating it could act twice)"
                    logger.debug("%s: %s on attempt %d%s", what, reason, attempt, why)
                    raise RequestError(
                        f"{what} failed after {attempt} attempt(s): {reason}{why}"
                    ) from err
                logger.info(
                    "%s: %s; retry %d/%d in %.2f s",
                    what,
                    reason,
                    attempt,
                    policy.max_retries,
                    delay,
                )
                self._sleep(delay)
                slept += delay
                continue
            elapsed_ms = (time.monotonic() - started) * 1000
            self._reached.add(_origin(url))
            status = response.status_code
            logger.debug("%s -> %d in %.1f ms (attempt %d)", what, status, elapsed_ms, attempt)
            if status == 429:
                retryable = not _is_quota_refusal(response)
            elif status in RETRY_STATUSES:
                retryable = idempotent and method != "PATCH"
            else:
                return response
            if not retryable or attempt > policy.max_retries:
                return response
            after = _retry_after(response) if status in (429, 503) else None
            if after is not None:
                delay = min(after, policy.retry_after_max)
            else:
                delay = policy.backoff(attempt)
            if slept + delay > policy.max_elapsed or (
                deadline is not None and time.monotonic() + delay >= deadline
            ):
                return response
            logger.info(
                "%s: HTTP %d; retry %d/%d in %.2f s",
                what,
                status,
                attempt,
                policy.max_retries,
                delay,
            )
            response.close()
            self._sleep(delay)
            slept += delay
