"""RFC 9457 problem details for every error a service returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from prometheus_client import Counter
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.db import DatabaseBusy, is_transient_db_error, sqlstate
from shared.errors import DomainError
from shared.logging import get_logger

PROBLEM_JSON = "application/problem+json"
log = get_logger(__name__)
BUSY = Counter("kefu_http_busy_total", "Requests refused with 503: every connection was busy")


class Problem(Exception):
    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        field: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.field = field
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.field:
            body["field"] = self.field
        body.update(self.extra)
        return body


def field_path(loc: Sequence[Any]) -> str:
    """``("body", "customer", "email")`` -> ``customer.email``; list indexes as ``items[2]``."""
    path = ""
    for part in loc:
        if part in ("body", "query", "path", "header") and not path:
            continue
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "body"


def validation_problem(errors: Sequence[Mapping[str, Any]]) -> Problem:
    fields = [
        {"field": field_path(err.get("loc", ())), "message": str(err.get("msg", "invalid"))}
        for err in errors
    ]
    first = fields[0] if fields else {"field": "body", "message": "invalid request"}
    return Problem(
        422,
        "Invalid request",
        f"{first['field']}: {first['message']}",
        field=first["field"],
        extra={"errors": fields},
    )


def domain_problem(exc: DomainError) -> Problem:
    """The one mapping of the domain's refusals to problem details."""
    detail = f"{exc.field}: {exc.message}" if exc.field and exc.status == 422 else exc.message
    retry_after = getattr(exc, "retry_after", None)
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return Problem(exc.status, exc.title, detail, field=exc.field, headers=headers)


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    return JSONResponse(
        problem.body(request.url.path if request else None),
        status_code=problem.status,
        headers=problem.headers,
        media_type=PROBLEM_JSON,
    )


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc, request)

    async def on_domain_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DomainError)
        return problem_response(domain_problem(exc), request)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(validation_problem(exc.errors()), request)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        title = HTTPStatus(exc.status_code).phrase
        return problem_response(
            Problem(exc.status_code, title, str(exc.detail), headers=exc.headers), request
        )

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(DomainError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_middleware(UnhandledErrors)


class UnhandledErrors:
    """Answers what no handler caught: 503 while the database is away, else 500.

    A pure ASGI middleware, so the connection stays usable (Starlette's catch-all handler
    re-raises, and the server then drops the keep-alive connection).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise
            path = scope.get("path", "")
            if (sqlstate(exc) or "").startswith("22"):
                # A value the database cannot hold that validation let through: the
                # client's data, not our fault; validation should learn to refuse it.
                # Its message may quote the value (customer data): the SQLSTATE says enough.
                log.warning("value refused by the database", path=path, sqlstate=sqlstate(exc))
                problem = Problem(422, "Invalid request", "a value cannot be stored")
            elif isinstance(exc, DatabaseBusy | PoolTimeout):
                # Every connection is at work: back-pressure, the database is fine. Counted,
                # not logged: a log line per refusal would add to the overload.
                BUSY.inc()
                problem = Problem(
                    503,
                    "Service busy",
                    "the service is busy with other requests; retry later",
                    headers={"Retry-After": "1"},
                )
            elif is_transient_db_error(exc):
                log.warning("database unavailable", path=path, error=str(exc))
                problem = Problem(
                    503,
                    "Service unavailable",
                    "the database is unavailable; retry later",
                    headers={"Retry-After": "5"},
                )
            else:
                log.exception("unhandled error", path=path)
                problem = Problem(500, "Internal error", "unexpected error")
            await problem_response(problem)(scope, receive, send)
