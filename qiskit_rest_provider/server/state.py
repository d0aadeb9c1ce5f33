"""The objects one server process shares between its routes (held on ``app.state.server``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request

from .auth.tokens import Authenticator
from .config import ServerConfig
from .execution.base import JobExecutor
from .jobs.dispatcher import Dispatcher
from .jobs.store import Store
from .jobs.watchers import JobWatchers


@dataclass
class ServerState:
    """Everything a route may need."""

    config: ServerConfig
    store: Store
    auth: Authenticator
    catalog: Any  # catalog.BackendCatalog
    executor: JobExecutor
    dispatcher: Dispatcher
    watchers: JobWatchers


def server_state(request: Request) -> ServerState:
    """The :class:`ServerState` of the app serving ``request``."""
    return request.app.state.server  # type: ignore[no-any-return]
