"""The console's pages and buttons. Thin: read the request, call a handler, render a template.

Every page needs a session; every POST carries the session's CSRF token (a form field, or the
``X-CSRF-Token`` header that htmx sends). Buttons work without JavaScript (a form POST and a
redirect); with htmx they swap only the row or card they changed.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, get_args
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import URL

from services.console import handlers
from services.console.adapters.services import KefuServices
from services.console.adapters.sessions import Session, SessionStore
from services.console.domain.errors import Forbidden
from services.console.domain.periods import AGE_DAYS, DEFAULT_DAYS, PERIOD_DAYS, Period
from services.console.entrypoints.pages import Reader, reader_of, render
from shared.contracts import Channel, FollowupStatus, Intent, ProposalStatus
from shared.errors import InvalidInput

SESSION_COOKIE = "kefu_session"
LOGIN_COOKIE = "kefu_login"
CHANNELS: tuple[str, ...] = get_args(Channel)
INTENTS: tuple[str, ...] = get_args(Intent)
FOLLOWUP_STATUSES: tuple[str, ...] = get_args(FollowupStatus)
PROPOSAL_STATUSES: tuple[str, ...] = get_args(ProposalStatus)

router = APIRouter()


@dataclass(frozen=True)
class Console:
    """What the routes share, set up once by the composition root."""

    services: KefuServices
    sessions: SessionStore
    default_zone: str
    cookie_secure: bool


class SignInRequired(Exception):
    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


async def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


async def _reader(request: Request) -> Reader:
    console: Console = request.app.state.console
    return reader_of(request, console.default_zone)


def session_of(request: Request) -> Session | None:
    console: Console = request.app.state.console
    return console.sessions.get(request.cookies.get(SESSION_COOKIE))


async def _session(request: Request) -> Session:
    session = session_of(request)
    if session is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target)
    return session


ConsoleDep = Annotated[Console, Depends(_console)]
ReaderDep = Annotated[Reader, Depends(_reader)]
SessionDep = Annotated[Session, Depends(_session)]
CsrfField = Annotated[str, Form()]


def check_csrf(request: Request, session_token: str, form_token: str | None) -> None:
    """The session's token must come back in the form or in the X-CSRF-Token header."""
    sent = form_token or request.headers.get("x-csrf-token") or ""
    if not hmac.compare_digest(sent.encode(), session_token.encode()):
        raise Forbidden("csrf", field="csrf_token")


def _choice(value: str | None, allowed: Sequence[str], field: str) -> str | None:
    """An optional choice of a select ("" is "all"); anything else is refused naming the field."""
    if value in (None, ""):
        return None
    if value not in allowed:
        raise InvalidInput(f"{field}: not one of {', '.join(allowed)}", field=field)
    return value


def _days(value: int, allowed: Sequence[int], field: str) -> int:
    if value not in allowed:
        raise InvalidInput(f"{field}: not one of {allowed}", field=field)
    return value


def _safe_next(path: str | None) -> str:
    """Only a path of this site (never //host or a scheme): no open redirect after sign-in."""
    if path and path.startswith("/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/"


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


# ------------------------------------------------------------------ sign-in


@router.get("/login", response_class=HTMLResponse, response_model=None)
async def login_form(request: Request, reader: ReaderDep, next: str = "/") -> Response:
    token = secrets.token_urlsafe(32)
    response = render(
        request, reader, "login.html", None, login_token=token, next_path=_safe_next(next)
    )
    _set_cookie(request, response, LOGIN_COOKIE, token, max_age=3600)
    return response


@router.post("/login", response_class=HTMLResponse, response_model=None)
async def login(
    request: Request,
    reader: ReaderDep,
    console: ConsoleDep,
    api_key: Annotated[str, Form(max_length=512)],
    login_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    """A form token tied to a cookie (the session's CSRF does not exist yet): no other site can
    sign a browser in with its own key."""
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), login_token.encode()):
        return _login_again(request, reader, "login.expired", next, status=403)
    grants = await handlers.sign_in(console.services, api_key.strip())
    if grants is None:
        return _login_again(request, reader, "login.unknown_key", next, status=401)
    session_id, _ = console.sessions.open(api_key.strip(), grants)
    target = _safe_next(next)
    response = RedirectResponse(target if target != "/" else grants.home, status_code=303)
    _set_cookie(request, response, SESSION_COOKIE, session_id, max_age=None)
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


