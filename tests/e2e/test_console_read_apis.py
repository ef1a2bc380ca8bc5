"""The read APIs the console needs, on the running services: who a key is, the summary by
channel and intent, one issue's satisfaction, needs with examples, follow-ups by channel and
age."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from deploy.launcher import ServiceProcesses
from shared.auth import SCOPES
from shared.settings import SERVICES, Settings
from tests.support import BOOTSTRAP_KEY, event_tap

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}


async def test_every_service_says_who_a_key_is(services: ServiceProcesses) -> None:
    async with httpx.AsyncClient() as client:
        for service in SERVICES:
            me = await client.get(f"{services.url(service)}/v1/me", headers=AUTH)
            assert me.status_code == 200, me.text
            assert me.json() == {"name": "bootstrap", "scopes": sorted(SCOPES)}
            anonymous = await client.get(f"{services.url(service)}/v1/me")
            assert anonymous.status_code == 401
            unknown = await client.get(
                f"{services.url(service)}/v1/me", headers={"Authorization": "Bearer nope"}
            )
            assert unknown.status_code == 401


async def test_console_reads_of_one_issue(services: ServiceProcesses, stack: Settings) -> None:
    tag = uuid.uuid4().hex[:8]
    need = f"更快的退款处理{tag}"
    started = datetime.now(UTC)  # tests run one at a time: only this test's issues from here
    async with event_tap(stack) as tap, httpx.AsyncClient(headers=AUTH) as client:
        posted = await client.post(
            f"{services.url('intake')}/v1/issues",
            json={
                "channel": "social",
                "external_id": f"console-{tag}",
                "customer": {"name": "赵六", "email": f"zhao-console-{tag}@example.com"},
                "text": f"需要{need}",
            },
        )
        issue_id = posted.json()["issue_id"]
        unhappy = await client.post(
            f"{services.url('intake')}/v1/issues",
            json={
                "channel": "social",
                "external_id": f"console-unhappy-{tag}",
                "customer": {"name": "钱七", "email": f"qian-console-{tag}@example.com"},
                "text": "满意度为中",
            },
        )
        unhappy_id = unhappy.json()["issue_id"]
        for rating in ({"scale": "nps10", "value": 10}, {"scale": "ces7", "value": 6}):
            answer = await client.post(
                f"{services.url('intake')}/v1/feedback",
                json={"issue_id": issue_id, "rating": rating, "comment": "很满意"},
            )
            assert answer.status_code == 202, answer.text
        await tap.wait_for(
            "kefu.satisfaction.evaluated",
            lambda d: d["issue_id"] == issue_id and d["basis"].startswith("rating ces7"),
        )
        await tap.wait_for("kefu.issue.analyzed", lambda d: d["issue_id"] == issue_id)
        await tap.wait_for(
            "kefu.improvement.followup_required", lambda d: d["issue_id"] == unhappy_id
        )

        feedback = services.url("feedback")
        story = (await client.get(f"{feedback}/v1/satisfaction/issues/{issue_id}")).json()
        assert story["verdict"]["verdict"] == "satisfied"
        assert (story["verdict"]["nps"], story["verdict"]["ces"]) == (10, 6)
        assert [item["rating"]["scale"] for item in story["feedback"]] == ["nps10", "ces7"]
        none_yet = (await client.get(f"{feedback}/v1/satisfaction/issues/{uuid.uuid4()}")).json()
        assert none_yet["verdict"] is None and none_yet["feedback"] == []

        by_social = (
            await client.get(f"{feedback}/v1/satisfaction/summary", params={"channel": "social"})
        ).json()
        assert by_social["total"]["rated"] == 2  # only this test posts on social
        assert by_social["total"]["nps"]["promoters"] == 1
        by_intent = await client.get(
            f"{feedback}/v1/satisfaction/summary",
            params={"channel": "social", "intent": "feedback"},
        )
        assert by_intent.json()["total"]["rated"] == 1  # 钱七's "满意度为中"
        refused = await client.get(f"{feedback}/v1/satisfaction/summary", params={"channel": "fax"})
        assert refused.status_code == 422 and refused.json()["field"] == "channel"

        analyzer = services.url("need_analyzer")
        window = {"since": started.isoformat(), "until": datetime.now(UTC).isoformat()}
        top = (
            await client.get(
                f"{analyzer}/v1/needs/top",
                params={**window, "limit": 100, "examples": 2, "previous": "true"},
            )
        ).json()
        ours = next(row for row in top["needs"] if row["need"].endswith(tag))
        assert ours["count"] == 1 and ours["previous_count"] == 0
        assert [example["issue_id"] for example in ours["examples"]] == [issue_id]
        assert ours["examples"][0]["text"] == f"需要{need}"
        assert all(len(row["examples"]) <= 2 for row in top["intents"])
        plain = (await client.get(f"{analyzer}/v1/needs/top")).json()
        assert all(
            row["examples"] == [] and row["previous_count"] is None for row in plain["needs"]
        )
        too_many = await client.get(f"{analyzer}/v1/needs/top", params={"examples": 9})
        assert too_many.status_code == 422 and too_many.json()["field"] == "examples"

        improvement = services.url("improvement")

        async def followup_ids(**params: str) -> list[str]:
            page = await client.get(f"{improvement}/v1/followups", params=params)
            assert page.status_code == 200, page.text
            return [item["issue_id"] for item in page.json()["items"]]

        assert unhappy_id in await followup_ids(channel="social")
        assert unhappy_id not in await followup_ids(channel="email")
        hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        assert unhappy_id not in await followup_ids(channel="social", created_before=hour_ago)
        assert unhappy_id in await followup_ids(channel="social", created_after=hour_ago)
        bad = await client.get(f"{improvement}/v1/followups", params={"created_before": "soon"})
        assert bad.status_code == 422 and bad.json()["field"] == "created_before"
