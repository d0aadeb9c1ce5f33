"""``GET {runtime}/instances/quotas`` (extension): the caller's instance's quotas and today's use.

Mounted under both runtime prefixes beside ``/instances/usage``. A service without it answers
404; nothing in the official client reads it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ...wire.rest import ERROR_RESPONSES
from ..auth.tokens import CallerDep
from ..http import json_response
from ..state import server_state
from .quotas import instance_usage

router = APIRouter(responses=ERROR_RESPONSES)


@router.get("/instances/quotas", response_model=dict[str, Any])
async def instance_quotas(request: Request, caller: CallerDep) -> Response:
    """The caller's instance: each quota's ``limit`` (``null``: none), ``used`` today, ``source``.

    Example answer::

        {"instance": "local/default/main", "resets_at": "2026-12-04T00:00:00Z",
         "period": {"start": "...", "end": "..."},
         "quotas": {"max_queued_jobs": {"limit": 1000, "used": 0, "source": "server"},
                    "max_shots_per_day": {"limit": 100000, "used": 4096, "source": "instance"},
                    "max_seconds_per_day": {"limit": null, "used": 1.234, "source": "server"}}}
    """
    st = server_state(request)
    body = await run_in_threadpool(
        instance_usage, st.store, st.config, caller.instance_id, caller.instance_hgp
    )
    return json_response(body)
