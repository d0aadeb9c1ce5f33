"""Authentication for both channels: IAM bearer tokens (platform) and access tokens (classic).

* Platform (``ibm_quantum_platform`` / ``ibm_cloud``): the API key is exchanged at
  ``{iam_url}/identity/token`` for a JWT whose ``iat``/``exp`` claims are read by base64-decoding
  its payload (no signature check: the client only needs the times). The token is refreshed
  after ~80 % of its lifetime, and at the latest 10 s before it expires. Headers:
  ``Authorization: Bearer <jwt>`` and ``Service-CRN: <instance>`` (omitted when no instance is
  configured: our server then uses the token's own instance, decision D8). A service without an
  IAM endpoint (404 there) is sent ``Authorization: apikey <key>`` instead, with a warning.
* Classic (``ibm_quantum``): ``POST {url}/api/users/loginWithToken {"apiToken"}`` gives an
  access token (``id``) sent as ``X-Access-Token``; ``POST {url}/api/users/logout`` ends it.

On a 401 the transport asks for one re-authentication (:meth:`Authenticator.reauthenticate`) and
repeats the request once. After :meth:`Authenticator.logout` no new token is obtained: requests go
out with the old one and the service's 401 surfaces as
:class:`~qiskit_rest_provider.exceptions.AuthenticationError`.

Secrets never reach logs or exception messages.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from ..exceptions import AuthenticationError, RequestError
from .errors import parse_error_body

if TYPE_CHECKING:  # pragma: no cover
    from ..account import Account
    from .transport import Transport

logger = logging.getLogger(__name__)

APIKEY_GRANT = "urn:ibm:params:oauth:grant-type:apikey"
#: Fraction of a token's lifetime after which it is refreshed (as IBM's SDK does).
REFRESH_FRACTION = 0.8
#: A token is treated as expired this many seconds before its ``exp``.
EXPIRY_MARGIN = 10.0


def jwt_times(token: str) -> tuple[float, float] | None:
    """``(iat, exp)`` of a JWT, read from its payload without checking the signature.

    Returns:
        Epoch seconds, or ``None`` when ``token`` is not a JWT with numeric ``iat`` and ``exp``.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
        exp = float(claims["exp"])
        iat = float(claims["iat"]) if "iat" in claims else exp - 3600.0
    except (ValueError, KeyError, TypeError, UnicodeError):
        return None
    return iat, exp


class Authenticator:
    """Base class: gives the credential headers of each request."""

    #: Hint appended to 401 messages.
    hint = ""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.logged_out = False

    def headers(self, transport: Transport) -> dict[str, str]:
        """Credential headers for the next request, logging in or refreshing first if needed."""
        raise NotImplementedError

    def reauthenticate(self, transport: Transport) -> bool:
        """Obtain fresh credentials after a 401; ``False`` if that is not possible (logged out)."""
        raise NotImplementedError

    def logout(self, transport: Transport) -> None:
        """End the session with the service; no new credentials are obtained afterwards."""
        raise NotImplementedError

    def login(self, transport: Transport) -> None:
        """Log in (again), also after :meth:`logout`."""
        raise NotImplementedError


def _auth_error(response: Any, what: str, advice: str) -> AuthenticationError | RequestError:
    message, code, trace = parse_error_body(response)
    text = f"{what} failed: {message or f'HTTP {response.status_code}'}"
    if response.status_code in (400, 401, 403):
        return AuthenticationError(
            f"{text}. {advice}", status_code=response.status_code, code=code, trace=trace
        )
    return RequestError(text, status_code=response.status_code, code=code, trace=trace)


