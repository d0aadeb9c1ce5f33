"""Dashboard sign-in: a session cookie holding a server-issued JWT, and CSRF tokens.

Signing in with an API token asks the server's own :class:`~..auth.tokens.Authenticator` (with
its failed-login throttling) for the caller, then issues an IAM-style JWT for it, exactly as
``POST /identity/token`` does. The JWT is a server-side session: it has a row in
``access_tokens``, so signing out (or revoking the API token) ends it at once. The cookie is
``HttpOnly`` (no script can read it), ``SameSite=Strict``, limited to ``/ui`` and ``Secure``
when the request came over HTTPS.

Every state-changing request (``POST``) must carry the session's CSRF token, as the form field
``csrf`` or the header ``X-CSRF-Token`` (htmx sends the header). The token is an HMAC of the
session's JWT id under the server's signing key: one per session, nothing more to store, and
worthless once the session ends. Before sign-in the login form uses a double-submit token (a
random value in a short-lived cookie and in the form). A cross-site ``Origin`` is refused too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request

from ..auth import tokens
from ..auth.tokens import Authenticator, Caller

SESSION_COOKIE = "qrp_ui_session"
LOGIN_CSRF_COOKIE = "qrp_ui_login_csrf"
COOKIE_PATH = "/ui"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


class SignInRequired(Exception):
    """The request has no valid dashboard session (pages redirect to sign-in, others 401)."""


class CsrfRejected(Exception):
    """A POST without the session's CSRF token, or from another origin (403)."""


def authenticator(request: Request) -> Authenticator:
    """The server's authenticator (set on the app by the composition root)."""
    return request.app.state.auth  # type: ignore[no-any-return]


def session_caller(request: Request) -> Caller:
    """The signed-in caller of a dashboard request, or :class:`SignInRequired`.

    Only a JWT this server issued counts (an API token put in the cookie by hand does not), and
    the server's per-token rate limit applies as on the REST API.
    """
    cached = getattr(request.state, "ui_caller", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    credential = request.cookies.get(SESSION_COOKIE, "")
    if not credential.startswith("eyJ") or credential.count(".") != 2:
        raise SignInRequired
    auth = authenticator(request)
    try:
        caller = auth.resolve(credential)
    except tokens.ApiError as exc:  # an expired session
        raise SignInRequired from exc
    if caller is None or caller.access_id is None:
        raise SignInRequired
    auth.limiter.check(caller.token_id)
    request.state.ui_caller = caller
    return caller


def sign_in(request: Request, api_token: str) -> tuple[Caller, str, int]:
    """Check an API token (throttled like every login) and open a session for its caller.

    Returns:
        ``(caller, jwt, lifetime_seconds)``.

    Raises:
        ApiError: 401 for an unknown token, 429 after too many failures from this address.
    """
    auth = authenticator(request)
    caller = auth.login_caller(api_token.strip(), tokens.client_host(request))
    token, iat, exp = auth.issue_jwt(caller)
    return caller, token, exp - iat


def sign_out(request: Request, caller: Caller) -> None:
    """End the caller's session: its JWT stops working at once."""
    authenticator(request).revoke(caller)


def csrf_token(request: Request, caller: Caller) -> str:
    """The CSRF token of the caller's session (stable for the session's life)."""
    key = authenticator(request).signing_key.encode()
    return hmac.new(key, f"ui-csrf:{caller.access_id}".encode(), hashlib.sha256).hexdigest()


def new_login_csrf() -> str:
    """A fresh double-submit token for the sign-in form."""
    return secrets.token_urlsafe(24)


def check_origin(request: Request) -> None:
    """Refuse a state-changing request whose ``Origin`` is another site (:class:`CsrfRejected`)."""
    origin = request.headers.get("origin")
    if origin is None:  # same-origin navigations and non-browser clients may omit it
        return
    host = request.headers.get("host", "")
    if urlsplit(origin).netloc != host:
        raise CsrfRejected


async def check_csrf(request: Request, caller: Caller) -> dict[str, Any]:
    """Check a POST's CSRF token against the session's; returns the form fields."""
    check_origin(request)
    form = dict(await request.form())
    sent = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
    if not isinstance(sent, str) or not hmac.compare_digest(sent, csrf_token(request, caller)):
        raise CsrfRejected
    return form


def cookie_options(request: Request) -> dict[str, Any]:
    """The flags of every dashboard cookie."""
    return {
        "httponly": True,
        "samesite": "strict",
        "secure": request.url.scheme == "https",
        "path": COOKIE_PATH,
    }
