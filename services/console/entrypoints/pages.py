"""Rendering: the Jinja2 environment, and what every page knows of its reader (language,
locale, time zone) and of the signed-in key."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.console.adapters.sessions import Session
from services.console.domain.formatting import Formatter, pick_locale, pick_zone
from services.console.domain.i18n import LANGUAGES, Translator, negotiate
from services.console.domain.periods import direction

HERE = Path(__file__).resolve().parent.parent
LANG_COOKIE = "kefu_lang"
TZ_COOKIE = "kefu_tz"

environment = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
environment.globals["direction"] = direction


@dataclass(frozen=True)
class Reader:
    language: str
    t: Translator
    fmt: Formatter
    zone_name: str


def reader_of(request: Request, default_zone: str) -> Reader:
    """``?lang=`` (the switch), else the ``kefu_lang`` cookie, else ``Accept-Language``."""
    chosen = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
    accept = request.headers.get("accept-language")
    language = negotiate(accept, chosen)
    zone = pick_zone(request.cookies.get(TZ_COOKIE), default_zone)
    return Reader(
        language, Translator(language), Formatter(pick_locale(language, accept), zone), zone.key
    )


def render(
    request: Request,
    reader: Reader,
    template: str,
    session: Session | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    page = environment.get_template(template).render(
        request=request,
        path=request.url.path,
        query=request.query_params,
        lang=reader.language,
        languages=LANGUAGES,
        t=reader.t,
        fmt=reader.fmt,
        session=session,
        grants=session.grants if session else None,
        csrf=session.csrf if session else "",
        **context,
    )
    response = HTMLResponse(page, status_code=status_code)
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(
            LANG_COOKIE,
            reader.language,
            max_age=365 * 24 * 3600,
            samesite="strict",
            httponly=True,
        )
    return response
