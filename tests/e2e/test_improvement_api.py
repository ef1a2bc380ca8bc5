"""improvement through the running services: 李四's follow-up reaches a downstream subscriber
(the example in docs/), and people move it along."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid

import httpx
import pytest

from deploy.launcher import ROOT, ServiceProcesses
from shared.settings import Settings
from tests.support import BOOTSTRAP_KEY

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}


async def test_li_si_follow_up_reaches_a_subscriber_and_people_move_it(
    services: ServiceProcesses, stack: Settings
) -> None:
    queue = f"test.crm.{uuid.uuid4().hex[:8]}"
    subscriber = await asyncio.create_subprocess_exec(
        sys.executable,
        "docs/examples/subscriber.py",
        "--amqp-url",
        stack.amqp_url,
        "--queue",
        queue,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert subscriber.stdout is not None

    async def printed(event_type: str, status: str) -> dict[str, str]:
        """The next event of this type and status (an analysis may update the follow-up too)."""
        while True:
            line = await asyncio.wait_for(subscriber.stdout.readline(), 30)  # type: ignore[union-attr]
            if not line.startswith(b"{"):
                raise AssertionError(f"subscriber said: {line!r}")
            event: dict[str, str] = json.loads(line)
            if (event["type"], event["status"]) == (event_type, status):
                return event

    try:
        line = await asyncio.wait_for(subscriber.stdout.readline(), 30)
        assert b"listening" in line
        async with httpx.AsyncClient(headers=AUTH) as client:
            posted = await client.post(
                f"{services.url('intake')}/v1/issues",
                json={
                    "channel": "chat",
                    "external_id": f"lisi-{queue}",
                    "customer": {
                        "name": "李四",
                        "phone": "13900139000",
                        "email": "lisi@example.com",
                    },
                    "text": "满意度为中",
                },
            )
            issue_id = posted.json()["issue_id"]
            first = await printed("kefu.improvement.followup_required", "open")
            assert first["type"] == "kefu.improvement.followup_required"
            assert first["customer"] == "李四" and first["subject"] == issue_id
            assert first["summary"] == "改进企业产品和服务，满足李四的需求"

            base = services.url("improvement")
            listed = (
                await client.get(f"{base}/v1/followups", params={"issue_id": issue_id})
            ).json()
            assert len(listed["items"]) == 1  # exactly one follow-up for 李四's issue
            assert listed["next_cursor"] is None and listed["total"] is None
            followup_id = listed["items"][0]["followup_id"]
            moved = await client.patch(
                f"{base}/v1/followups/{followup_id}",
                json={"status": "contacted", "by": "agent-7", "note": "called back"},
            )
            assert moved.status_code == 200 and moved.json()["status"] == "contacted"
            wrong = await client.patch(
                f"{base}/v1/followups/{followup_id}", json={"status": "nonsense", "by": "agent-7"}
            )
            assert wrong.status_code == 422 and wrong.json()["field"] == "status"
            second = await printed("kefu.improvement.followup_updated", "contacted")
            assert (second["type"], second["status"]) == (
                "kefu.improvement.followup_updated",
                "contacted",
            )

            # The customer rates the service 5/5: the follow-up closes by itself.
            await client.post(
                f"{services.url('intake')}/v1/feedback",
                json={"issue_id": issue_id, "rating": {"scale": "csat5", "value": 5}},
            )
            third = await printed("kefu.improvement.followup_updated", "resolved")
            assert (third["type"], third["status"]) == (
                "kefu.improvement.followup_updated",
                "resolved",
            )
            back = await client.patch(
                f"{base}/v1/followups/{followup_id}", json={"status": "contacted", "by": "agent-7"}
            )
            assert back.status_code == 409
            nul = await client.patch(
                f"{base}/v1/followups/{followup_id}", json={"status": "open", "by": "agent\u0000"}
            )
            assert nul.status_code == 422 and nul.json()["field"] == "by"
            huge = await client.get(f"{base}/v1/followups", params={"offset": 10**19})
            assert huge.status_code == 422 and huge.json()["field"] == "offset"
            missing = await client.patch(
                f"{base}/v1/followups/{uuid.uuid4()}", json={"status": "contacted", "by": "agent-7"}
            )
            assert missing.status_code == 404
            improvements = await client.get(
                f"{base}/v1/improvements", params={"status": "open", "limit": 5}
            )
            assert improvements.status_code == 200 and "items" in improvements.json()
        async with httpx.AsyncClient() as anonymous:
            assert (await anonymous.get(f"{base}/v1/followups")).status_code == 401
    finally:
        if subscriber.returncode is None:
            subscriber.kill()
            await subscriber.wait()
