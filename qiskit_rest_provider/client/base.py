"""``BaseClient``: authenticated JSON requests to one Runtime REST service.

It owns one :class:`~qiskit_rest_provider.client.transport.Transport` (a keep-alive
``requests.Session``) and one authenticator. Every request carries ``IBM-API-Version``,
``X-Qx-Client-Application``, JSON content types and the channel's credentials; a 401 triggers one
re-authentication. The endpoint methods live in :class:`~.runtime.RuntimeClient`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any

import requests

from ..account import Account
from ..exceptions import RequestError
from ..version import __version__
from .auth import Authenticator, authenticator_for
from .errors import error_from_response
from .transport import RetryPolicy, Transport

try:  # orjson is a core dependency; plain json keeps the client usable without it
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)

    def _loads(data: bytes | str) -> Any:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            return json.loads(data)  # tolerates NaN / Infinity tokens

except ImportError:  # pragma: no cover

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj).encode()

    def _loads(data: bytes | str) -> Any:
        return json.loads(data)


logger = logging.getLogger(__name__)

#: The ``IBM-API-Version`` we speak (that of qiskit-ibm-runtime 0.48-0.51).
API_VERSION = "2026-04-15"


def client_app_header(app_name: str | None = None) -> str:
    """``X-Qx-Client-Application``: ``qiskit-version-2/qiskit-rest-provider-<v>/<app>``."""
    app = app_name or os.environ.get("QISKIT_REST_CLIENT_APP") or "qiskit"
    return f"qiskit-version-2/qiskit-rest-provider-{__version__}/{app}"


class BaseClient:
    """Authenticated requests to one Runtime REST service (base of :class:`RuntimeClient`).

    Args:
        account: the resolved account (channel, url, token, instance, TLS, proxies).
        timeout: read timeout in seconds for ordinary requests (connect timeout is separate).
        app_name: the last part of ``X-Qx-Client-Application`` (default ``"qiskit"``).
        connect_timeout: seconds to establish a connection.
        retry: the retry policy (see :class:`~qiskit_rest_provider.client.transport.RetryPolicy`).
        submit_timeout: read timeout for job creation (large bodies), in seconds.

    No request is made here; the first request logs in.
    """

    def __init__(
        self,
        account: Account,
        *,
        timeout: float = 60.0,
        app_name: str | None = None,
        connect_timeout: float = 5.0,
        retry: RetryPolicy | None = None,
        submit_timeout: float = 300.0,
    ) -> None:
        self.account = account
        self.transport = Transport(
            verify=account.verify,
            proxies=account.proxies,
            connect_timeout=connect_timeout,
            read_timeout=timeout,
            retry=retry,
        )
        self.auth: Authenticator = authenticator_for(account)
        self.submit_timeout = submit_timeout
        self.base_headers = {
            "IBM-API-Version": API_VERSION,
            "X-Qx-Client-Application": client_app_header(app_name),
            "Accept": "application/json",
            "User-Agent": f"qiskit-rest-provider/{__version__}",
        }

    # ------------------------------------------------------------------ generic

    @property
    def runtime_url(self) -> str:
        """Base URL of the runtime API (``{url}/api/v1`` or ``{url}/runtime``)."""
        return self.account.runtime_url

    @property
    def root_url(self) -> str:
        """The service root URL."""
        return self.account.root_url

    def close(self) -> None:
        """Close the keep-alive connections."""
        self.transport.close()

    def __repr__(self) -> str:
        return f"RuntimeClient({self.account.channel!r}, {self.runtime_url!r})"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        idempotent: bool | None = None,
        base: str = "runtime",
        retry: RetryPolicy | None = None,
        deadline: float | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send an authenticated request; raise a mapped error for any non-2xx answer.

        Args:
            method: HTTP method.
            path: path relative to the runtime base (``"jobs/abc"``), or relative to the service
                root with ``base="root"`` (``"transpile"``), or an absolute ``http(s)://`` URL.
            params: query parameters.
            json: a JSON-able body (encoded with orjson; numpy arrays allowed).
            data: an already-encoded JSON body (bytes), instead of ``json``.
            headers: extra headers.
            timeout: read timeout in seconds for this call.
            idempotent: whether the request may be repeated safely (default: by method).
            base: ``"runtime"`` or ``"root"``.
            retry: a retry policy for this call only.
            deadline: ``time.monotonic()`` instant bounding the whole call, retries included.
            stream: return once the headers arrived and read the body as it comes
                (``response.iter_content``; the caller closes the response), for event streams.

        Returns:
            The 2xx response.

        Raises:
            RequestError: (or a subclass) for error answers and unreachable services. A 401 is
                retried once after logging in again, then raised as ``AuthenticationError``.
        """
        if path.startswith(("http://", "https://")):
            url = path
            shown = path
        else:
            prefix = self.runtime_url if base == "runtime" else self.root_url
            url = f"{prefix}/{path.lstrip('/')}"
            shown = "/" + path.lstrip("/")
        what = f"{method.upper()} {shown}"
        body = data if data is not None else (_dumps(json) if json is not None else None)
        extra = dict(self.base_headers)
        if body is not None:
            extra["Content-Type"] = "application/json"
        if headers:
            extra.update(headers)
        # The deadline also bounds a login or token refresh that this call triggers.
        with self.transport.bounded(deadline):
            for attempt in (1, 2):
                all_headers = {**extra, **self.auth.headers(self.transport)}
                response = self.transport.send(
                    method,
                    url,
                    what=what,
                    headers=all_headers,
                    params=params,
                    data=body,
                    timeout=timeout,
                    idempotent=idempotent,
                    retry=retry,
                    deadline=deadline,
                    stream=stream,
                )
                if response.status_code == 401 and attempt == 1:
                    logger.info("%s: HTTP 401; authenticating again", what)
                    if self.auth.reauthenticate(self.transport):
                        continue
                if response.status_code >= 400:
                    raise error_from_response(response, what=what, auth_hint=self.auth.hint)
                return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _json(self, response: requests.Response, what: str) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return _loads(response.content)
        except ValueError:
            raise RequestError(
                f"{what}: the service answered HTTP {response.status_code} with a body that is not "
                "JSON (truncated or an error page)",
                status_code=response.status_code,
            ) from None

    def get_json(self, path: str, **kw: Any) -> Any:
        """``GET`` a JSON document (a body that is not JSON is retried once, then raised)."""
        response = self.request("GET", path, **kw)
        try:
            return self._json(response, f"GET /{path}")
        except RequestError:
            logger.info("GET /%s: body is not JSON; retrying once", path)
            return self._json(self.request("GET", path, **kw), f"GET /{path}")

    # ------------------------------------------------------------------ auth

    def login(self) -> None:
        """Log in now (also after :meth:`logout`); normally the first request does it."""
        self.auth.login(self.transport)

    def logout(self) -> None:
        """Invalidate the access token; later requests fail with ``AuthenticationError``."""
        self.auth.logout(self.transport)

    def _provider_params(self) -> dict[str, str]:
        """The classic channel's ``provider`` query (``hub/group/project``), else nothing."""
        if self.account.is_classic and self.account.instance:
            return {"provider": self.account.instance}
        return {}
