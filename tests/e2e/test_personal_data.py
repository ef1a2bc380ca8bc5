"""Personal data: a reporting key sees contacts masked; erasure leaves no trace of the customer
in any schema; export gathers what every service holds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aio_pika
import asyncpg
import httpx
import pytest
import pytest_asyncio

from deploy import keys
from deploy.launcher import ServiceProcesses
from shared.contracts import CustomerRef, SatisfactionEvaluated, new_event
from shared.db import asyncpg_dsn
from shared.messaging.topology import CONSUMES, dead_letter_queue_name
from shared.settings import SERVICES, Settings
from tests.support import BOOTSTRAP_KEY, publish, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}


def li_si(unique: str) -> dict[str, Any]:
    return {
        "channel": "email",
        "external_id": f"pd-{unique}",
        "customer": {
            "name": f"李四{unique[:6]}",
            "email": f"lisi.{unique}@example.com",
            "phone": f"+86138{int(unique[:8], 16) % 10**8:08d}",
        },
        "subject": f"订单 {unique}",
        "text": f"满意度为中，希望客服回复更快，订单号 {unique}",
        "metadata": {"order": unique},
    }


async def key_with(stack: Settings, *scopes: str) -> dict[str, str]:
    key = await asyncio.to_thread(
        keys.create, stack.admin_database_url, "-".join(scopes), list(scopes), SERVICES
    )
    return {"Authorization": f"Bearer {key}"}


@pytest_asyncio.fixture(loop_scope="session")
async def followed_up(services: ServiceProcesses) -> AsyncIterator[dict[str, Any]]:
    """李四's issue, evaluated neutral and followed up."""
    body = li_si(uuid.uuid4().hex)
    async with httpx.AsyncClient(base_url=services.url("intake"), headers=AUTH) as intake:
        issue_id = (await intake.post("/v1/issues", json=body)).json()["issue_id"]
    async with httpx.AsyncClient(base_url=services.url("improvement"), headers=AUTH) as client:

        async def followup() -> dict[str, Any] | None:
            page = (await client.get("/v1/followups", params={"issue_id": issue_id})).json()
            return page["items"][0] if page["items"] else None

        item = await wait_until(followup, timeout=30, what="the follow-up")
    yield {"body": body, "issue_id": issue_id, "followup": item}


async def test_a_reporting_key_sees_contacts_masked(
    services: ServiceProcesses, stack: Settings, followed_up: dict[str, Any]
) -> None:
    body, issue_id = followed_up["body"], followed_up["issue_id"]
    email, phone = body["customer"]["email"], body["customer"]["phone"]
    reporting = await key_with(stack, "improvements:read", "issues:read")
    async with httpx.AsyncClient(base_url=services.url("improvement")) as client:
        page = await client.get(
            "/v1/followups", params={"issue_id": issue_id, "limit": 200}, headers=reporting
        )
        customer = page.json()["items"][0]["customer"]
        assert customer["email"] == f"l***@{email.split('@')[1]}"
        assert customer["phone"] == f"{phone[:-8]}****{phone[-4:]}"
        assert customer["name"] == "李***"
        assert email not in page.text and phone not in page.text
        full = await client.get("/v1/followups", params={"issue_id": issue_id}, headers=AUTH)
        assert full.json()["items"][0]["customer"]["email"] == email
    async with httpx.AsyncClient(base_url=services.url("intake")) as client:
        issue = await client.get(f"/v1/issues/{issue_id}", headers=reporting)
        assert issue.status_code == 200 and email not in issue.text and phone not in issue.text