def _login_again(request: Request, reader: Reader, error: str, next: str, status: int) -> Response:
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        reader,
        "login.html",
        None,
        status_code=status,
        error=error,
        login_token=token,
        next_path=_safe_next(next),
    )
    _set_cookie(request, response, LOGIN_COOKIE, token, max_age=3600)
    return response


def _set_cookie(
    request: Request, response: Response, name: str, value: str, *, max_age: int | None
) -> None:
    console: Console = request.app.state.console
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=console.cookie_secure,
    )


@router.post("/logout", response_model=None)
async def logout(
    request: Request,
    console: ConsoleDep,
    session: SessionDep,
    csrf_token: CsrfField = "",
) -> Response:
    check_csrf(request, session.csrf, csrf_token)
    console.sessions.close(request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# ------------------------------------------------------------------ pages


def _now() -> datetime:
    return datetime.now(UTC)


@router.get("/", response_class=HTMLResponse, response_model=None)
async def overview_page(
    request: Request,
    reader: ReaderDep,
    console: ConsoleDep,
    session: SessionDep,
    days: int = DEFAULT_DAYS,
    channel: str | None = None,
    intent: str | None = None,
) -> Response:
    period = Period.last(_days(days, PERIOD_DAYS, "days"), _now())
    view = await handlers.overview(
        console.services,
        session.key,
        session.grants,
        period,
        tz=reader.zone_name,
        channel=_choice(channel, CHANNELS, "channel"),
        intent=_choice(intent, INTENTS, "intent"),
    )
    labels = [reader.fmt.day(datetime.fromisoformat(day).date()) for day, _, _ in view.days]
    return render(
        request,
        reader,
        "overview.html",
        session,
        page="overview",
        view=view,
        chart={
            "labels": labels,
            "csat": [csat for _, csat, _ in view.days],
            "rated": [rated for _, _, rated in view.days],
            "names": [
                reader.t("overview.trend_csat"),
                reader.t("overview.trend_rated"),
                reader.t("overview.day"),
            ],
        },
        period_days=PERIOD_DAYS,
        channels=CHANNELS,
        intents=INTENTS,
    )


@router.get("/needs", response_class=HTMLResponse, response_model=None)
async def needs_page(
    request: Request,
    reader: ReaderDep,
    console: ConsoleDep,
    session: SessionDep,
    days: int = 30,
) -> Response:
    period = Period.last(_days(days, PERIOD_DAYS, "days"), _now())
    top = await handlers.needs(console.services, session.key, session.grants, period)
    return render(
        request,
        reader,
        "needs.html",
        session,
        page="needs",
        period=period,
        top=top,
        period_days=PERIOD_DAYS,
    )


@router.get("/followups", response_class=HTMLResponse, response_model=None)
async def followups_page(
    request: Request,
    reader: ReaderDep,
    console: ConsoleDep,
    session: SessionDep,
    status: str = "open",
    channel: str | None = None,
    intent: str | None = None,
    age: int = 0,
    page: str | None = None,
) -> Response:
    filters = handlers.FollowupFilters(
        status=_choice(status, FOLLOWUP_STATUSES, "status"),
        channel=_choice(channel, CHANNELS, "channel"),
        intent=_choice(intent, INTENTS, "intent"),
        older_than_days=_days(age, (0, *AGE_DAYS), "age") or None,
    )
    now = _now()
    listed = await handlers.followups(
        console.services, session.key, session.grants, filters, now=now, page=page
    )
    return render(
        request,
        reader,
        "followups.html",
        session,
        page="followups",
        listed=listed,
        filters=filters,
        now=now,
        moves=handlers.followup_moves,
        channels=CHANNELS,
        intents=INTENTS,
        statuses=FOLLOWUP_STATUSES,
        ages=AGE_DAYS,
        next_url=_with_page(request.url, listed.next),
    )


@router.post("/followups/{followup_id}/move", response_class=HTMLResponse, response_model=None)
async def move_followup(
    followup_id: uuid.UUID,
    request: Request,
    reader: ReaderDep,
    console: ConsoleDep,
    session: SessionDep,
    status: Annotated[str, Form()],
    csrf_token: CsrfField = "",
) -> Response:
    check_csrf(request, session.csrf, csrf_token)
    moved = await handlers.move_followup(
        console.services,
        session.key,
        session.grants,
        followup_id,
        _choice(status, FOLLOWUP_STATUSES, "status") or "",
    )
    return _moved(request, reader, session, "_followup_row.html", moved, handlers.followup_moves)


@router.get("/improvements", response_class=HTMLResponse, response_model=None)
async def improvements_page(
    request: Request,
    reader: ReaderDep,
    console: ConsoleDep,
    session: SessionDep,
    status: str | None = None,
    page: str | None = None,
) -> Response:
    chosen = _choice(status, PROPOSAL_STATUSES, "status")
    listed = await handlers.proposals(
        console.services, session.key, session.grants, status=chosen, page=page
    )
    return render(
        request,
        reader,
        "improvements.html",
        session,
        page="improvements",
        listed=listed,
        status=chosen,
        statuses=PROPOSAL_STATUSES,
        moves=handlers.proposal_moves,
        next_url=_with_page(request.url, listed.next),
    )


@router.post("/improvements/{proposal_id}/move", response_class=HTMLResponse, response_model=None)
async def move_proposal(
    proposal_id: uuid.UUID,
    request: Request,
    reader: ReaderDep,
    console: ConsoleDep,
    session: SessionDep,
    status: Annotated[str, Form()],
    csrf_token: CsrfField = "",
) -> Response:
    check_csrf(request, session.csrf, csrf_token)
    moved = await handlers.move_proposal(
        console.services,
        session.key,
        session.grants,
        proposal_id,
        _choice(status, PROPOSAL_STATUSES, "status") or "",
    )
    return _moved(request, reader, session, "_proposal.html", moved, handlers.proposal_moves)


@router.get("/issues", response_model=None)
async def find_issue(session: SessionDep, id: str = "") -> Response:
    """The navigation's issue box: the id typed (or pasted) leads to its page."""
    if not session.grants.may_open("issue"):
        raise Forbidden("issues:read", field="issue")
    try:
        issue_id = uuid.UUID(id.strip())
    except ValueError:
        raise InvalidInput("id: not an issue id", field="id") from None
    return RedirectResponse(f"/issues/{issue_id}", status_code=303)


@router.get("/issues/{issue_id}", response_class=HTMLResponse, response_model=None)
async def issue_page(
    issue_id: uuid.UUID,
    request: Request,
    reader: ReaderDep,
    console: ConsoleDep,
    session: SessionDep,
) -> Response:
    story = await handlers.issue_story(console.services, session.key, session.grants, issue_id)
    return render(
        request,
        reader,
        "issue.html",
        session,
        page="issue",
        story=story,
        now=_now(),
        moves=handlers.followup_moves,
    )


def _moved(
    request: Request,
    reader: Reader,
    session: Session,
    partial: str,
    item: object,
    moves: Callable[[Any], list[str]],
) -> Response:
    """After a move: htmx swaps in the changed row or card; a plain form goes back to the page
    it was on (the Referer's path, never another site)."""
    if not _is_htmx(request):
        referer = urlsplit(request.headers.get("referer", ""))
        back = referer.path + (f"?{referer.query}" if referer.query else "")
        return RedirectResponse(_safe_next(back or None), status_code=303)
    return render(
        request, reader, partial, session, item=item, now=_now(), moves=moves, notice="action.done"
    )


def _with_page(url: URL, token: str | None) -> str | None:
    if token is None:
        return None
    return f"{url.path}?{url.remove_query_params(['page', 'lang']).query}&page={quote(token)}"
