"""need_analyzer's read API on the running service."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from deploy.launcher import ServiceProcesses
from services.need_analyzer.domain.analyzer import ANALYZER_VERSION
from shared.settings import Settings
from tests.support import BOOTSTRAP_KEY, event_tap

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}


async def test_analysis_and_top_needs(services: ServiceProcesses, stack: Settings) -> None:
    texts = [
        "需要更快的响应速度",
        "您好，需要更快的响应速度！",
        "I need a refund for order 77",
        "等了两个小时没人理",
    ]
    async with (
        event_tap(stack, binding="issue.analyzed") as tap,
        httpx.AsyncClient(headers=AUTH) as client,
    ):
        ids = []
        for text in texts:
            posted = await client.post(
                f"{services.url('intake')}/v1/issues",
                json={
                    "channel": "chat",
                    "external_id": f"api-{uuid.uuid4()}",
                    "customer": {"email": "needs@example.com"},
                    "text": text,
                },
            )
            ids.append(posted.json()["issue_id"])
        for issue_id in ids:
            await tap.wait_for("kefu.issue.analyzed", lambda d, i=issue_id: d["issue_id"] == i)

        base = services.url("need_analyzer")
        shown = await client.get(f"{base}/v1/analyses/{ids[2]}")
        assert shown.status_code == 200
        body = shown.json()
        assert body["analysis"]["need"] == "a refund for order 77"
        assert body["analysis"]["intent"] == "refund"
        assert body["analysis"]["language"] == "en"
        assert body["analysis"]["explanations"]["intent"]["evidence"]
        assert body["analysis"]["need_source"] == "stated"
        assert body["analysis"]["partial"] is False
        assert body["analyzer_version"] == ANALYZER_VERSION

        top = (await client.get(f"{base}/v1/needs/top", params={"limit": 5})).json()
        needs = {item["need_key"]: item for item in top["needs"]}
        # Two stated needs and an implied one of the same meaning count as one.
        assert needs["speed_up:response"]["count"] >= 3
        assert needs["speed_up:response"]["need"] == "更快的响应速度"
        assert "response_speed" in needs["speed_up:response"]["intents"]
        assert top["issues"] >= 4
        assert {item["intent"] for item in top["intents"]} >= {"response_speed", "refund"}

        future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        empty = await client.get(
            f"{base}/v1/needs/top",
            params={"since": future, "until": future[:10] + "T23:59:59+00:00"},
        )
        assert empty.status_code == 200 and empty.json()["needs"] == []

        assert (await client.get(f"{base}/v1/analyses/{uuid.uuid4()}")).status_code == 404
        bad = await client.get(
            f"{base}/v1/needs/top",
            params={"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        )
        assert bad.status_code == 422 and bad.json()["field"] == "since"
        naive = await client.get(f"{base}/v1/needs/top", params={"since": "2026-01-01T00:00:00"})
        assert naive.status_code == 422 and naive.json()["field"] == "since"
        assert (await client.get(f"{base}/v1/needs/top", params={"limit": 0})).status_code == 422
    async with httpx.AsyncClient() as anonymous:
        assert (await anonymous.get(f"{base}/v1/analyses/{ids[0]}")).status_code == 401