async def traces(stack: Settings, needles: list[str]) -> dict[str, int]:
    """Rows of every table of every schema whose text holds any of ``needles``."""
    conn = await asyncpg.connect(asyncpg_dsn(stack.admin_database_url))
    try:
        tables = await conn.fetch(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = ANY($1::text[])",
            list(SERVICES),
        )
        found = {}
        for table in tables:
            name = f'"{table["schemaname"]}"."{table["tablename"]}"'
            count = await conn.fetchval(
                f"SELECT count(*) FROM {name} AS t "
                "WHERE t::text ILIKE ANY(SELECT '%' || n || '%' FROM unnest($1::text[]) AS n)",
                needles,
            )
            if count:
                found[name] = count
        return found
    finally:
        await conn.close()


async def test_export_gathers_what_every_service_holds(
    services: ServiceProcesses, stack: Settings, followed_up: dict[str, Any]
) -> None:
    customer_id = followed_up["followup"]["customer"]["customer_id"]
    email = followed_up["body"]["customer"]["email"]
    async with httpx.AsyncClient(base_url=services.url("intake")) as client:
        answer = await client.get(f"/v1/customers/{customer_id}/export", headers=AUTH)
        assert answer.status_code == 200, answer.text
        export = answer.json()["services"]
        assert set(export) == {"intake", "need_analyzer", "feedback", "improvement", "webhooks"}
        assert export["intake"]["customers"][0]["email"] == email
        assert export["intake"]["issues"][0]["id"] == followed_up["issue_id"]
        assert export["need_analyzer"]["analyses"][0]["customer"]["email"] == email
        assert export["feedback"]["verdicts"][0]["verdict"] == "neutral"
        assert export["improvement"]["followups"][0]["customer"]["email"] == email
        reporting = await key_with(stack, "improvements:read", "issues:read")
        refused = await client.get(f"/v1/customers/{customer_id}/export", headers=reporting)
        assert refused.status_code == 403
        unknown = await client.get(f"/v1/customers/{uuid.uuid4()}/export", headers=AUTH)
        assert unknown.status_code == 404


async def test_erasure_leaves_no_trace_in_any_schema(
    services: ServiceProcesses, stack: Settings
) -> None:
    unique = uuid.uuid4().hex
    body = li_si(unique)
    # Feedback on an issue that has not arrived: it waits in intake, with the customer's words.
    pending = {
        "issue": {"channel": "email", "external_id": f"never-{unique}"},
        "customer": body["customer"],
        "comment": f"还在等 {unique}",
    }
    async with httpx.AsyncClient(base_url=services.url("intake"), headers=AUTH) as intake:
        issue_id = (await intake.post("/v1/issues", json=body)).json()["issue_id"]
        assert (await intake.post("/v1/feedback", json=pending)).status_code == 202
    async with httpx.AsyncClient(base_url=services.url("improvement"), headers=AUTH) as client:

        async def followup() -> dict[str, Any] | None:
            page = (await client.get("/v1/followups", params={"issue_id": issue_id})).json()
            return page["items"][0] if page["items"] else None

        customer_id = (await wait_until(followup, timeout=30))["customer"]["customer_id"]
    needles = [body["customer"]["email"], body["customer"]["phone"], unique]
    assert len(await traces(stack, needles)) >= 8  # it is everywhere: the probe can see it
    eraser = await key_with(stack, "customers:erase")
    async with httpx.AsyncClient(base_url=services.url("intake")) as intake:
        first = await intake.delete(f"/v1/customers/{customer_id}", headers=eraser)
        assert first.status_code == 200, first.text
        again = await intake.delete(f"/v1/customers/{customer_id}", headers=eraser)
        assert again.status_code == 200 and again.json()["status"] == "erased"
        unknown = await intake.delete(f"/v1/customers/{uuid.uuid4()}", headers=eraser)
        assert unknown.status_code == 404

    async def erased_everywhere() -> bool:
        return not await traces(stack, needles)

    try:
        await wait_until(erased_everywhere, timeout=30, what="no trace of the customer")
    except AssertionError:
        raise AssertionError(f"still found: {await traces(stack, needles)}") from None
    async with httpx.AsyncClient(base_url=services.url("improvement"), headers=AUTH) as client:
        item = (await client.get("/v1/followups", params={"issue_id": issue_id})).json()["items"][0]
        assert item["customer"] == {
            "customer_id": customer_id,
            "name": None,
            "email": None,
            "phone": None,
            "external_id": None,
        }
        assert item["verdict"] == "neutral"  # the statistics keep it


