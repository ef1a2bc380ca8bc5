"""What channel systems ask intake to do. Unknown fields are refused (contract v1).

Every value that passes here also fits the database (shared/validation.py).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from shared.contracts import Channel, Rating
from shared.validation import NoNul, PastTimestamp, storable_json

MAX_TEXT_CHARS = 20_000
MAX_BATCH_ITEMS = 100
MAX_METADATA_KEYS = 50
MAX_METADATA_DEPTH = 8
MAX_METADATA_BYTES = 16_384


def _only_scale_and_value(value: Any) -> Any:
    if isinstance(value, dict) and set(value) - {"scale", "value"}:
        raise ValueError("a rating has only 'scale' and 'value'")
    return value


# Constraints first: pydantic skips string constraints placed after a validator.
ShortText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NoNul
]
LongText = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT_CHARS), NoNul
]
LanguageTag = Annotated[
    str, StringConstraints(max_length=35, pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
]


def _bounded_metadata(value: dict[str, Any]) -> dict[str, Any]:
    # Depth first: every consumer decodes the metadata again, and a deep nest exhausts their
    # recursion (the event would be dead-lettered after it was accepted).
    storable_json(value, max_depth=MAX_METADATA_DEPTH)
    size = len(json.dumps(value, ensure_ascii=False).encode())
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"must be at most {MAX_METADATA_BYTES} bytes as JSON (is {size})")
    return value


Metadata = Annotated[
    dict[str, Any], Field(max_length=MAX_METADATA_KEYS), AfterValidator(_bounded_metadata)
]
StrictRating = Annotated[Rating, BeforeValidator(_only_scale_and_value)]


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def fingerprint(self) -> str:
        """Identifies the body, so a retry can be told from a different message with the same id."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()


class CustomerIn(_Command):
    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200), NoNul] | None = (
        None
    )
    email: Annotated[str, StringConstraints(max_length=320), NoNul] | None = None
    phone: Annotated[str, StringConstraints(max_length=40), NoNul] | None = None
    external_id: ShortText | None = None

    @model_validator(mode="after")
    def _reachable(self) -> CustomerIn:
        if not (self.email or self.phone or self.external_id):
            raise ValueError("give at least one of email, phone or external_id")
        return self


class SubmitIssue(_Command):
    channel: Channel
    external_id: ShortText
    customer: CustomerIn
    text: LongText
    subject: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=500), NoNul] | None
    ) = None
    occurred_at: PastTimestamp | None = None
    language: LanguageTag | None = None
    metadata: Metadata = Field(default_factory=dict)


class SubmitIssueBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Items are validated one by one, so that one bad item does not refuse the others.
    items: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]


class IssueRef(_Command):
    """An issue by the channel's own id: it may not have reached Kefu yet."""

    channel: Channel
    external_id: ShortText


class SubmitFeedback(_Command):
    issue_id: uuid.UUID | None = None
    issue: IssueRef | None = None
    customer: CustomerIn | None = None
    rating: StrictRating | None = None
    comment: LongText | None = None
    channel: Channel | None = None
    external_id: ShortText | None = None
    submitted_at: PastTimestamp | None = None

    @model_validator(mode="after")
    def _complete(self) -> SubmitFeedback:
        if self.issue_id is not None and self.issue is not None:
            raise ValueError("give issue_id or issue, not both")
        if self.issue_id is None and self.issue is None and self.customer is None:
            raise ValueError("give issue_id, issue or customer")
        if self.rating is None and self.comment is None:
            raise ValueError("give a rating, a comment or both")
        if self.external_id is not None and self.channel is None:
            raise ValueError("external_id needs the channel it belongs to")
        return self


class ResolveIssue(_Command):
    resolved_by: ShortText
    summary: LongText
    code: ShortText | None = None
    resolved_at: PastTimestamp | None = None


@dataclass(frozen=True)
class IssueSearch:
    """The filters of ``GET /v1/issues``; None: any."""

    channel: Channel | None = None
    customer_id: uuid.UUID | None = None
    status: Literal["received", "resolved"] | None = None
    received_since: datetime | None = None
    received_until: datetime | None = None
    text: str | None = None
