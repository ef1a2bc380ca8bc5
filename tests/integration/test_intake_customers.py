"""Customer matching in intake's statement: a batch matches as its items would one by one.

intake.accept_issues() (migration 0003) matches a batch's customers set-wise when its items
cannot affect each other and goes item by item, in order, otherwise. Either way the outcome
must be what the items give one request at a time: external id, then e-mail, then phone; what
the match lacks is filled in; a contact another customer holds is left alone; concurrent
creators end with one customer.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Any

import pytest
from sqlalchemy import select

from services.intake import handlers
from services.intake.adapters.accept import IssueStore, open_issue_store
from services.intake.adapters.tables import customers, issues
from services.intake.bootstrap import definition as intake
from services.intake.domain.commands import SubmitIssue
from shared.settings import Settings
from tests.integration.conftest import open_database

pytestmark = pytest.mark.asyncio(loop_scope="session")
SOURCE = "/kefu/intake"
Contacts = tuple[str | None, str | None, str | None, str | None]  # name, email, phone, ext id


def issue(customer: dict[str, Any]) -> SubmitIssue:
    return SubmitIssue.model_validate(
        {
            "channel": "web",
            "external_id": f"cust-{uuid.uuid4()}",
            "customer": customer,
            "text": "需要发票",
        }
    )


async def accept(store: IssueStore, *cmds: SubmitIssue) -> list[uuid.UUID]:
    answers = await handlers.submit_issues(cmds, store, default_region="CN", source=SOURCE)
    ids = []
    for answer in answers:
        assert isinstance(answer, handlers.Accepted), answer
        ids.append(answer.id)
    return ids


async def customers_of(settings: Settings, issue_ids: list[uuid.UUID]) -> list[tuple[Any, ...]]:
    """Each issue's customer, as (id, name, email, phone, external_id), in order."""
    db = await open_database(settings, intake)
    async with db.unit_of_work() as uow:
        rows = (
            await uow.session.execute(
                select(issues.c.id, customers.c.id.label("customer_id"), customers.c.name)
                .add_columns(customers.c.email, customers.c.phone, customers.c.external_id)
                .join(customers, customers.c.id == issues.c.customer_id)
                .where(issues.c.id.in_(issue_ids))
            )
        ).all()
    await db.dispose()
    by_issue = {row.id: tuple(row)[1:] for row in rows}
    return [by_issue[issue_id] for issue_id in issue_ids]


async def test_each_item_alone_matches_creates_and_fills_in(private_stack: Settings) -> None:
    tag = uuid.uuid4().hex[:8]
    async with open_issue_store(private_stack, "kefu_outbox_intake") as store:
        [known, other] = await accept(
            store,
            issue({"name": "王五", "phone": "13700000001", "external_id": f"crm-{tag}"}),
            issue({"email": f"other-{tag}@example.com"}),
        )
        batch = await accept(
            store,
            # The same customer, nothing to add: matched as it is.
            issue({"name": "王五", "phone": "13700000001"}),
            # A new one.
            issue({"name": "赵六", "email": f"zhao-{tag}@example.com"}),
            # By external id before e-mail: the e-mail is someone else's, so it stays theirs.
            issue({"external_id": f"crm-{tag}", "email": f"Other-{tag}@example.com"}),
        )
        rows = await customers_of(private_stack, [known, other, *batch])
        filled = await accept(
            store, issue({"name": "王五五", "phone": "13700000001", "email": f"w5-{tag}@x.org"})
        )
    known_row, other_row, same, new, by_external_id = rows
    [completed] = await customers_of(private_stack, filled)
    assert same == known_row
    assert new[1:] == ("赵六", f"zhao-{tag}@example.com", None, None)
    assert by_external_id[0] == known_row[0] and by_external_id[2] is None
    assert other_row[2] == f"other-{tag}@example.com"
    assert completed[0] == known_row[0]
    assert completed[1:4] == ("王五五", f"w5-{tag}@x.org", "+8613700000001")


async def test_items_that_share_contacts_are_matched_in_their_order(
    private_stack: Settings,
) -> None:
    tag = uuid.uuid4().hex[:8]
    async with open_issue_store(private_stack, "kefu_outbox_intake") as store:
        first, second, third = await accept(
            store,
            issue({"phone": "13700000002"}),
            issue({"phone": "13700000002", "email": f"late-{tag}@example.com"}),
            issue({"name": "钱七", "email": f"late-{tag}@example.com"}),
        )
    a, b, c = await customers_of(private_stack, [first, second, third])
    assert a[0] == b[0] == c[0]
    assert c[1:4] == ("钱七", f"late-{tag}@example.com", "+8613700000002")


