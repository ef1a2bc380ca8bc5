"""intake's HTTP API (contract v1). Thin: validate, call a handler, shape the answer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from services.intake import handlers
from services.intake.domain.commands import (
    ResolveIssue,
    SubmitFeedback,
    SubmitIssue,
    SubmitIssueBatch,
)
from services.intake.domain.customers import InvalidField
from shared.auth import Principal, require
from shared.http import DatabaseDep, SettingsDep
from shared.problems import Problem, validation_problem

router = APIRouter(prefix="/v1")
CanWriteIssues = Annotated[Principal, Depends(require("issues:write"))]
CanReadIssues = Annotated[Principal, Depends(require("issues:read"))]
CanWriteFeedback = Annotated[Principal, Depends(require("feedback:write"))]


@contextmanager
def domain_problems(*, not_found: int = 422) -> Iterator[None]:
    """Domain refusals become problem details naming the field at fault.

    A missing issue named in the URL is a 404; named in the body it is a 422.
    """
    try:
        yield
    except InvalidField as exc:
        raise Problem(
            422, "Invalid request", f"{exc.field}: {exc.message}", field=exc.field
        ) from exc
    except handlers.NotFound as exc:
        title = "Not found" if not_found == 404 else "Invalid request"
        raise Problem(not_found, title, str(exc), field=exc.field) from exc
    except handlers.Conflict as exc:
        raise Problem(409, "Conflict", str(exc), field=exc.field) from exc


def _accepted(result: handlers.Accepted, key: str) -> JSONResponse:
    status = "pending_issue" if result.pending_issue else "accepted"
    body = {key: str(result.id), "status": status, "duplicate": result.duplicate}
    return JSONResponse(body, status_code=200 if result.duplicate else 202)


@router.post("/issues", status_code=202)
async def submit_issue(
    cmd: SubmitIssue, db: DatabaseDep, settings: SettingsDep, _: CanWriteIssues
) -> JSONResponse:
    with domain_problems():
        async with db.unit_of_work() as uow:
            result = await handlers.submit_issue(
                cmd, uow, default_region=settings.default_phone_region
            )
    return _accepted(result, "issue_id")


@router.post("/issues/batch")
async def submit_issue_batch(
    batch: SubmitIssueBatch, db: DatabaseDep, settings: SettingsDep, _: CanWriteIssues
) -> dict[str, Any]:
    """Each item is validated and committed on its own; the answer lists every item's outcome."""
    results: list[dict[str, Any]] = []
    for index, item in enumerate(batch.items):
        try:
            cmd = SubmitIssue.model_validate(item)
            with domain_problems():
                async with db.unit_of_work() as uow:
                    result = await handlers.submit_issue(
                        cmd, uow, default_region=settings.default_phone_region
                    )
        except ValidationError as exc:
            problem = validation_problem(
                [{**err, "loc": ("items", index, *err["loc"])} for err in exc.errors()]
            )
            results.append({"index": index, "status": 422, "problem": problem.body()})
            continue
        except Problem as problem:
            if problem.field:
                problem.field = f"items[{index}].{problem.field}"
            results.append({"index": index, "status": problem.status, "problem": problem.body()})
            continue
        results.append(
            {
                "index": index,
                "status": 200 if result.duplicate else 202,
                "issue_id": str(result.id),
                "duplicate": result.duplicate,
            }
        )
    return {"results": results}


@router.get("/issues/{issue_id}")
async def get_issue(issue_id: uuid.UUID, db: DatabaseDep, _: CanReadIssues) -> dict[str, Any]:
    with domain_problems(not_found=404):
        async with db.unit_of_work() as uow:
            return await handlers.get_issue(issue_id, uow)


@router.post("/issues/{issue_id}/resolution", status_code=202)
async def resolve_issue(
    issue_id: uuid.UUID, cmd: ResolveIssue, db: DatabaseDep, _: CanWriteIssues
) -> JSONResponse:
    with domain_problems(not_found=404):
        async with db.unit_of_work() as uow:
            result = await handlers.resolve_issue(issue_id, cmd, uow)
    return _accepted(result, "issue_id")


@router.post("/feedback", status_code=202)
async def submit_feedback(
    cmd: SubmitFeedback, db: DatabaseDep, settings: SettingsDep, _: CanWriteFeedback
) -> JSONResponse:
    with domain_problems():
        async with db.unit_of_work() as uow:
            result = await handlers.submit_feedback(
                cmd, uow, default_region=settings.default_phone_region
            )
    return _accepted(result, "feedback_id")
