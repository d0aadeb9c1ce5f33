"""The app factory of the reference Runtime REST server.

``create_app(config)`` builds everything in the calling (main) thread — store, credentials,
backend catalog — and returns a FastAPI app whose lifespan starts the worker pool and the job
dispatcher and stops them cleanly (jobs still running stay Running in the store and are re-queued
on the next start).

Example (building the app starts nothing; the worker pool starts with its lifespan):
    >>> import tempfile
    >>> from qiskit_rest_provider.server.app import create_app
    >>> from qiskit_rest_provider.server.config import ServerConfig
    >>> with tempfile.TemporaryDirectory() as data_dir:
    ...     app = create_app(ServerConfig(data_dir=data_dir))
    >>> sorted(path for path in app.openapi()["paths"] if path.endswith("/jobs"))
    ['/api/v1/jobs', '/runtime/jobs']
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from ..version import __version__
from .auth.tokens import Authenticator, Caller, load_or_create_secret
from .config import ServerConfig
from .execution.base import JobExecutor
from .execution.pool import LocalProcessExecutor
from .http import RequestGuard, install_error_handlers
from .jobs.dispatcher import Dispatcher
from .jobs.notify import JobChangeListener
from .jobs.store import Store
from .jobs.watchers import JobWatchers
from .state import ServerState
from .transpile.tasks import run_stored_transpile

logger = logging.getLogger(__name__)

RUNTIME_PREFIXES = ("/api/v1", "/runtime")


@dataclass
class Provisioned:
    """What the operator needs to know after start: the token and the instance it owns."""

    token: str
    caller: Caller


def provision_tokens(store: Store, auth: Authenticator, config: ServerConfig) -> Provisioned:
    """Register the main API token (fixed, or generated once and kept) and the extra ones."""
    token = config.token or load_or_create_secret(config.data_dir / "api_token")
    caller = auth.add_api_token(token, config.instance)
    for extra, hgp in config.extra_tokens:
        auth.add_api_token(extra, hgp)
    return Provisioned(token=token, caller=caller)


def _operation_id(tag: str, route: Any) -> str:
    """OpenAPI operation ids stay unique although the runtime routers are mounted twice."""
    return f"{tag}_{route.name}"


def _describe_request_bodies(app: FastAPI) -> None:
    """``/openapi.json`` also describes the request bodies the routes validate themselves."""
    from ..wire.rest import add_request_schemas

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            add_request_schemas(FastAPI.openapi(app))
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


def _make_executor(config: ServerConfig) -> JobExecutor:
    """The local worker pool, or the Dask executor for ``--executor dask://HOST:PORT``."""
    if config.executor.startswith("dask://"):
        from .execution.dask import DaskExecutor

        try:
            return DaskExecutor(config.executor, longest_task=config.max_execution_time)
        except ImportError:
            raise
        except Exception as exc:  # OSError, TimeoutError: nothing answers there
            raise RuntimeError(
                f"cannot connect to the Dask scheduler of --executor {config.executor}: {exc}"
            ) from None
    return LocalProcessExecutor(
        config.workers, str(config.backends_dir) if config.backends_dir else None
    )


def create_app(
    config: ServerConfig,
    *,
    on_ready: Callable[[Provisioned], None] | None = None,
) -> FastAPI:
    """Build the server app (call in the main thread: it loads the catalog)."""
    from .backends.catalog import BackendCatalog

    config.prepare_data_dir()
    store = Store(config)
    auth = Authenticator(store, config)
    provisioned = provision_tokens(store, auth, config)
    catalog = BackendCatalog.load(config.backends_dir)
    watchers = JobWatchers()
    holder: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        executor = _make_executor(config)
        dispatcher = Dispatcher(
            store, executor, config, watchers, catalog=catalog, run_transpile=run_stored_transpile
        )
        listener = JobChangeListener(
            store, watchers, config.notify_fallback, on_change=dispatcher.job_changed
        )
        app.state.server = ServerState(config, store, auth, catalog, executor, dispatcher, watchers)
        app.state.pool = executor
        holder["dispatcher"] = dispatcher
        executor.warm_up(wait=False)
        dispatcher.start()
        listener.start()
        if on_ready is not None:
            on_ready(provisioned)
        try:
            yield
        finally:
            logger.info("shutting down: stopping the dispatcher and the workers")
            listener.stop()
            dispatcher.stop()
            executor.shutdown(wait=False, cancel_futures=True)
            store.close()

    app = FastAPI(
        title="qiskit-rest-provider reference server",
        version=__version__,
        description="Qiskit Runtime REST API on Qiskit Aer (see the protocol notes in the docs).",
        lifespan=lifespan,
        docs_url=None,  # served by the dashboard with vendored assets (ui.install_ui)
        redoc_url=None,  # ReDoc loads from a CDN; /docs covers the same
    )
    app.state.catalog = catalog
    app.state.auth = auth
    app.state.store = store
    app.state.config = config
    app.state.provisioned = provisioned
    app.state.json_cache = {}
    install_error_handlers(app)

    from .auth.routes import router as auth_router
    from .backends.routes import router as backends_router
    from .jobs.event_routes import router as events_router
    from .jobs.quota_routes import router as quotas_router
    from .jobs.routes import router as jobs_router
    from .sessions.routes import router as sessions_router
    from .transpile.routes import router as transpile_router

    # Routers are matched in order, each route in turn: the job routes, which every job's
    # requests take, go first (the event streams before them: /jobs/events is not a job id).
    # No path of one router is a path of another, so the order changes no answer.
    for prefix in RUNTIME_PREFIXES:
        tag = prefix.strip("/").replace("/", "_")
        for router in (
            events_router,
            jobs_router,
            backends_router,
            sessions_router,
            quotas_router,
        ):
            app.include_router(
                router,
                prefix=prefix,
                tags=[tag],
                generate_unique_id_function=functools.partial(_operation_id, tag),
            )
    app.include_router(auth_router)
    app.include_router(transpile_router)
    from .ui import install_ui

    install_ui(app)
    _describe_request_bodies(app)

    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=config.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(
        RequestGuard,
        max_body_bytes=config.max_body_bytes,
        body_timeout=config.body_timeout,
        max_requests_per_client=config.max_connections_per_client,
    )
    from .metrics import install_metrics

    install_metrics(app)  # outermost middleware: times whole requests; adds GET /metrics
    return app
