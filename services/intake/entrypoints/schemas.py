"""What intake answers (contract v1), as models so that every OpenAPI response has a schema."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel

from shared.contracts import CustomerRef


class IssueAccepted(BaseModel):
    issue_id: uuid.UUID
    status: Literal["accepted"] = "accepted"
    duplicate: bool


class FeedbackAccepted(BaseModel):
    feedback_id: uuid.UUID
    # pending_issue: the issue it names has not arrived; it is published when it does.
    status: Literal["accepted", "pending_issue"]
    duplicate: bool


class ProblemDetails(BaseModel):
    """RFC 9457; ``field`` names the field at fault, ``errors`` lists every invalid field."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    instance: str | None = None
    field: str | None = None
    errors: list[dict[str, str]] | None = None


class BatchItemAccepted(BaseModel):
    index: int
    status: Literal[200, 202]
    issue_id: uuid.UUID
    duplicate: bool


class BatchItemRefused(BaseModel):
    index: int
    status: int
    problem: ProblemDetails


class BatchResults(BaseModel):
    results: list[BatchItemAccepted | BatchItemRefused]


class IssueView(BaseModel):
    issue_id: uuid.UUID
    channel: str
    external_id: str
    customer: CustomerRef
    subject: str | None
    text: str
    language: str | None
    metadata: dict[str, Any]
    occurred_at: datetime | None
    received_at: datetime
    status: Literal["received", "resolved"]
    resolved_at: datetime | None
    resolution: dict[str, Any] | None


class CustomerErasedAnswer(BaseModel):
    customer_id: uuid.UUID
    status: Literal["erased"] = "erased"
    erased_at: datetime


class CustomerExport(BaseModel):
    """Per service, per table, the rows about the customer."""

    customer_id: uuid.UUID
    services: dict[str, dict[str, list[dict[str, Any]]]]
