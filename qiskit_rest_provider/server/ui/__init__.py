"""The web dashboard at ``/ui/`` and the API docs at ``/docs``, with every asset vendored.

htmx, its SSE extension and Swagger UI are files of this package (``ui/static``, with their
licences), so both work on a machine with no internet access. :func:`install_ui` wires them
into the app; the composition root calls it once.

Example:
    >>> import tempfile
    >>> from qiskit_rest_provider.server.app import create_app
    >>> from qiskit_rest_provider.server.config import ServerConfig
    >>> with tempfile.TemporaryDirectory() as data_dir:
    ...     app = create_app(ServerConfig(data_dir=data_dir))
    >>> app.url_path_for("swagger_ui"), app.url_path_for("jobs_page")
    ('/docs', '/ui/jobs')
    >>> str(app.url_path_for("ui-static", path="htmx.min.js"))
    '/ui/static/htmx.min.js'

"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

__all__ = ["STATIC", "install_ui"]

STATIC = Path(__file__).parent / "static"


def install_ui(app: FastAPI) -> None:
    """Serve the dashboard under ``/ui/`` and Swagger UI (vendored) at ``/docs``.

    The app must be built with ``docs_url=None`` (FastAPI's own page loads its assets from a
    CDN).
    """
    from . import session
    from .quota_pages import router as quota_router
    from .routes import env, render, router

    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    app.include_router(router)
    app.include_router(quota_router)

    @app.exception_handler(session.SignInRequired)
    async def _sign_in(request: Request, exc: session.SignInRequired) -> Response:
        wants_page = (
            request.method == "GET"
            and "hx-request" not in request.headers
            and "text/html" in request.headers.get("accept", "")
        )
        if wants_page:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(f"/ui/login?next={quote(target, safe='')}", status_code=303)
        html = env.get_template("error.html").render(
            caller=None, title="Sign-in required", message="sign in at /ui/login"
        )
        return HTMLResponse(html, status_code=401, headers={"HX-Redirect": "/ui/login"})

    @app.exception_handler(session.CsrfRejected)
    async def _csrf(request: Request, exc: session.CsrfRejected) -> Response:
        return render(
            request,
            "error.html",
            status_code=403,
            title="Forbidden",
            message="the form's CSRF token is missing or wrong (reload the page and try again)",
        )

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url="/ui/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/ui/static/swagger/swagger-ui.css",
            swagger_favicon_url="/ui/static/swagger/favicon-32x32.png",
            # no badge fetched from validator.swagger.io: nothing leaves the machine
            swagger_ui_parameters={"validatorUrl": None},
        )
