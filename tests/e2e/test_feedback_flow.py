"""Feedback through the running services: early feedback, the satisfaction summary."""

from __future__ import annotations

import uuid

import httpx
import pytest

from deploy.launcher import ServiceProcesses
from shared.settings import Settings
from tests.support import BOOTSTRAP_KEY, event_tap

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}


async def test_feedback_before_its_issue_waits_for_it(
    services: ServiceProcesses, stack: Settings
) -> None:
    intake = services.url("intake")
    external_id = f"late-{uuid.uuid4()}"
    async with event_tap(stack) as tap, httpx.AsyncClient(headers=AUTH) as client:
        body = {
            "issue": {"channel": "web", "external_id": external_id},
            "rating": {"scale": "faces3", "value": "not_good"},
            "channel": "web",
            "external_id": f"survey-{external_id}",
        }
        early = await client.post(f"{intake}/v1/feedback", json=body)
        assert early.status_code == 202, early.text
        assert early.json()["status"] == "pending_issue"
        again = await client.post(f"{intake}/v1/feedback", json=body)
        assert again.status_code == 200 and again.json()["status"] == "pending_issue"
        feedback_id = early.json()["feedback_id"]

        issue = await client.post(
            f"{intake}/v1/issues",
            json={
                "channel": "web",
                "external_id": external_id,
                "customer": {"name": "王五", "email": "wangwu.late@example.com"},
                "text": "页面一直报错",
            },
        )
        issue_id = issue.json()["issue_id"]
        submitted = await tap.wait_for(
            "kefu.feedback.submitted", lambda d: d["feedback_id"] == feedback_id
        )
        assert submitted["data"]["issue_id"] == issue_id
        assert submitted["data"]["customer"]["name"] == "王五"
        evaluated = await tap.wait_for(
            "kefu.satisfaction.evaluated", lambda d: d["issue_id"] == issue_id
        )
        assert evaluated["data"]["verdict"] == "dissatisfied"
        assert evaluated["data"]["basis"] == "rating faces3=not_good"
        await tap.wait_for(
            "kefu.improvement.followup_required", lambda d: d["issue_id"] == issue_id
        )

        bad = await client.post(
            f"{intake}/v1/feedback",
            json={**body, "external_id": "x", "rating": {"scale": "faces3", "value": "meh"}},
        )
        assert bad.status_code == 422 and bad.json()["field"].startswith("rating")
        both = await client.post(
            f"{intake}/v1/feedback",
            json={"issue_id": issue_id, "issue": body["issue"], "comment": "ok"},
        )
        assert both.status_code == 422


async def test_satisfaction_summary(services: ServiceProcesses) -> None:
    base = services.url("feedback")
    async with httpx.AsyncClient(base_url=base, headers=AUTH) as client:
        for group_by in ("none", "channel", "intent", "day"):
            response = await client.get("/v1/satisfaction/summary", params={"group_by": group_by})
            assert response.status_code == 200, response.text
            summary = response.json()
            assert summary["group_by"] == group_by
            total = summary["total"]
            assert total["rated"] >= 1
            assert sum(total["verdicts"].values()) == total["rated"]
            if group_by != "none":
                assert sum(group["rated"] for group in summary["groups"]) == total["rated"]
        zoned = await client.get(
            "/v1/satisfaction/summary", params={"group_by": "day", "tz": "Asia/Shanghai"}
        )
        assert zoned.status_code == 200 and zoned.json()["tz"] == "Asia/Shanghai"
        for params, field in (
            ({"tz": "Mars/Base"}, "tz"),
            ({"until": "0001-01-05T00:00:00Z"}, "until"),
            ({"since": "9999-12-31T23:00:00-05:00"}, "since"),
        ):
            refused = await client.get("/v1/satisfaction/summary", params=params)
            assert refused.status_code == 422 and refused.json()["field"] == field, refused.text
        bad = await client.get("/v1/satisfaction/summary", params={"group_by": "week"})
        assert bad.status_code == 422 and bad.json()["field"] == "group_by"
        backwards = await client.get(
            "/v1/satisfaction/summary",
            params={"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        )
        assert backwards.status_code == 422
    async with httpx.AsyncClient(base_url=base) as anonymous:
        assert (await anonymous.get("/v1/satisfaction/summary")).status_code == 401
