"""The four services, each with its own broker user as `kefu setup` makes them: the loop still
closes (李四's neutral verdict is followed up), with nobody allowed more than its part."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from deploy import broker, broker_users
from deploy.launcher import ServiceProcesses
from shared.settings import SERVICES
from tests.support import BOOTSTRAP_KEY, free_port, isolated_stack, scrape, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}


@pytest.fixture(scope="module")
def least_privilege() -> Iterator[ServiceProcesses]:
    prefix = f"kefu_t{uuid.uuid4().hex[:8]}_"
    with isolated_stack(amqp_user_prefix=prefix) as settings, pytest.MonkeyPatch.context() as env:
        broker.declare_sync(settings)
        names = [*SERVICES, "cli", "subscriber"]
        passwords = {name: uuid.uuid4().hex for name in names}
        broker_users.create_users(
            settings.management_url(), settings.amqp_vhost(), prefix, passwords
        )
        amqp = urlsplit(settings.amqp_url)
        for service in SERVICES:
            env.setenv(
                f"KEFU_AMQP_URL_{service.upper()}",
                f"amqp://{prefix}{service}:{passwords[service]}@{amqp.hostname}:{amqp.port}"
                f"{amqp.path}",
            )
        group = ServiceProcesses(
            settings,
            env={
                "KEFU_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY,
                "KEFU_AMQP_USER_PREFIX": prefix,
                "KEFU_OUTBOX_POLL_SECONDS": "0.5",
                "KEFU_DELIVERY_LIMIT": "3",
                "KEFU_LOG_JSON": "false",
                "KEFU_METRICS_REFRESH_SECONDS": "0.5",
            },
            ports={service: free_port() for service in SERVICES},
        )
        try:
            group.start_all()
            group.wait_ready(timeout=60)
            yield group
        finally:
            group.stop_all()
            broker_users.delete_users(settings.management_url(), prefix)


async def test_the_loop_closes_with_a_broker_user_per_service(
    least_privilege: ServiceProcesses,
) -> None:
    body = {
        "channel": "chat",
        "external_id": f"lp-{uuid.uuid4()}",
        "customer": {"name": "李四", "phone": "13900139000"},
        "text": "满意度为中",
    }
    async with httpx.AsyncClient(base_url=least_privilege.url("intake"), headers=AUTH) as client:
        issue_id = (await client.post("/v1/issues", json=body)).json()["issue_id"]
    async with httpx.AsyncClient(
        base_url=least_privilege.url("improvement"), headers=AUTH
    ) as client:

        async def followup() -> dict[str, Any] | None:
            page = (await client.get("/v1/followups", params={"issue_id": issue_id})).json()
            return page["items"][0] if page["items"] else None

        item = await wait_until(followup, timeout=40, what="the follow-up")
    assert item["summary"] == "改进企业产品和服务，满足李四的需求"
    assert item["intent"] is not None  # the analysis reached improvement too
    # A user that may configure nothing still reads its DLQ's depth (a passive declare).
    url = least_privilege.url("improvement")

    async def dlq_measured() -> bool:
        return await scrape(url, "kefu_dlq_messages", service="improvement") is not None

    await wait_until(dlq_measured, what="the DLQ gauge")
