"""intake's HTTP API (contract v1). Thin: validate, call a handler, shape the answer.

Domain refusals (shared/errors.py) become problem details in shared/problems.py.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from services.intake import handlers
from services.intake.adapters import peers
from services.intake.adapters.accept import IssueStore, open_issue_store
from services.intake.domain.commands import (
    IssueSearch,
    ResolveIssue,
    SubmitFeedback,
    SubmitIssue,
    SubmitIssueBatch,
)
from services.intake.entrypoints.schemas import (
    BatchResults,
    CustomerErasedAnswer,
    CustomerExport,
    FeedbackAccepted,
    IssueAccepted,
    IssueView,
    ProblemDetails,
)
from shared import asyncapi
from shared.auth import Principal, authorize, require
from shared.contracts import Channel, CustomerErased, CustomerRef
from shared.db import Database
from shared.errors import DomainError
from shared.http import DatabaseDep, FastJSON, SettingsDep
from shared.messaging.topology import CONSUMES
from shared.paging import Cursor, Limit, Page, decode_cursor, page_of
from shared.privacy import CUSTOMERS_READ, shown_to
from shared.problems import domain_problem, validation_problem
from shared.settings import Settings
from shared.validation import NoNul, Timestamp


@dataclass(frozen=True)
class IssueIntake:
    """What the issue routes need, set up once: one dependency per request, not three."""

    store: IssueStore
    source: str
    default_region: str


@asynccontextmanager
async def _issue_intake(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    db: Database = app.state.db
    async with open_issue_store(settings, db.outbox.notify_channel) as store:
        app.state.issue_intake = IssueIntake(store, db.outbox.source, settings.default_phone_region)
        yield


async def _intake(request: Request) -> IssueIntake:
    intake: IssueIntake = request.app.state.issue_intake
    return intake


class SubmitIssueRoute:
    """``POST /v1/issues`` as a plain ASGI endpoint, ahead of the route that documents it.

    The hot path of intake: FastAPI's request machinery (dependency resolution, reading the
    body into Python objects with the json module, validating them, rendering the answer)
    cost about as much CPU as everything else in the request. Here the body is validated
    straight from its bytes by pydantic and the answer written by orjson. The contract is
    the documented route's: the same scope check, refusals raised as the same exceptions,
    which the app's handlers turn into the same problem details (and a database that is away
    or busy into a 503 with Retry-After, shared/problems.py).
    """

    path = "/v1/issues"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = self  # for the metrics' handler label (shared/http.py)
        state = scope["app"].state
        header = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value
                break
        await authorize(state.auth, header.decode("latin-1"), "issues:write", scope)
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # nobody to answer; nothing was stored
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        try:
            cmd = SubmitIssue.model_validate_json(b"".join(chunks))
        except ValidationError as exc:
            raise RequestValidationError(exc.errors(include_url=False)) from None
        answer = await _accept_one(cmd, state.issue_intake)
        await _issue_answer(answer)(scope, receive, send)


router = APIRouter(prefix="/v1", lifespan=_issue_intake)
# First, so that it is the one that serves; submit_issue below documents it (OpenAPI) and
# states the same contract with FastAPI's means (tests/e2e/test_intake_api.py checks both).
# (Starlette serves an ASGI app given as an endpoint as it is; the annotation names functions.)
router.add_route(
    SubmitIssueRoute.path, cast(Any, SubmitIssueRoute()), methods=["POST"], include_in_schema=False
)
CanWriteIssues = Annotated[Principal, Depends(require("issues:write"))]
CanReadIssues = Annotated[Principal, Depends(require("issues:read"))]
CanWriteFeedback = Annotated[Principal, Depends(require("feedback:write"))]
IntakeDep = Annotated[IssueIntake, Depends(_intake)]

_PROBLEM = {"model": ProblemDetails, "content": {"application/problem+json": {}}}
_REFUSALS: dict[int | str, dict[str, Any]] = {
    status: {**_PROBLEM, "description": description}
    for status, description in (
        (401, "No API key, or an unknown or revoked one"),
        (403, "The API key lacks the scope"),
        (413, "The body is too large"),
        (422, "The body is invalid; `field` names the field at fault"),
        (429, "The key's rate limit: retry after `Retry-After` seconds"),
        (503, "Busy or the database is unavailable: retry after `Retry-After` seconds"),
    )
}


async def _accept_one(cmd: SubmitIssue, intake: IssueIntake) -> handlers.Accepted:
    [answer] = await handlers.submit_issues(
        [cmd], intake.store, default_region=intake.default_region, source=intake.source
    )
    if isinstance(answer, DomainError):
        raise answer
    return answer


def _issue_answer(result: handlers.Accepted) -> FastJSON:
    body = {"issue_id": str(result.id), "status": "accepted", "duplicate": result.duplicate}
    return FastJSON(body, status_code=200 if result.duplicate else 202)


def _feedback_answer(result: handlers.Accepted) -> FastJSON:
    status = "pending_issue" if result.pending_issue else "accepted"
    body = {"feedback_id": str(result.id), "status": status, "duplicate": result.duplicate}
    return FastJSON(body, status_code=200 if result.duplicate else 202)


@router.post(
    "/issues",
    status_code=202,
    response_model=IssueAccepted,
    responses={
        200: {"model": IssueAccepted, "description": "A retry: the issue stored under this key"},
        409: {**_PROBLEM, "description": "This key was accepted with a different body"},
        **_REFUSALS,
    },
)
async def submit_issue(cmd: SubmitIssue, intake: IntakeDep, _: CanWriteIssues) -> FastJSON:
    """Accept one issue: 202 once it and its event are committed."""
    return _issue_answer(await _accept_one(cmd, intake))


@router.post("/issues/batch", response_model=BatchResults, responses=_REFUSALS)
async def submit_issue_batch(
    batch: SubmitIssueBatch, intake: IntakeDep, _: CanWriteIssues
) -> FastJSON:
    """Each item is validated and answered on its own; the valid ones are stored together."""
    results: list[dict[str, Any] | None] = [None] * len(batch.items)
    valid: list[tuple[int, SubmitIssue]] = []
    for index, item in enumerate(batch.items):
        try:
            valid.append((index, SubmitIssue.model_validate(item)))
        except ValidationError as exc:
            problem = validation_problem(
                [{**err, "loc": ("items", index, *err["loc"])} for err in exc.errors()]
            )
            results[index] = {"index": index, "status": 422, "problem": problem.body()}
    answers = await handlers.submit_issues(
        [cmd for _, cmd in valid],
        intake.store,
        default_region=intake.default_region,
        source=intake.source,
    )
    for (index, _cmd), answer in zip(valid, answers, strict=True):
        if isinstance(answer, DomainError):
            problem = domain_problem(answer)
            if problem.field:
                problem.field = f"items[{index}].{problem.field}"
            results[index] = {"index": index, "status": problem.status, "problem": problem.body()}
        else:
            results[index] = {
                "index": index,
                "status": 200 if answer.duplicate else 202,
                "issue_id": str(answer.id),
                "duplicate": answer.duplicate,
            }
    return FastJSON({"results": results})


def _shown(issue: dict[str, Any], principal: Principal) -> dict[str, Any]:
    """Contacts masked unless the key holds customers:read."""
    customer = shown_to(CustomerRef.model_validate(issue["customer"]), principal.scopes)
    return {**issue, "customer": customer}


@router.get("/issues", response_model=Page[IssueView], responses=_REFUSALS)
async def list_issues(
    db: DatabaseDep,
    principal: CanReadIssues,
    channel: Channel | None = None,
    customer_id: uuid.UUID | None = None,
    status: Literal["received", "resolved"] | None = None,
    received_since: Annotated[Timestamp | None, Query(description="at or after")] = None,
    received_until: Annotated[Timestamp | None, Query(description="before")] = None,
    q: Annotated[
        str | None,
        Query(min_length=1, max_length=200, description="words in the subject or text (zh, en)"),
        NoNul,
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[dict[str, Any]]:
    """Issues, newest first (by ``received_at``), filtered; page with ``cursor``. Contacts
    masked unless the key holds customers:read."""
    key = decode_cursor(cursor, (datetime, uuid.UUID)) if cursor else None
    search = IssueSearch(channel, customer_id, status, received_since, received_until, q)
    async with db.unit_of_work() as uow:
        views = await handlers.find_issues(search, uow, limit=limit, key=key)
    items, next_cursor = page_of(views, limit, lambda view: (view["received_at"], view["issue_id"]))
    return Page(items=[_shown(item, principal) for item in items], next_cursor=next_cursor)


@router.get(
    "/issues/{issue_id}",
    response_model=IssueView,
    responses={404: {**_PROBLEM, "description": "No such issue"}, **_REFUSALS},
)
async def get_issue(
    issue_id: uuid.UUID, db: DatabaseDep, principal: CanReadIssues
) -> dict[str, Any]:
    """Contacts masked unless the key holds customers:read."""
    async with db.unit_of_work() as uow:
        return _shown(await handlers.get_issue(issue_id, uow), principal)


@router.post(
    "/issues/{issue_id}/resolution",
    status_code=202,
    response_model=IssueAccepted,
    responses={
        200: {"model": IssueAccepted, "description": "The same resolution again: no change"},
        404: {**_PROBLEM, "description": "No such issue"},
        409: {**_PROBLEM, "description": "The issue was resolved differently"},
        **_REFUSALS,
    },
)
async def resolve_issue(
    issue_id: uuid.UUID, cmd: ResolveIssue, db: DatabaseDep, _: CanWriteIssues
) -> FastJSON:
    async with db.unit_of_work() as uow:
        result = await handlers.resolve_issue(issue_id, cmd, uow)
    return _issue_answer(result)


@router.post(
    "/feedback",
    status_code=202,
    response_model=FeedbackAccepted,
    responses={
        200: {"model": FeedbackAccepted, "description": "A retry: the feedback under this key"},
        409: {**_PROBLEM, "description": "This key was accepted with a different body"},
        **_REFUSALS,
    },
)
async def submit_feedback(
    cmd: SubmitFeedback, db: DatabaseDep, settings: SettingsDep, _: CanWriteFeedback
) -> FastJSON:
    async with db.unit_of_work() as uow:
        result = await handlers.submit_feedback(
            cmd, uow, default_region=settings.default_phone_region
        )
    return _feedback_answer(result)


contract = APIRouter()
_ASYNCAPI = asyncapi.document()  # the contract cannot change while the process runs


@contract.get("/asyncapi.json", tags=["contract"], response_model=dict[str, Any])
async def asyncapi_document() -> FastJSON:
    """The AsyncAPI 3.0 document of every event Kefu publishes (docs/asyncapi.json)."""
    return FastJSON(_ASYNCAPI)


CanEraseCustomers = Annotated[Principal, Depends(require("customers:erase"))]
CanReadCustomers = Annotated[Principal, Depends(require(CUSTOMERS_READ))]
# The services that keep customer data from events: each erases it and serves it for export.
PEERS = tuple(service for service, types in CONSUMES.items() if CustomerErased.TYPE in types)


@router.delete(
    "/customers/{customer_id}",
    response_model=CustomerErasedAnswer,
    responses={404: {**_PROBLEM, "description": "No such customer"}, **_REFUSALS},
)
async def erase_customer(
    customer_id: uuid.UUID, db: DatabaseDep, _: CanEraseCustomers
) -> CustomerErasedAnswer:
    """Erase the customer here at once, and everywhere else through kefu.customer.erased."""
    async with db.unit_of_work() as uow:
        erased_at = await handlers.erase_customer(customer_id, uow)
    return CustomerErasedAnswer(customer_id=customer_id, erased_at=erased_at)


@router.get(
    "/customers/{customer_id}/export",
    response_model=CustomerExport,
    responses={404: {**_PROBLEM, "description": "No such customer"}, **_REFUSALS},
)
async def export_customer(
    customer_id: uuid.UUID,
    request: Request,
    db: DatabaseDep,
    settings: SettingsDep,
    _: CanReadCustomers,
) -> CustomerExport:
    """Everything Kefu holds about the customer, from every service (asked with your key)."""
    async with db.unit_of_work() as uow:
        own = await handlers.customer_records(customer_id, uow)
    others = await peers.customer_data(
        {service: settings.service_url(service) for service in PEERS},
        customer_id,
        request.headers["authorization"],
    )
    return CustomerExport(customer_id=customer_id, services={"intake": own, **others})
