"""Composition root of the console: settings, the services' client, sessions, the app.

The console has no database and no broker: it reads and changes Kefu's data only through the
other services' HTTP APIs, with the signed-in person's key.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.console.adapters.services import SERVICES, KefuServices
from services.console.adapters.sessions import SessionStore
from services.console.domain.errors import Forbidden, SignedOut, Unavailable
from services.console.entrypoints.http import (
    SESSION_COOKIE,
    Console,
    SignInRequired,
    router,
    session_of,
)
from services.console.entrypoints.pages import reader_of, render
from shared.errors import DomainError
from shared.http import RequestMetrics
from shared.logging import configure_logging, get_logger
from shared.problems import field_path
from shared.settings import DEFAULT_PORTS, Settings, get_settings

log = get_logger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
# Scripts and styles come only from the console itself (vendored, no CDN); chart data travels
# as JSON in a non-executable <script type="application/json">.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


class ConsoleSettings(BaseSettings):
    """``KEFU_CONSOLE_*``: where the services are, sessions and cookies."""

    model_config = SettingsConfigDict(env_prefix="KEFU_CONSOLE_", extra="ignore")
    intake_url: str = f"http://127.0.0.1:{DEFAULT_PORTS['intake']}"
    need_analyzer_url: str = f"http://127.0.0.1:{DEFAULT_PORTS['need_analyzer']}"
    feedback_url: str = f"http://127.0.0.1:{DEFAULT_PORTS['feedback']}"
    improvement_url: str = f"http://127.0.0.1:{DEFAULT_PORTS['improvement']}"
    # For readers whose browser has not told its time zone yet (the first page).
    time_zone: str = "Asia/Shanghai"
    # Set behind HTTPS (a proxy that terminates TLS): the session cookie is then Secure.
    cookie_secure: bool = False
    session_idle_minutes: float = 8 * 60
    session_max_hours: float = 24
    request_timeout_seconds: float = 10.0

    def urls(self) -> dict[str, str]:
        return {service: getattr(self, f"{service}_url").rstrip("/") for service in SERVICES}


def create_app(
    console_settings: ConsoleSettings | None = None, settings: Settings | None = None
) -> FastAPI:
    console_settings = console_settings or ConsoleSettings()
    settings = settings or get_settings()
    configure_logging("console", settings.log_level, settings.log_json)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
        async with httpx.AsyncClient(
            timeout=console_settings.request_timeout_seconds, limits=limits
        ) as http:
            app.state.console = Console(
                services=KefuServices(console_settings.urls(), http),
                sessions=SessionStore(
                    idle_seconds=console_settings.session_idle_minutes * 60,
                    max_seconds=console_settings.session_max_hours * 3600,
                ),
                default_zone=console_settings.time_zone,
                cookie_secure=console_settings.cookie_secure,
            )
            yield

    app = FastAPI(title="Kefu console", version="1", lifespan=lifespan, docs_url=None)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _install_error_pages(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        """Ready when every service it reads from answers."""
        console: Console = app.state.console
        answers = await console.services.healthy()
        checks = {service: "ok" if up else "down" for service, up in answers.items()}
        return JSONResponse(checks, status_code=200 if all(answers.values()) else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    app.add_middleware(RequestMetrics, excluded=frozenset({"/metrics", "/healthz", "/readyz"}))
    return app


def _install_error_pages(app: FastAPI) -> None:
    """Errors as pages in the reader's language, with the status they stand for."""

    def page(request: Request, status: int, message: str) -> Response:
        console: Console = request.app.state.console
        reader = reader_of(request, console.default_zone)
        return render(
            request,
            reader,
            "error.html",
            session_of(request),
            status_code=status,
            page="error",
            message=message,
        )

    async def on_sign_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        if request.headers.get("hx-request") == "true":  # htmx follows the header, not a 303
            return Response(status_code=204, headers={"HX-Redirect": "/login"})
        return RedirectResponse(f"/login?next={_quoted(exc.next_path)}", status_code=303)

    async def on_signed_out(request: Request, _: Exception) -> Response:
        console: Console = request.app.state.console
        console.sessions.close(request.cookies.get(SESSION_COOKIE))
        response: Response = RedirectResponse("/login", status_code=303)
        if request.headers.get("hx-request") == "true":
            response = Response(status_code=204, headers={"HX-Redirect": "/login"})
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def on_domain_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, DomainError)
        t = reader_of(request, request.app.state.console.default_zone).t
        if isinstance(exc, Forbidden):
            text = t("error.csrf") if exc.field == "csrf_token" else t("error.forbidden", scope=exc)
        elif exc.status == 404:
            text = t("issue.not_found") if request.url.path.startswith("/issues") else str(exc)
        elif exc.status == 409:
            text = t("action.failed", detail=str(exc))
        else:
            text = t("error.invalid", field=exc.field or "?") + f" ({exc})"
        return page(request, exc.status, text)

    async def on_unavailable(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Unavailable)
        log.warning("service unavailable", service=exc.service, path=request.url.path)
        t = reader_of(request, request.app.state.console.default_zone).t
        return page(request, 503, t("error.unavailable", service=exc.service))

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        t = reader_of(request, request.app.state.console.default_zone).t
        fields = ", ".join(field_path(error.get("loc", ())) for error in exc.errors())
        if request.url.path.startswith("/issues/"):
            return page(request, 404, t("issue.invalid_id"))
        return page(request, 422, t("error.invalid", field=fields))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        t = reader_of(request, request.app.state.console.default_zone).t
        text = t("error.not_found") if exc.status_code == 404 else str(exc.detail)
        return page(request, exc.status_code, text)

    app.add_exception_handler(SignInRequired, on_sign_in)
    app.add_exception_handler(SignedOut, on_signed_out)
    app.add_exception_handler(DomainError, on_domain_error)
    app.add_exception_handler(Unavailable, on_unavailable)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)


def _quoted(path: str) -> str:
    return quote(path, safe="/")


def run() -> None:
    """``python -m services.console``: serve until SIGINT/SIGTERM."""
    settings = get_settings()
    config = uvicorn.Config(
        create_app(settings=settings),
        host=settings.host,
        port=settings.service_port("console"),
        log_config=None,
        access_log=settings.access_log,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        uvicorn.Server(config).run()
