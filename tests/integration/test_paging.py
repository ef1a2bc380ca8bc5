"""Cursor paging on the real database: walking every page gives each row once, in the list's
order (ties on the sort key included, and mixed sort directions), with no count per page; and
intake's issue search filters by channel, customer, status, period and words (zh and en)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import Row

from services.improvement.adapters import repository as improvement_repo
from services.improvement.adapters.tables import followups, proposals
from services.improvement.bootstrap import definition as improvement
from services.intake.adapters import repository as intake_repo
from services.intake.adapters.tables import customers, issues
from services.intake.bootstrap import definition as intake
from services.intake.domain.commands import IssueSearch
from shared.db import Database
from shared.paging import PageRequest, encode_cursor
from shared.settings import Settings
from tests.integration.conftest import open_database

pytestmark = pytest.mark.asyncio(loop_scope="session")
T0 = datetime(2026, 11, 1, tzinfo=UTC)


@pytest_asyncio.fixture(loop_scope="session")
async def intake_db(private_stack: Settings) -> AsyncIterator[Database]:
    db = await open_database(private_stack, intake)
    yield db
    await db.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def improvement_db(private_stack: Settings) -> AsyncIterator[Database]:
    db = await open_database(private_stack, improvement)
    yield db
    await db.dispose()


async def walk(
    fetch: Callable[[tuple[Any, ...] | None], Awaitable[Sequence[Any]]],
    limit: int,
    key: Callable[[Any], tuple[Any, ...]],
) -> list[Any]:
    """Every page in turn, as a client follows next_cursor."""
    seen: list[Any] = []
    cursor_key = None
    while True:
        rows = await fetch(cursor_key)
        seen.extend(rows[:limit])
        if len(rows) <= limit:
            return seen
        cursor_key = key(rows[limit - 1])


ISSUE_TEXTS = [
    ("chat", "我的快递还没到，需要更快的发货"),
    ("email", "I need a refund for order 1234"),
    ("email", "Refunds take too long"),
    ("web", "满意度为中"),
    ("chat", "退款什么时候到账？"),
]


async def test_issues_are_searched_and_paged(intake_db: Database) -> None:
    zhang, li = uuid.uuid4(), uuid.uuid4()
    async with intake_db.unit_of_work() as uow:
        await uow.session.execute(
            customers.insert(),
            [{"id": zhang, "name": "张三"}, {"id": li, "name": "李四"}],
        )
        rows = []
        for index in range(40):
            channel, text = ISSUE_TEXTS[index % len(ISSUE_TEXTS)]
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "channel": channel,
                    "external_id": f"paging-{index}",
                    "customer_id": zhang if index % 2 else li,
                    "text": text,
                    "metadata": {},
                    # Pairs share a time: the id breaks the tie.
                    "received_at": T0 + timedelta(minutes=index // 2),
                    "fingerprint": "0" * 64,
                    "resolved_at": T0 if index % 4 == 0 else None,
                    "resolution": {"resolved_by": "a", "summary": "s"} if index % 4 == 0 else None,
                }
            )
        await uow.session.execute(issues.insert(), rows)

    async def search(how: IssueSearch, limit: int) -> list[Row[Any]]:
        async def fetch(key: tuple[Any, ...] | None) -> Sequence[Row[Any]]:
            async with intake_db.unit_of_work() as uow:
                return await intake_repo.issue_page(uow.session, how, limit=limit, key=key)

        return await walk(fetch, limit, lambda row: (row.received_at, row.id))

    everything = await search(IssueSearch(), 7)
    expected = sorted(rows, key=lambda row: (row["received_at"], row["id"]), reverse=True)
    assert [row.id for row in everything] == [row["id"] for row in expected]
    assert {(row.customer_id, row.customer_name) for row in everything} == {
        (zhang, "张三"),
        (li, "李四"),
    }

    def ids(found: list[Row[Any]]) -> set[uuid.UUID]:
        return {row.id for row in found}

    def where(test: Callable[[dict[str, Any]], bool]) -> set[uuid.UUID]:
        return {row["id"] for row in rows if test(row)}

    assert ids(await search(IssueSearch(channel="chat"), 3)) == where(
        lambda r: r["channel"] == "chat"
    )
    assert ids(await search(IssueSearch(customer_id=zhang, status="resolved"), 3)) == where(
        lambda r: r["customer_id"] == zhang and r["resolution"] is not None
    )
    assert ids(await search(IssueSearch(status="received"), 50)) == where(
        lambda r: r["resolution"] is None
    )
    since, until = T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)
    assert ids(await search(IssueSearch(received_since=since, received_until=until), 4)) == where(
        lambda r: since <= r["received_at"] < until
    )
    # Chinese by substring, English by substring and by stem, case aside; % is no wildcard.
    assert ids(await search(IssueSearch(text="退款"), 3)) == where(lambda r: "退款" in r["text"])
    assert ids(await search(IssueSearch(text="发货"), 3)) == where(lambda r: "发货" in r["text"])
    assert ids(await search(IssueSearch(text="refund"), 3)) == where(lambda r: "efund" in r["text"])
    assert ids(await search(IssueSearch(text="REFUNDED"), 3)) == where(
        lambda r: "efund" in r["text"]
    )
    assert await search(IssueSearch(text="100%"), 3) == []


async def test_followups_and_proposals_page_in_their_order(improvement_db: Database) -> None:
    now = datetime.now(UTC)
    followup_rows = [
        {
            "id": uuid.uuid4(),
            "issue_id": uuid.uuid4(),
            "verdict": "neutral",
            "reason": "r",
            "summary": "s",
            "status": "open",
            "created_at": now - timedelta(seconds=index // 3),  # triples share a time
            "updated_at": now,
        }
        for index in range(20)
    ]
    proposal_rows = [
        {
            "id": uuid.uuid4(),
            "theme_kind": "need",
            "theme_key": f"theme {index}",
            "status": "done",
            "evidence": json.loads('{"issues": 1, "dissatisfied": 1}'),
            "recommendation": "r",
            "priority": float(index % 4),  # many ties, broken by opened_at then id
            "opened_at": now - timedelta(minutes=index % 3),
            "updated_at": now,
        }
        for index in range(23)
    ]
    async with improvement_db.unit_of_work() as uow:
        await uow.session.execute(followups.insert(), followup_rows)
        await uow.session.execute(proposals.insert(), proposal_rows)

    async def fetch_followups(key: tuple[Any, ...] | None) -> Sequence[Any]:
        async with improvement_db.unit_of_work() as uow:
            total, found = await improvement_repo.followup_page(
                uow.session, status=None, issue_id=None, intent=None, page=PageRequest(4, key)
            )
        assert total is None  # no count unless asked
        return found

    walked = await walk(fetch_followups, 4, lambda row: (row.created_at, row.id))
    expected = sorted(followup_rows, key=lambda r: (r["created_at"], r["id"]), reverse=True)
    assert [row.id for row in walked] == [row["id"] for row in expected]

    async def fetch_proposals(key: tuple[Any, ...] | None) -> Sequence[Any]:
        async with improvement_db.unit_of_work() as uow:
            _, found = await improvement_repo.proposal_page(
                uow.session, status="done", theme_kind=None, page=PageRequest(5, key)
            )
        return found

    walked = await walk(fetch_proposals, 5, lambda row: (row.priority, row.opened_at, row.id))
    expected = sorted(proposal_rows, key=lambda r: (-r["priority"], r["opened_at"], r["id"]))
    assert [row.id for row in walked] == [row["id"] for row in expected]

    async with improvement_db.unit_of_work() as uow:
        total, _ = await improvement_repo.proposal_page(
            uow.session, status="done", theme_kind=None, page=PageRequest(5, with_total=True)
        )
    assert total == 23
    assert encode_cursor([1.0, now, uuid.uuid4()])  # the proposal key encodes
