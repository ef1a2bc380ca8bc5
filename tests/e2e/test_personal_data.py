"""Personal data: a reporting key sees contacts masked; erasure leaves no trace of the customer
in any schema; export gathers what every service holds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from deploy import keys
from deploy.launcher import ServiceProcesses
from shared.settings import SERVICES, Settings
from tests.support import BOOTSTRAP_KEY, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}


def li_si(unique: str) -> dict[str, Any]:
    return {
        "channel": "email",
        "external_id": f"pd-{unique}",
        "customer": {
            "name": "李四",
            "email": f"lisi.{unique}@example.com",
            "phone": f"+86138{int(unique[:8], 16) % 10**8:08d}",
        },
        "text": "满意度为中，希望客服回复更快",
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
        assert customer["name"] == "李*"
        assert email not in page.text and phone not in page.text
        full = await client.get("/v1/followups", params={"issue_id": issue_id}, headers=AUTH)
        assert full.json()["items"][0]["customer"]["email"] == email
    async with httpx.AsyncClient(base_url=services.url("intake")) as client:
        issue = await client.get(f"/v1/issues/{issue_id}", headers=reporting)
        assert issue.status_code == 200 and email not in issue.text and phone not in issue.text
