"""Login endpoints of both channels (protocol §2) and unauthenticated service info.

* platform: ``POST /identity/token`` (IAM emulation: form ``grant_type`` + ``apikey`` → JWT)
* classic: ``POST /api/users/loginWithToken``, ``POST /api/users/logout``, ``GET /api/users/me``,
  ``GET /api/version``
* service info (no auth): ``GET /version`` (also under ``/api/v1`` and ``/runtime``),
  ``GET /versions``, ``GET /health``
"""

from __future__ import annotations

import functools
import time
from urllib.parse import parse_qs

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...version import __version__
from ...wire.rest import (
    ERROR_RESPONSES,
    ApiVersions,
    ClassicAccessToken,
    ClassicLogin,
    ClassicVersion,
    Health,
    IamToken,
    IamTokenForm,
    ServerVersion,
    UserInfo,
    request_body,
)
from ..http import ApiError, iso, json_response, parse_body
from ..state import server_state
from .tokens import CallerDep, client_host

router = APIRouter(responses=ERROR_RESPONSES)

APIKEY_GRANT = "urn:ibm:params:oauth:grant-type:apikey"
API_VERSIONS = ["2024-01-01", "2025-01-01", "2025-05-01", "2026-04-15"]


@router.post(
    "/identity/token",
    response_model=IamToken,
    openapi_extra=request_body(IamTokenForm, media_type="application/x-www-form-urlencoded"),
)
async def iam_token(request: Request) -> Response:
    """Exchange an API key for a JWT access token (what IBM Cloud IAM does)."""
    raw = await request.body()
    ctype = request.headers.get("content-type", "")
    if "json" in ctype:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise ApiError(
                400, f"request body is not valid JSON: {exc}", code="invalid_json"
            ) from exc
        if not isinstance(data, dict):
            raise ApiError(400, "request body must be a JSON object", code="invalid_json")
        form = {k: str(v) for k, v in data.items()}
    else:
        form = {k: v[0] for k, v in parse_qs(raw.decode(errors="replace")).items()}
    grant = form.get("grant_type")
    if grant != APIKEY_GRANT:
        raise ApiError(400, f"grant_type: expected {APIKEY_GRANT!r}", code="invalid_grant")
    apikey = form.get("apikey")
    if not apikey:
        raise ApiError(400, "apikey: required", code="invalid_request")
    st = server_state(request)
    caller = await run_in_threadpool(st.auth.login_caller, apikey, client_host(request))
    st.auth.limiter.check(caller.token_id)
    token, iat, exp = await run_in_threadpool(st.auth.issue_jwt, caller)
    return json_response(
        {
            "access_token": token,
            "refresh_token": "not_supported",
            "token_type": "Bearer",
            "expires_in": exp - iat,
            "expiration": exp,
            "scope": "ibm openid",
        }
    )


@router.post(
    "/api/users/loginWithToken",
    response_model=ClassicAccessToken,
    openapi_extra=request_body(ClassicLogin),
)
async def login_with_token(request: Request) -> Response:
    """Classic login: ``{"apiToken"}`` → ``{"id": access_token, "ttl", "created", "userId"}``."""
    api_token = (await parse_body(request, ClassicLogin)).apiToken
    st = server_state(request)
    caller = await run_in_threadpool(st.auth.login_caller, api_token, client_host(request))
    st.auth.limiter.check(caller.token_id)
    token, row = await run_in_threadpool(st.auth.issue_access_token, caller)
    return json_response(
        {
            "id": token,
            "ttl": int(row.expires - row.created),
            "created": iso(row.created),
            "userId": caller.user_id,
        }
    )


@router.post("/api/users/logout")
def logout(request: Request, caller: CallerDep) -> Response:
    """Invalidate the access token (or JWT) used for this request."""
    server_state(request).auth.revoke(caller)
    return Response(status_code=200)


@router.get("/api/users/me", response_model=UserInfo)
def me(request: Request, caller: CallerDep) -> Response:
    """Classic user info: where the runtime service lives, and the user's instance."""
    base = str(request.base_url).rstrip("/")
    hub, group, project = caller.instance_hgp.split("/")
    return json_response(
        {
            "id": caller.user_id,
            "userId": caller.user_id,
            "urls": {"http": f"{base}/api", "services": {"runtime": f"{base}/runtime"}},
            "instance": caller.instance_hgp,
            "instance_crn": caller.instance_crn,
            "hubs": [
                {"name": hub, "groups": {group: {"projects": {project: {"isDefault": True}}}}}
            ],
        }
    )


@router.get("/api/version", response_model=ClassicVersion)
def classic_version() -> Response:
    """Classic version probe (clients require the key ``api-auth``)."""
    return json_response({"new_api": True, "api-auth": "0.1", "qiskit-rest-provider": __version__})


@router.get("/versions", response_model=ApiVersions)
@router.get("/api/v1/versions", response_model=ApiVersions)
@router.get("/runtime/versions", response_model=ApiVersions)
def versions() -> Response:
    """Supported ``IBM-API-Version`` values (no auth, like upstream)."""
    return json_response({"versions": API_VERSIONS})


@functools.cache
def _server_version() -> bytes:
    import qiskit
    import qiskit_aer

    return orjson.dumps(
        {
            "version": __version__,
            "qiskit-rest-provider": __version__,
            "qiskit": str(qiskit.__version__),
            "qiskit_aer": str(qiskit_aer.__version__),
            "api_versions": API_VERSIONS,
        }
    )


@router.get("/version", response_model=ServerVersion)
@router.get("/api/v1/version", response_model=ServerVersion)
@router.get("/runtime/version", response_model=ServerVersion)
def server_version() -> Response:
    """What this server runs (no auth): its version, Qiskit's and Aer's, the API versions.

    At the root it answers the transpiler service's ``GET /version`` (which reports ``qiskit``);
    under the runtime prefixes it answers the same for runtime clients.
    """
    return Response(_server_version(), media_type="application/json")


@router.get("/health", response_model=Health)
def health(request: Request) -> Response:
    """Liveness: answers while the server runs (no auth)."""
    st = server_state(request)
    return json_response(
        {
            "status": "ok",
            "version": __version__,
            "in_flight": st.dispatcher.in_flight,
            "time": iso(time.time()),
        }
    )