async def dead_letters_holding(stack: Settings, needles: list[str]) -> dict[str, int]:
    """Messages of every DLQ whose body holds any of ``needles`` (each is left where it is)."""
    connection = await aio_pika.connect(stack.amqp_url)
    found = {}
    try:
        for service, event_types in CONSUMES.items():
            if not event_types:
                continue
            channel = await connection.channel()
            queue = await channel.declare_queue(dead_letter_queue_name(service), passive=True)
            count = 0
            while (message := await queue.get(fail=False, timeout=5)) is not None:
                body = message.body.decode(errors="replace")
                count += any(needle in body for needle in needles)
            await channel.close()  # nothing acked: every message stays
            if count:
                found[queue.name] = count
    finally:
        await connection.close()
    return found


async def test_erasure_reaches_the_dead_letter_queues(
    services: ServiceProcesses, stack: Settings
) -> None:
    unique = uuid.uuid4().hex
    body = li_si(unique)
    async with httpx.AsyncClient(base_url=services.url("intake"), headers=AUTH) as intake:
        issue_id = (await intake.post("/v1/issues", json=body)).json()["issue_id"]
    async with httpx.AsyncClient(base_url=services.url("improvement"), headers=AUTH) as client:

        async def followup() -> dict[str, Any] | None:
            page = (await client.get("/v1/followups", params={"issue_id": issue_id})).json()
            return page["items"][0] if page["items"] else None

        customer_id = (await wait_until(followup, timeout=30))["customer"]["customer_id"]
    # An event about the customer that improvement dead-letters (its source is not feedback's):
    # a copy of their data in a DLQ, as any failed event leaves.
    refused = SatisfactionEvaluated(
        issue_id=uuid.UUID(issue_id),
        customer=CustomerRef(
            customer_id=uuid.UUID(customer_id),
            name=body["customer"]["name"],
            email=body["customer"]["email"],
        ),
        score=0.0,
        verdict="dissatisfied",
        source="implicit",
        basis=f"text '{unique}'",
        evaluated_at=datetime.now(UTC),
    )
    amqp = await aio_pika.connect_robust(stack.amqp_url)
    try:
        await publish(amqp, stack, new_event("/kefu/somewhere-else", refused))
    finally:
        await amqp.close()
    needles = [body["customer"]["email"], unique]

    async def dead_lettered() -> dict[str, int]:
        return await dead_letters_holding(stack, needles)

    assert await wait_until(dead_lettered, what="the refused event in the DLQ") == {
        "kefu.improvement.dlq": 1
    }
    eraser = await key_with(stack, "customers:erase")
    async with httpx.AsyncClient(base_url=services.url("intake")) as intake:
        erased = await intake.delete(f"/v1/customers/{customer_id}", headers=eraser)
        assert erased.status_code == 200, erased.text
    # Reading a DLQ holds its messages, hiding them from the scrub: look only once improvement
    # has handled the erasure (its follow-up anonymised) and the scrub that follows has run.
    async with httpx.AsyncClient(base_url=services.url("improvement"), headers=AUTH) as client:

        async def anonymised() -> bool:
            page = (await client.get("/v1/followups", params={"issue_id": issue_id})).json()
            return page["items"][0]["customer"]["email"] is None

        await wait_until(anonymised, timeout=30, what="the follow-up anonymised")
    await asyncio.sleep(2)

    async def gone_from_every_dlq() -> bool:
        return not await dead_letters_holding(stack, needles)

    await wait_until(gone_from_every_dlq, timeout=30, what="no copy left in any DLQ")
