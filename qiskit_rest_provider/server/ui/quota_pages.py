"""The dashboard's quota page, ``/ui/admin/quotas`` (admin only), with CSRF-protected forms.

It shows every instance's quotas and today's use, and sets or clears an instance's own quotas.

The forms write what ``qiskit-rest-provider quotas set|clear`` writes (:mod:`..jobs.quota_store`),
so a change holds from the next submission on. Each field takes a number ``>= 0``, ``unlimited``
or ``default`` (empty = ``default``: follow the server's ``serve`` flag).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from ..jobs import quota_store
from ..jobs.quotas import QUOTAS, instance_usage, parse_limit
from . import session as ui_session
from .routes import _headers, _state, is_admin, render

router = APIRouter(prefix="/ui", include_in_schema=False)


def _stored(value: float | None) -> str:
    if value is None:
        return "default"
    if value < 0:
        return "unlimited"
    return f"{value:g}"


def quota_rows(st: Any) -> list[dict[str, Any]]:
    """One row per instance: its usage vs quotas today, and its stored values (form fields)."""
    own = {row.instance_id: row for row in quota_store.list_quotas(st.store)}
    rows = []
    for instance_id, hgp in quota_store.instances(st.store):
        row = own.get(instance_id)
        usage = instance_usage(st.store, st.config, instance_id, hgp)
        rows.append(
            {
                "instance": hgp,
                "quotas": usage["quotas"],
                "stored": {name: _stored(getattr(row, name) if row else None) for name in QUOTAS},
                "resets_at": usage["resets_at"],
            }
        )
    return rows


def _forbidden(request: Request, caller: Any) -> Response:
    return render(
        request,
        "error.html",
        caller,
        status_code=403,
        title="Forbidden",
        message="the quota pages are shown to the server's main token only",
    )


async def _page(request: Request, caller: Any, status: int = 200, **extra: Any) -> Response:
    rows = await run_in_threadpool(quota_rows, _state(request))
    return render(
        request, "quotas.html", caller, status_code=status, rows=rows, names=QUOTAS, **extra
    )


@router.get("/admin/quotas")
async def quotas_page(request: Request, message: str | None = None) -> Response:
    """Every instance's quotas and today's use (admin only)."""
    caller = ui_session.session_caller(request)
    if not is_admin(request, caller):
        return _forbidden(request, caller)
    return await _page(request, caller, message=message, error=None)


def _instance(st: Any, form: dict[str, Any]) -> tuple[str, str] | str:
    hgp = form.get("instance")
    if not isinstance(hgp, str) or not hgp:
        return "instance: required"
    instance_id = quota_store.instance_id_of(st.store, hgp)
    if instance_id is None:
        return f"instance: no instance {hgp!r}"
    return str(instance_id), hgp


@router.post("/admin/quotas")
async def set_quotas(request: Request) -> Response:
    """Set an instance's quotas from the form (``action=clear``: back to the defaults)."""
    caller = ui_session.session_caller(request)
    form = await ui_session.check_csrf(request, caller)
    if not is_admin(request, caller):
        return _forbidden(request, caller)
    st = _state(request)
    found = await run_in_threadpool(_instance, st, form)
    if isinstance(found, str):
        return await _page(request, caller, status=400, message=None, error=found)
    instance_id, hgp = found
    if form.get("action") == "clear":
        await run_in_threadpool(quota_store.clear_quota, st.store, instance_id)
        message = f"{hgp}: quotas cleared (server defaults)"
    else:
        values: dict[str, Any] = {}
        for name in QUOTAS:
            raw = form.get(name)
            try:
                values[name] = parse_limit(name, raw if isinstance(raw, str) and raw else "default")
            except ValueError as exc:
                return await _page(request, caller, status=400, message=None, error=str(exc))
        await run_in_threadpool(lambda: quota_store.set_quota(st.store, instance_id, **values))
        message = f"{hgp}: " + ", ".join(f"{k} {_stored(v)}" for k, v in values.items())
    return RedirectResponse(
        f"/ui/admin/quotas?{urlencode({'message': message})}", status_code=303, headers=_headers()
    )
