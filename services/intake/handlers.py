"""intake's use cases. They know nothing of HTTP: they take a command and a unit of work."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row

from services.intake.adapters import repository as repo
from services.intake.adapters.accept import IssueStore, NewIssue
from services.intake.domain.commands import (
    CustomerIn,
    IssueSearch,
    ResolveIssue,
    SubmitFeedback,
    SubmitIssue,
)
from services.intake.domain.customers import normalize_contacts
from shared import tracing
from shared.contracts import (
    CustomerErased,
    CustomerRef,
    FeedbackSubmitted,
    IssueReceived,
    IssueResolved,
    Resolution,
)
from shared.db import UnitOfWork, lock_for_transaction
from shared.erasure import delete_outbox_rows_about
from shared.errors import Conflict, DomainError, InvalidInput, NotFound, UnknownReference


@dataclass(frozen=True)
class Accepted:
    id: uuid.UUID
    duplicate: bool
    # Feedback on an issue that has not arrived yet is kept, and published when it does.
    pending_issue: bool = False


def _customer_ref(row: Row[Any]) -> CustomerRef:
    return CustomerRef(
        customer_id=row.id,
        name=row.name,
        email=row.email,
        phone=row.phone,
        external_id=row.external_id,
    )


async def _customer(uow: UnitOfWork, customer: CustomerIn, region: str) -> Row[Any]:
    contacts = normalize_contacts(
        name=customer.name,
        email=customer.email,
        phone=customer.phone,
        external_id=customer.external_id,
        default_region=region,
    )
    return await repo.find_or_create_customer(uow.session, contacts)


def _replay_feedback(existing: Row[Any], fingerprint: str) -> Accepted:
    waiting = existing.issue_id is None and existing.issue_channel is not None
    return replace(_replay(existing, fingerprint, "feedback"), pending_issue=waiting)


def _replay(existing: Row[Any], fingerprint: str, what: str) -> Accepted:
    if existing.fingerprint != fingerprint:
        raise _conflict(what, existing.channel, existing.external_id)
    return Accepted(id=existing.id, duplicate=True)


def _conflict(what: str, channel: str, external_id: str) -> Conflict:
    return Conflict(
        f"{what} with channel {channel!r} and external_id {external_id!r} "
        "was already accepted with a different body",
        field="external_id",
    )


def _new_issue(cmd: SubmitIssue, *, default_region: str, source: str) -> bytes:
    """The issue as the store takes it, and its event; InvalidInput names what is wrong."""
    contacts = normalize_contacts(
        name=cmd.customer.name,
        email=cmd.customer.email,
        phone=cmd.customer.phone,
        external_id=cmd.customer.external_id,
        default_region=default_region,
    )
    issue_id = uuid.uuid4()
    received_at = datetime.now(UTC)
    # new_event(source, IssueReceived(...)).model_dump(mode="json") as plain data: the command
    # is validated already, and building two models to dump them again cost more than the rest
    # of this function (tests/unit/test_intake_domain.py holds the two to the same JSON).
    event = {
        "specversion": "1.0",
        "id": uuid.uuid4(),
        "source": source,
        "type": IssueReceived.TYPE,
        "subject": str(issue_id),
        "time": received_at,
        "datacontenttype": "application/json",
        "data": {
            "issue_id": issue_id,
            "channel": cmd.channel,
            "external_id": cmd.external_id,
            "customer": None,  # the matched customer, put here by the statement
            "subject": cmd.subject,
            "text": cmd.text,
            "language": cmd.language,
            "metadata": cmd.metadata,
            "occurred_at": cmd.occurred_at,
            "received_at": received_at,
        },
        "traceparent": tracing.current_traceparent(),
    }
    issue = NewIssue(
        id=issue_id,
        channel=cmd.channel,
        external_id=cmd.external_id,
        contacts=contacts,
        subject=cmd.subject,
        text=cmd.text,
        language=cmd.language,
        metadata=cmd.metadata,
        occurred_at=cmd.occurred_at,
        received_at=received_at,
        fingerprint=cmd.fingerprint(),
        event=event,
    )
    try:
        return issue.encode()
    except ValueError as exc:
        raise InvalidInput(f"a value cannot be stored: {exc}") from exc


async def submit_issues(
    cmds: Sequence[SubmitIssue], store: IssueStore, *, default_region: str, source: str
) -> list[Accepted | DomainError]:
    """Store each new issue and its ``issue.received`` event, once per key, in one statement.

    One answer per command, in order: accepted, a duplicate of the issue stored under its key
    (an earlier command of the same batch included), or the refusal of that command alone.
    """
    refusals: dict[int, DomainError] = {}
    encoded: list[bytes] = []
    for position, cmd in enumerate(cmds):
        try:
            encoded.append(_new_issue(cmd, default_region=default_region, source=source))
        except DomainError as refused:
            refusals[position] = refused
    stored = iter(await store.accept(encoded) if encoded else ())
    answers: list[Accepted | DomainError] = []
    for position, cmd in enumerate(cmds):
        if position in refusals:
            answers.append(refusals[position])
            continue
        outcome = next(stored)
        if outcome.outcome == "conflict":
            answers.append(_conflict("an issue", cmd.channel, cmd.external_id))
        else:
            answers.append(Accepted(id=outcome.issue_id, duplicate=outcome.outcome == "duplicate"))
    return answers


async def submit_feedback(cmd: SubmitFeedback, uow: UnitOfWork, *, default_region: str) -> Accepted:
    """Store feedback on an issue (or on a customer) and its ``feedback.submitted`` event."""
    fingerprint = cmd.fingerprint()
    if cmd.channel and cmd.external_id:
        existing = await repo.feedback_by_key(uow.session, cmd.channel, cmd.external_id)
        if existing is not None:
            return _replay_feedback(existing, fingerprint)
    issue = None
    if cmd.issue_id is not None:
        issue = await repo.get_issue(uow.session, cmd.issue_id)
        if issue is None:
            raise UnknownReference(f"no issue {cmd.issue_id}", field="issue_id")
    elif cmd.issue is not None:
        await lock_for_transaction(
            uow.session, f"issue-key:{cmd.issue.channel}:{cmd.issue.external_id}"
        )
        issue = await repo.issue_by_key(uow.session, cmd.issue.channel, cmd.issue.external_id)
    if issue is not None:
        customer = await repo.get_customer(uow.session, issue.customer_id)
    elif cmd.customer is not None:
        customer = await _customer(uow, cmd.customer, default_region)
    else:
        customer = None  # known once the issue arrives
    feedback_id = uuid.uuid4()
    now = datetime.now(UTC)
    # A channel's clock may run ahead; a future time would outrank every later rating.
    submitted_at = min(cmd.submitted_at, now) if cmd.submitted_at else now
    inserted = await repo.insert_feedback(
        uow.session,
        id=feedback_id,
        issue_id=issue.id if issue is not None else None,
        issue_channel=cmd.issue.channel if cmd.issue else None,
        issue_external_id=cmd.issue.external_id if cmd.issue else None,
        customer_id=customer.id if customer is not None else None,
        rating=cmd.rating.model_dump(mode="json") if cmd.rating else None,
        comment=cmd.comment,
        channel=cmd.channel,
        external_id=cmd.external_id,
        submitted_at=submitted_at,
        received_at=now,
        fingerprint=fingerprint,
    )
    if not inserted:
        assert cmd.channel and cmd.external_id
        winner = await repo.feedback_by_key(uow.session, cmd.channel, cmd.external_id)
        assert winner is not None
        return _replay_feedback(winner, fingerprint)
    if issue is None and cmd.issue is not None:
        return Accepted(id=feedback_id, duplicate=False, pending_issue=True)
    uow.emit(
        FeedbackSubmitted(
            feedback_id=feedback_id,
            issue_id=issue.id if issue is not None else None,
            customer=_customer_ref(customer) if customer is not None else None,
            rating=cmd.rating,
            comment=cmd.comment,
            submitted_at=submitted_at,
        )
    )
    return Accepted(id=feedback_id, duplicate=False)


async def resolve_issue(issue_id: uuid.UUID, cmd: ResolveIssue, uow: UnitOfWork) -> Accepted:
    """Record how an issue was served; repeating the same resolution is a no-op."""
    issue = await repo.get_issue(uow.session, issue_id, for_update=True)
    if issue is None:
        raise NotFound(f"no issue {issue_id}", field="issue_id")
    resolution = Resolution(resolved_by=cmd.resolved_by, summary=cmd.summary, code=cmd.code)
    if issue.resolution is not None:
        if issue.resolution != resolution.model_dump(mode="json"):
            raise Conflict(f"issue {issue_id} was already resolved differently", field="resolution")
        return Accepted(id=issue_id, duplicate=True)
    resolved_at = cmd.resolved_at or datetime.now(UTC)
    await repo.set_resolution(
        uow.session, issue_id, resolved_at, resolution.model_dump(mode="json")
    )
    customer = await repo.get_customer(uow.session, issue.customer_id)
    uow.emit(
        IssueResolved(
            issue_id=issue_id,
            customer=_customer_ref(customer),
            resolved_at=resolved_at,
            resolution=resolution,
        )
    )
    return Accepted(id=issue_id, duplicate=False)


async def get_issue(issue_id: uuid.UUID, uow: UnitOfWork) -> dict[str, Any]:
    issue = await repo.get_issue(uow.session, issue_id)
    if issue is None:
        raise NotFound(f"no issue {issue_id}", field="issue_id")
    customer = await repo.get_customer(uow.session, issue.customer_id)
    return _issue_view(issue._mapping, _customer_ref(customer))


async def find_issues(
    search: IssueSearch, uow: UnitOfWork, *, limit: int, key: tuple[Any, ...] | None
) -> list[dict[str, Any]]:
    """Up to ``limit + 1`` issues, newest first (the extra one says more follow)."""
    if (
        search.received_since is not None
        and search.received_until is not None
        and search.received_until <= search.received_since
    ):
        raise InvalidInput("must be after received_since", field="received_until")
    rows = await repo.issue_page(uow.session, search, limit=limit, key=key)
    return [
        _issue_view(
            row._mapping,
            CustomerRef(
                customer_id=row.customer_id,
                name=row.customer_name,
                email=row.customer_email,
                phone=row.customer_phone,
                external_id=row.customer_external_id,
            ),
        )
        for row in rows
    ]


def _issue_view(issue: Mapping[Any, Any], customer: CustomerRef) -> dict[str, Any]:
    return {
        "issue_id": issue["id"],
        "channel": issue["channel"],
        "external_id": issue["external_id"],
        "customer": customer.model_dump(mode="json"),
        "subject": issue["subject"],
        "text": issue["text"],
        "language": issue["language"],
        "metadata": issue["metadata"],
        "occurred_at": issue["occurred_at"],
        "received_at": issue["received_at"],
        "status": "resolved" if issue["resolution"] else "received",
        "resolved_at": issue["resolved_at"],
        "resolution": issue["resolution"],
    }


async def erase_customer(customer_id: uuid.UUID, uow: UnitOfWork) -> datetime:
    """Forget the customer here, drop every event about them not yet sent or still kept, and
    tell every service (``kefu.customer.erased``) to do the same."""
    if not await repo.erase_customer(uow.session, customer_id):
        raise NotFound(f"no customer {customer_id}", field="customer_id")
    await delete_outbox_rows_about(uow, [customer_id])
    erased_at = datetime.now(UTC)
    uow.emit(CustomerErased(customer_id=customer_id, erased_at=erased_at))
    return erased_at


async def customer_records(
    customer_id: uuid.UUID, uow: UnitOfWork
) -> dict[str, list[dict[str, Any]]]:
    records = await repo.customer_records(uow.session, customer_id)
    if records is None:
        raise NotFound(f"no customer {customer_id}", field="customer_id")
    return records
