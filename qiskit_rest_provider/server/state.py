"""The objects one server process shares between its routes (held on ``app.state.server``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request

from .auth import Authenticator
from .config import ServerConfig
from .executor import JobExecutor
from .queue import Dispatcher, JobWatchers
from .store import Store


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