class IamAuthenticator(Authenticator):
    """Platform channel: API key -> IAM bearer JWT, refreshed before expiry."""

    hint = "Check the API key (token) and the instance (Service-CRN)."

    def __init__(self, account: Account) -> None:
        super().__init__()
        self._apikey = account.token
        self._iam_url = account.resolved_iam_url
        self._crn = account.instance
        self._root = account.root_url
        self._token: str | None = None
        self._refresh_at = 0.0
        self._expires_at = 0.0
        self._use_apikey = False

    def _fetch(self, transport: Transport) -> None:
        what = "POST /identity/token"
        response = transport.send(
            "POST",
            f"{self._iam_url}/identity/token",
            what=what,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
            data={"grant_type": APIKEY_GRANT, "apikey": self._apikey},
            idempotent=True,
        )
        if response.status_code in (404, 405) and self._iam_url == self._root:
            logger.warning(
                "The service at %s has no IAM token endpoint; sending the API key directly "
                "('Authorization: apikey').",
                self._iam_url,
            )
            self._use_apikey = True
            return
        if response.status_code >= 400:
            raise _auth_error(
                response, what, f"The API key was rejected by {self._iam_url}; check it."
            )
        try:
            body = response.json()
            token = body["access_token"]
        except (ValueError, KeyError, TypeError):
            raise RequestError(
                f"{what} answered without an access_token", status_code=response.status_code
            ) from None
        now = time.time()
        times = jwt_times(token)
        if times is not None:
            iat, exp = times
            iat = min(iat, now)
        else:  # an opaque token: trust expires_in
            iat, exp = now, now + float(body.get("expires_in") or 3600)
        self._token = token
        self._expires_at = exp - EXPIRY_MARGIN
        self._refresh_at = min(exp - (1 - REFRESH_FRACTION) * (exp - iat), self._expires_at)
        logger.debug("Obtained an IAM access token valid for %.0f s", exp - now)

    def headers(self, transport: Transport) -> dict[str, str]:
        """Credential headers for the next request, logging in or refreshing first if needed."""
        with self._lock:
            if not self._use_apikey and not self.logged_out:
                now = time.time()
                if self._token is None or now >= self._refresh_at:
                    try:
                        self._fetch(transport)
                    except RequestError as err:
                        # A refresh failure is not fatal while the current token still works.
                        if (
                            self._token is None
                            or now >= self._expires_at
                            or isinstance(err, AuthenticationError)
                        ):
                            raise
                        logger.warning("IAM token refresh failed (%s); using the current one", err)
            if self._use_apikey:
                headers = {"Authorization": f"apikey {self._apikey}"}
            else:
                headers = {"Authorization": f"Bearer {self._token}"}
        if self._crn:
            headers["Service-CRN"] = self._crn
        return headers

    def reauthenticate(self, transport: Transport) -> bool:
        """Obtain fresh credentials after a 401; ``False`` if that is not possible (logged out)."""
        if self.logged_out or self._use_apikey:
            return False
        with self._lock:
            self._fetch(transport)
        return True

    def login(self, transport: Transport) -> None:
        """Log in (again), also after :meth:`logout`."""
        with self._lock:
            self.logged_out = False
            self._fetch(transport)

    def logout(self, transport: Transport) -> None:
        """Ask the service to revoke the bearer token (our server's extension), stop refreshing.

        IBM Cloud IAM has no logout for API-key tokens; against such a service the token simply
        stays valid until it expires, and no new one is fetched.
        """
        with self._lock:
            token, self.logged_out = self._token, True
        if token is None:
            return
        headers = {"Authorization": f"Bearer {token}"}
        if self._crn:
            headers["Service-CRN"] = self._crn
        try:
            response = transport.send(
                "POST",
                f"{self._root}/api/users/logout",
                what="POST /api/users/logout",
                headers=headers,
                idempotent=True,
            )
        except RequestError as err:
            logger.warning("Logout request failed: %s", err)
            return
        if response.status_code >= 400 and response.status_code not in (401, 404, 405):
            logger.warning("Logout answered HTTP %d", response.status_code)


class ClassicAuthenticator(Authenticator):
    """Classic channel: API token -> ``loginWithToken`` access token in ``X-Access-Token``."""

    hint = "Check the API token, or log in again."

    def __init__(self, account: Account) -> None:
        super().__init__()
        self._api_token = account.token
        self._root = account.root_url
        self._access: str | None = None
        self._renew_at = float("inf")

    def _login(self, transport: Transport) -> None:
        what = "POST /api/users/loginWithToken"
        response = transport.send(
            "POST",
            f"{self._root}/api/users/loginWithToken",
            what=what,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            data=json.dumps({"apiToken": self._api_token}).encode(),
            idempotent=True,
        )
        if response.status_code >= 400:
            raise _auth_error(response, what, "The API token was rejected; check it.")
        try:
            body = response.json()
            access = body["id"]
        except (ValueError, KeyError, TypeError):
            raise RequestError(
                f"{what} answered without an access token", status_code=response.status_code
            ) from None
        ttl = body.get("ttl")
        self._access = str(access)
        if isinstance(ttl, (int, float)) and ttl > 0:
            self._renew_at = time.time() + REFRESH_FRACTION * float(ttl)
        else:
            self._renew_at = float("inf")
        logger.debug("Logged in (classic channel)")

    def headers(self, transport: Transport) -> dict[str, str]:
        """Credential headers for the next request, logging in or refreshing first if needed."""
        with self._lock:
            if not self.logged_out and (self._access is None or time.time() >= self._renew_at):
                self._login(transport)
            return {"X-Access-Token": self._access or ""}

    def reauthenticate(self, transport: Transport) -> bool:
        """Obtain fresh credentials after a 401; ``False`` if that is not possible (logged out)."""
        if self.logged_out:
            return False
        with self._lock:
            self._login(transport)
        return True

    def login(self, transport: Transport) -> None:
        """Log in (again), also after :meth:`logout`."""
        with self._lock:
            self.logged_out = False
            self._login(transport)

    def logout(self, transport: Transport) -> None:
        """``POST /api/users/logout``: the service invalidates the access token (401 afterwards)."""
        with self._lock:
            access, self.logged_out = self._access, True
        if access is None:
            return
        response = transport.send(
            "POST",
            f"{self._root}/api/users/logout",
            what="POST /api/users/logout",
            headers={"X-Access-Token": access, "Accept": "application/json"},
            idempotent=True,
        )
        if response.status_code >= 400 and response.status_code != 401:
            raise _auth_error(response, "POST /api/users/logout", "")


def authenticator_for(account: Account) -> Authenticator:
    """The authenticator for the account's channel."""
    return ClassicAuthenticator(account) if account.is_classic else IamAuthenticator(account)
