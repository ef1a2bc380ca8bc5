"""The seed's example through the four running services, observed as a downstream subscriber."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from deploy.launcher import ServiceProcesses
from services.intake.adapters.tables import issues, outbox
from shared.settings import Settings
from tests.support import BOOTSTRAP_KEY, EventTap, event_tap, scrape, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}

ZHANG_SAN = {
    "channel": "email",
    "external_id": "seed-zhangsan",
    "customer": {"name": "张三", "phone": "13800138000", "email": "zhangsan@example.com"},
    "text": "需要更快的响应速度",
}
LI_SI = {
    "channel": "chat",
    "external_id": "seed-lisi",
    "customer": {"name": "李四", "phone": "13900139000", "email": "lisi@example.com"},
    "text": "满意度为中",
}


@pytest_asyncio.fixture(loop_scope="session")
async def tap(services: ServiceProcesses, stack: Settings) -> AsyncIterator[EventTap]:
    async with event_tap(stack) as tap:
        yield tap


@pytest_asyncio.fixture(loop_scope="session")
async def intake(services: ServiceProcesses) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=services.url("intake"), headers=AUTH) as client:
        yield client


async def test_seed_example_runs_the_whole_loop(
    tap: EventTap, intake: httpx.AsyncClient, stack: Settings
) -> None:
    responses = [await intake.post("/v1/issues", json=ZHANG_SAN) for _ in range(3)]
    assert [r.status_code for r in responses] == [202, 200, 200]
    zhang_id = responses[0].json()["issue_id"]
    assert {r.json()["issue_id"] for r in responses} == {zhang_id}
    assert [r.json()["duplicate"] for r in responses] == [False, True, True]

    li = await intake.post("/v1/issues", json=LI_SI)
    assert li.status_code == 202
    li_id = li.json()["issue_id"]

    analyzed = await tap.wait_for("kefu.issue.analyzed", lambda d: d["issue_id"] == zhang_id)
    assert analyzed["data"]["customer"]["name"] == "张三"
    assert analyzed["data"]["analysis"]["need"] == "更快的响应速度"
    assert analyzed["data"]["analysis"]["intent"] == "response_speed"
    assert analyzed["data"]["analysis"]["language"] == "zh"
    assert analyzed["subject"] == zhang_id

    evaluated = await tap.wait_for("kefu.satisfaction.evaluated", lambda d: d["issue_id"] == li_id)
    assert evaluated["data"]["verdict"] != "satisfied"
    assert evaluated["data"]["verdict"] == "neutral"
    assert evaluated["data"]["customer"]["name"] == "李四"

    followup = await tap.wait_for(
        "kefu.improvement.followup_required", lambda d: d["issue_id"] == li_id
    )
    assert followup["data"]["customer"]["name"] == "李四"
    assert "李四" in followup["data"]["summary"]

    # Three POSTs, one issue, one issue.received (the analysis came after it, so it was relayed).
    assert len(tap.matching("kefu.issue.received", lambda d: d["issue_id"] == zhang_id)) == 1
    engine = create_async_engine(stack.service_database_url("intake"))
    async with engine.connect() as conn:
        assert (
            await conn.scalar(
                select(func.count())
                .select_from(issues)
                .where(issues.c.external_id == "seed-zhangsan")
            )
            == 1
        )
        assert (
            await conn.scalar(
                select(func.count())
                .select_from(outbox)
                .where(outbox.c.payload["subject"].astext == zhang_id)
            )
            == 1
        )
    await engine.dispose()
    # 张三 stated no satisfaction, so nothing was evaluated or followed up for him.
    assert not tap.matching("kefu.satisfaction.evaluated", lambda d: d["issue_id"] == zhang_id)


async def test_rating_feedback_and_resolution(tap: EventTap, intake: httpx.AsyncClient) -> None:
    created = await intake.post(
        "/v1/issues", json={**ZHANG_SAN, "external_id": "fb-1", "text": "My parcel never arrived"}
    )
    issue_id = created.json()["issue_id"]
    resolved = await intake.post(
        f"/v1/issues/{issue_id}/resolution",
        json={"resolved_by": "agent-7", "summary": "re-shipped"},
    )
    assert resolved.status_code == 202
    again = await intake.post(
        f"/v1/issues/{issue_id}/resolution",
        json={"resolved_by": "agent-7", "summary": "re-shipped"},
    )
    assert again.status_code == 200 and again.json()["duplicate"] is True
    other = await intake.post(
        f"/v1/issues/{issue_id}/resolution", json={"resolved_by": "agent-8", "summary": "refunded"}
    )
    assert other.status_code == 409

    feedback = await intake.post(
        "/v1/feedback",
        json={
            "issue_id": issue_id,
            "rating": {"scale": "csat5", "value": 2},
            "comment": "too slow",
        },
    )
    assert feedback.status_code == 202
    feedback_id = feedback.json()["feedback_id"]

    submitted = await tap.wait_for(
        "kefu.feedback.submitted", lambda d: d["feedback_id"] == feedback_id
    )
    assert submitted["data"]["customer"]["name"] == "张三"
    assert await tap.wait_for("kefu.issue.resolved", lambda d: d["issue_id"] == issue_id)
    evaluated = await tap.wait_for(
        "kefu.satisfaction.evaluated", lambda d: d["issue_id"] == issue_id
    )
    assert evaluated["data"]["verdict"] == "dissatisfied"
    assert evaluated["data"]["source"] == "explicit"
    await tap.wait_for("kefu.improvement.followup_required", lambda d: d["issue_id"] == issue_id)

    shown = await intake.get(f"/v1/issues/{issue_id}")
    assert shown.status_code == 200
    assert shown.json()["status"] == "resolved"
    assert shown.json()["customer"]["phone"] == "+8613800138000"


async def test_every_service_reports_health_readiness_and_metrics(
    services: ServiceProcesses,
) -> None:
    async with httpx.AsyncClient() as client:
        for service in services.services:
            base = services.url(service)
            assert (await client.get(f"{base}/healthz")).json() == {"status": "ok"}
            assert (await client.get(f"{base}/readyz")).json() == {
                "database": "ok",
                "broker": "ok",
            }
            metrics = (await client.get(f"{base}/metrics")).text
            assert "kefu_outbox_published_total" in metrics
            assert await scrape(base, "kefu_broker_connected", service=service) == 1
            assert await scrape(base, "kefu_outbox_pending", service=service) is not None
            if service != "intake":  # every consumer reports its DLQ's depth
                assert await scrape(base, "kefu_dlq_messages", service=service) is not None


async def test_consumer_and_outbox_metrics_move_with_an_issue(
    services: ServiceProcesses, intake: httpx.AsyncClient
) -> None:
    analyzer = services.url("need_analyzer")
    received = {"service": "need_analyzer", "type": "kefu.issue.received"}

    async def handled() -> tuple[float, float, float]:
        processed = await scrape(
            analyzer, "kefu_events_consumed_total", outcome="processed", **received
        )
        calls = await scrape(analyzer, "kefu_handler_seconds_count", **received)
        lags = await scrape(analyzer, "kefu_event_lag_seconds_count", **received)
        return processed or 0.0, calls or 0.0, lags or 0.0

    before = await handled()
    probe = uuid.uuid4().hex
    posted = await intake.post(
        "/v1/issues",
        json={
            "channel": "web",
            "external_id": f"metrics-{probe}",
            "customer": {"email": f"metrics-{probe}@example.com"},
            "text": "The metrics probe: where is my parcel?",
        },
    )
    assert posted.status_code == 202

    async def moved() -> tuple[float, float, float] | None:
        now = await handled()
        return now if all(a > b for a, b in zip(now, before, strict=True)) else None

    await wait_until(moved, what="need_analyzer's consumer metrics moving")
    # The relay published it: intake's backlog is back to none.
    url = services.url("intake")
    assert await wait_until(
        lambda: _equals(scrape(url, "kefu_outbox_pending", service="intake"), 0),
        what="intake's outbox backlog at 0",
    )


async def _equals(sample: Awaitable[float | None], expected: float) -> bool:
    return await sample == expected