def _random_customer(
    rng: random.Random, tag: str, round_: int, ns: int, taken: set[str] | None = None
) -> dict[str, Any]:
    """Contacts drawn from a small pool, so that items share them and customers collide;
    none of ``taken`` (then added to it), so that a batch's items share none."""
    customer: dict[str, Any] = {}
    while not customer:
        draws = {
            "email": (0.4, f"{tag}-{round_}-{ns}-{rng.randrange(6)}@example.com"),
            "phone": (0.5, f"139{round_:03d}{ns}{rng.randrange(6):04d}"),
            "external_id": (0.3, f"{tag}-{round_}-{ns}-x{rng.randrange(6)}"),
        }
        for kind, (chance, value) in draws.items():
            if rng.random() < chance and (taken is None or value not in taken):
                customer[kind] = value
    if taken is not None:
        taken.update(customer.values())
    if rng.random() < 0.5:
        customer["name"] = rng.choice(["甲", "乙"])
    return customer


def _plain(row: tuple[Any, ...], tag: str, round_: int, ns: int) -> tuple[Any, ...]:
    """A customer row without what tells the two runs apart (id, namespace)."""
    name, email, phone, external_id = row[1:]
    return (
        name,
        email and email.replace(f"{tag}-{round_}-{ns}-", ""),
        phone and phone.replace(f"+86139{round_:03d}{ns}", ""),
        external_id and external_id.replace(f"{tag}-{round_}-{ns}-", ""),
    )


# Seeds 0-11: items that share contacts (matched in order); 12-23: items that share none
# (matched set-wise), against stored customers they match, complete or leave alone.
@pytest.mark.parametrize("seed", range(24))
async def test_a_batch_ends_as_its_items_one_by_one(private_stack: Settings, seed: int) -> None:
    rng = random.Random(seed)
    apart = seed >= 12
    tag = uuid.uuid4().hex[:6]
    # The same draws in two namespaces: ns 1 as batches, ns 2 one item per request.
    seeds = [rng.getstate()]
    async with open_issue_store(private_stack, "kefu_outbox_intake") as store:
        outcome: dict[int, list[tuple[Any, ...]]] = {}
        for ns in (1, 2):
            rng.setstate(seeds[0])
            stored = [_random_customer(rng, tag, seed, ns) for _ in range(rng.randrange(0, 5))]
            taken: set[str] | None = set() if apart else None
            batch = [
                _random_customer(rng, tag, seed, ns, taken) for _ in range(rng.randrange(1, 6))
            ]
            for customer in stored:
                await accept(store, issue(customer))
            if ns == 1:
                ids = await accept(store, *(issue(customer) for customer in batch))
            else:
                ids = [(await accept(store, issue(customer)))[0] for customer in batch]
            rows = await customers_of(private_stack, ids)
            # Which items share a customer, and what each customer ends with.
            first_seen: dict[Any, int] = {}
            outcome[ns] = [
                (first_seen.setdefault(row[0], i), *_plain(row, tag, seed, ns))
                for i, row in enumerate(rows)
            ]
    final: dict[int, list[tuple[Any, ...]]] = {}
    for ns in (1, 2):
        # Customers as they are at the end (a later item may have completed an earlier one).
        db = await open_database(private_stack, intake)
        async with db.unit_of_work() as uow:
            rows = (
                await uow.session.execute(
                    select(customers.c.id, customers.c.name, customers.c.email)
                    .add_columns(customers.c.phone, customers.c.external_id)
                    .where(
                        customers.c.email.like(f"{tag}-{seed}-{ns}-%")
                        | customers.c.phone.like(f"+86139{seed:03d}{ns}%")
                        | customers.c.external_id.like(f"{tag}-{seed}-{ns}-%")
                    )
                )
            ).all()
        await db.dispose()
        final[ns] = sorted((_plain(tuple(row), tag, seed, ns) for row in rows), key=repr)
    assert [row[0] for row in outcome[1]] == [row[0] for row in outcome[2]]
    assert final[1] == final[2]


async def test_concurrent_creators_of_one_customer_end_with_one(
    private_stack: Settings,
) -> None:
    tag = uuid.uuid4().hex[:8]
    shared = {"phone": "13700000003", "email": f"many-{tag}@example.com"}

    async def batch(n: int) -> list[uuid.UUID]:
        cmds = [issue(shared)] + [issue({"email": f"{tag}-{n}-{i}@example.com"}) for i in range(9)]
        return await accept(store, *cmds)

    async with open_issue_store(private_stack, "kefu_outbox_intake") as store:
        answers = await asyncio.gather(
            *(batch(n) for n in range(6)), *(accept(store, issue(shared)) for _ in range(6))
        )
    firsts = [ids[0] for ids in answers]
    rows = await customers_of(private_stack, firsts)
    assert len({row[0] for row in rows}) == 1
    assert rows[0][2:4] == (f"many-{tag}@example.com", "+8613700000003")
