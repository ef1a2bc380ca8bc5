"""webhooks as a running process, delivering to real HTTP receivers: signed deliveries that
verify with the standardwebhooks library, retries through the broker's delay queues, a circuit
that pauses and resumes, a dead receiver that does not slow the others, the delivery log, a
redelivery by hand, and the example receiver in docs/."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aio_pika
import httpx
import pytest
import pytest_asyncio
from aio_pika.abc import AbstractRobustConnection
from standardwebhooks.webhooks import Webhook

from deploy.launcher import ROOT, ServiceProcesses
from shared.contracts import (
    EVENT_TYPES,
    CloudEvent,
    CustomerRef,
    EventData,
    IssueReceived,
    new_event,
    routing_key,
)
from shared.settings import Settings
from tests.support import (
    BOOTSTRAP_KEY,
    Received,
    WebhookReceiver,
    free_port,
    isolated_stack,
    publish,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}
SCHEDULE = [0.3, 0.6, 1.2]


@pytest.fixture(scope="module")
def webhook_stack() -> Iterator[Settings]:
    with isolated_stack() as settings:
        yield settings


@pytest.fixture(scope="module")
def webhooks(webhook_stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    group = ServiceProcesses(
        webhook_stack,
        env={
            "KEFU_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY,
            "KEFU_LOG_JSON": "false",
            "KEFU_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
            "KEFU_WEBHOOKS_RETRY_SCHEDULE": ",".join(map(str, SCHEDULE)),
            "KEFU_WEBHOOKS_TIMEOUT_SECONDS": "1",
            "KEFU_WEBHOOKS_CONNECT_TIMEOUT_SECONDS": "1",
            "KEFU_WEBHOOKS_CIRCUIT_FAILURES": "4",
            "KEFU_WEBHOOKS_BUSY_DELAY_SECONDS": "0.2",
            "KEFU_WEBHOOKS_DISPATCH_POLL_SECONDS": "0.05",
        },
        ports={"webhooks": free_port()},
        services=("webhooks",),
        log_dir=tmp_path_factory.mktemp("webhooks-logs"),
    )
    group.start_all()
    try:
        group.wait_ready(timeout=60)
        yield group.url("webhooks")
    finally:
        group.stop_all()


@pytest_asyncio.fixture(loop_scope="session")
async def broker(webhook_stack: Settings) -> AsyncIterator[AbstractRobustConnection]:
    connection = await aio_pika.connect_robust(webhook_stack.amqp_url)
    yield connection
    await connection.close()


@pytest_asyncio.fixture(loop_scope="session")
async def api(webhooks: str) -> AsyncIterator[httpx.AsyncClient]:
    """The API; every webhook a test registered is removed after it (its receiver is gone)."""
    async with httpx.AsyncClient(base_url=webhooks, headers=AUTH, timeout=10) as client:
        yield client
        for hook in (await client.get("/v1/webhooks", params={"limit": 200})).json()["items"]:
            await client.delete(f"/v1/webhooks/{hook['id']}")


def issue_event(channel: str = "chat", name: str = "李四") -> CloudEvent:
    return event_of(
        IssueReceived(
            issue_id=uuid.uuid4(),
            channel=channel,  # type: ignore[arg-type]
            external_id=uuid.uuid4().hex,
            customer=CustomerRef(customer_id=uuid.uuid4(), name=name),
            text="满意度为中",
            received_at=datetime.now(UTC),
        )
    )


def event_of(data: EventData) -> CloudEvent:
    return new_event("/kefu/intake", data)


async def register(api: httpx.AsyncClient, url: str, **extra: Any) -> dict[str, Any]:
    answer = await api.post("/v1/webhooks", json={"url": url, "events": ["issue.*"], **extra})
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def deliveries(api: httpx.AsyncClient, webhook_id: str, **params: Any) -> list[Any]:
    answer = await api.get(f"/v1/webhooks/{webhook_id}/deliveries", params=params)
    assert answer.status_code == 200, answer.text
    items: list[Any] = answer.json()["items"]
    return items


async def bound_keys(settings: Settings) -> set[str]:
    management = httpx.URL(settings.management_url())
    vhost = quote(settings.amqp_vhost(), safe="")
    async with httpx.AsyncClient(
        auth=(management.username, management.password), timeout=10
    ) as client:
        answer = await client.get(
            str(management.copy_with(username=None, password=None, path="/"))
            + f"api/exchanges/{vhost}/kefu.events/bindings/source"
        )
    answer.raise_for_status()
    return {b["routing_key"] for b in answer.json() if b["destination"] == "kefu.webhooks"}


async def test_the_queue_is_bound_to_the_event_types_webhooks_want_and_no_more(
    api: httpx.AsyncClient, webhook_stack: Settings
) -> None:
    # No webhook: only the erasures reach the queue (its delivery log must forget customers).
    await wait_until(
        lambda: _equals(bound_keys(webhook_stack), {"customer.erased"}), what="no bindings"
    )
    hook = await register(api, "http://127.0.0.1:9/x", events=["feedback.submitted"])
    # Bound before the 201: an event published from now on reaches the new webhook.
    assert await bound_keys(webhook_stack) == {"customer.erased", "feedback.submitted"}
    changed = await api.patch(f"/v1/webhooks/{hook['id']}", json={"events": ["issue.*"]})
    assert changed.status_code == 200, changed.text
    issue_keys = {routing_key(t) for t in EVENT_TYPES if t.startswith("kefu.issue.")}
    assert {"issue.received", "issue.analyzed"} <= issue_keys
    assert await bound_keys(webhook_stack) == {"customer.erased", *issue_keys}
    assert (await api.delete(f"/v1/webhooks/{hook['id']}")).status_code == 204
    assert await bound_keys(webhook_stack) == {"customer.erased"}


async def _equals(found: Any, expected: set[str]) -> bool:
    return bool(await found == expected)


async def test_a_delivery_is_signed_and_verifies_with_the_library(
    api: httpx.AsyncClient, broker: AbstractRobustConnection, webhook_stack: Settings
) -> None:
    async with WebhookReceiver() as receiver:
        hook = await register(api, receiver.url("/signed"), channels=["chat"])
        assert hook["secret"].startswith("whsec_")
        assert "secret" not in (await api.get(f"/v1/webhooks/{hook['id']}")).json()
        chat, email = issue_event("chat"), issue_event("email")
        await publish(broker, webhook_stack, chat)
        await publish(broker, webhook_stack, email)
        await wait_until(lambda: receiver.at("/signed"), what="a delivery")
        request = receiver.at("/signed")[0]
        event = Webhook(hook["secret"]).verify(request.body, request.headers)
        assert event["id"] == str(chat.id) and event["type"] == "kefu.issue.received"
        assert request.headers["webhook-id"] == str(chat.id)
        assert request.headers["content-type"] == "application/cloudevents+json"
        assert CloudEvent.model_validate(event) == chat
        # A body changed on the way does not verify.
        with pytest.raises(Exception, match="signature"):
            Webhook(hook["secret"]).verify(request.body.replace(b"chat", b"chaT"), request.headers)
        await asyncio.sleep(0.5)
        assert len(receiver.at("/signed")) == 1  # the email issue did not pass the filter
        logged = await wait_until(
            lambda: _delivered(api, hook["id"]), what="the delivery in the log"
        )
        assert logged[0]["attempts"] == 1 and logged[0]["last_status_code"] == 204
        assert logged[0]["event_id"] == str(chat.id)


async def _delivered(api: httpx.AsyncClient, webhook_id: str) -> list[Any]:
    return await deliveries(api, webhook_id, status="delivered")


async def test_a_receiver_that_fails_twice_gets_the_event_again_then_no_more(
    api: httpx.AsyncClient, broker: AbstractRobustConnection, webhook_stack: Settings
) -> None:
    async def fails_twice(request: Received) -> int:
        seen = [
            r
            for r in receiver.at("/flaky")
            if r.headers["webhook-id"] == request.headers["webhook-id"]
        ]
        return 503 if len(seen) <= 2 else 200

    async with WebhookReceiver({"/flaky": fails_twice}) as receiver:
        hook = await register(api, receiver.url("/flaky"))
        event = issue_event()
        await publish(broker, webhook_stack, event)
        await wait_until(lambda: len(receiver.at("/flaky")) >= 3, timeout=15, what="3 tries")
        await asyncio.sleep(sum(SCHEDULE) + 0.5)  # long enough for any further retry
        tries = receiver.at("/flaky")
        assert len(tries) == 3
        assert {r.headers["webhook-id"] for r in tries} == {str(event.id)}
        # The retries followed the schedule (within the broker's and the poll's slack).
        gaps = [b.at - a.at for a, b in itertools.pairwise(tries)]
        assert gaps[0] >= SCHEDULE[0] - 0.05 and gaps[1] >= SCHEDULE[1] - 0.05, gaps
        for request in tries:  # each try signed afresh, each verifies
            Webhook(hook["secret"]).verify(request.body, request.headers)
        [logged] = await deliveries(api, hook["id"])
        assert logged["status"] == "delivered" and logged["attempts"] == 3
        assert logged["last_status_code"] == 200


async def test_a_dead_receiver_does_not_slow_the_others_and_its_circuit_opens(
    api: httpx.AsyncClient, broker: AbstractRobustConnection, webhook_stack: Settings
) -> None:
    async def hangs(_: Received) -> int:
        await asyncio.sleep(30)
        return 200

    async with WebhookReceiver({"/dead": hangs}) as receiver:
        dead = await register(api, receiver.url("/dead"), max_in_flight=1)
        alive = await register(api, receiver.url("/alive"))
        events = [issue_event() for _ in range(20)]
        started = time.perf_counter()
        for event in events:
            await publish(broker, webhook_stack, event)
        await wait_until(lambda: len(receiver.at("/alive")) >= 20, timeout=15, what="20 sent")
        took = receiver.at("/alive")[-1].at - started
        # Calling the dead one in turn would take 20 time-outs of 1 s.
        assert took < 4, f"the live receiver waited {took:.1f}s"
        # The dead one: each call times out; after 4 failures in a row it is paused.
        paused = await wait_until(
            lambda: _status(api, dead["id"], "paused"), timeout=20, what="the circuit"
        )
        assert "consecutive failed attempts" in paused["paused_reason"]
        assert len(receiver.at("/dead")) <= 4 + 1  # at most its limit in flight past the 4th
        assert (await api.get(f"/v1/webhooks/{alive['id']}")).json()["status"] == "active"


async def _status(api: httpx.AsyncClient, webhook_id: str, status: str) -> dict[str, Any] | None:
    hook: dict[str, Any] = (await api.get(f"/v1/webhooks/{webhook_id}")).json()
    return hook if hook["status"] == status else None


async def test_a_paused_webhook_holds_its_deliveries_until_it_is_resumed(
    api: httpx.AsyncClient, broker: AbstractRobustConnection, webhook_stack: Settings
) -> None:
    up = False

    async def down_until_fixed(_: Received) -> int:
        return 200 if up else 500

    async with WebhookReceiver({"/down": down_until_fixed}) as receiver:
        hook = await register(api, receiver.url("/down"))
        first = [issue_event() for _ in range(4)]
        for event in first:
            await publish(broker, webhook_stack, event)
        await wait_until(lambda: _status(api, hook["id"], "paused"), timeout=20, what="paused")
        held_later = issue_event()
        await publish(broker, webhook_stack, held_later)  # arrives while paused: held
        await wait_until(
            lambda: _count(api, hook["id"], "paused", 5), timeout=20, what="5 held deliveries"
        )
        calls = len(receiver.at("/down"))
        await asyncio.sleep(1)
        assert len(receiver.at("/down")) == calls  # nothing is tried while paused
        up = True
        resumed = await api.post(f"/v1/webhooks/{hook['id']}/resume")
        assert resumed.status_code == 200 and resumed.json()["status"] == "active"
        await wait_until(
            lambda: _count(api, hook["id"], "delivered", 5), timeout=20, what="5 delivered"
        )
        ids = {r.headers["webhook-id"] for r in receiver.at("/down")}
        assert ids == {str(event.id) for event in [*first, held_later]}


async def _count(api: httpx.AsyncClient, webhook_id: str, status: str, wanted: int) -> bool:
    return len(await deliveries(api, webhook_id, status=status)) == wanted


async def test_the_api_validates_pages_and_redelivers(
    api: httpx.AsyncClient, broker: AbstractRobustConnection, webhook_stack: Settings
) -> None:
    async with WebhookReceiver() as receiver:
        for body, field in (
            ({"url": "ftp://example.com/x", "events": ["#"]}, "url"),
            ({"url": "http://127.0.0.1:1/x", "events": ["nothing.here"]}, "events[0]"),
            ({"url": "http://127.0.0.1:1/x", "events": ["Issue!"]}, "events[0]"),
            ({"url": "http://127.0.0.1:1/x", "events": []}, "events"),
            ({"url": "http://127.0.0.1:1/x", "events": ["#"], "channels": ["fax"]}, "channels[0]"),
            ({"url": "http://127.0.0.1:1/x", "events": ["#"], "extra": 1}, "extra"),
        ):
            refused = await api.post("/v1/webhooks", json=body)
            assert refused.status_code == 422, (body, refused.text)
            assert refused.json()["field"] == field, refused.json()
        async with httpx.AsyncClient(base_url=str(api.base_url)) as anonymous:
            assert (await anonymous.get("/v1/webhooks")).status_code == 401

        first = await register(api, receiver.url("/one"), events=["improvement.#"])
        second = await register(api, receiver.url("/two"))
        page = (await api.get("/v1/webhooks", params={"limit": 1})).json()
        assert [item["id"] for item in page["items"]] == [second["id"]]
        rest = (await api.get("/v1/webhooks", params={"cursor": page["next_cursor"]})).json()
        assert first["id"] in [item["id"] for item in rest["items"]]
        assert second["id"] not in [item["id"] for item in rest["items"]]
        bad = await api.get("/v1/webhooks", params={"cursor": "nonsense"})
        assert bad.status_code == 422 and bad.json()["field"] == "cursor"

        changed = await api.patch(
            f"/v1/webhooks/{first['id']}", json={"events": ["issue.received"], "intents": None}
        )
        assert changed.status_code == 200 and changed.json()["events"] == ["issue.received"]
        event = issue_event()
        await publish(broker, webhook_stack, event)
        await wait_until(lambda: receiver.at("/one") and receiver.at("/two"), what="both")
        [delivery] = await wait_until(lambda: _delivered(api, first["id"]), what="logged")
        again = await api.post(f"/v1/webhooks/{first['id']}/deliveries/{delivery['id']}/redeliver")
        assert again.status_code == 202
        await wait_until(lambda: len(receiver.at("/one")) == 2, what="the redelivery")
        assert receiver.at("/one")[1].headers["webhook-id"] == str(event.id)

        assert (await api.delete(f"/v1/webhooks/{first['id']}")).status_code == 204
        assert (await api.get(f"/v1/webhooks/{first['id']}")).status_code == 404
        assert (await api.delete(f"/v1/webhooks/{first['id']}")).status_code == 404


async def test_the_example_receiver_verifies_and_handles_each_event_once(
    api: httpx.AsyncClient, broker: AbstractRobustConnection, webhook_stack: Settings
) -> None:
    port = free_port()
    hook = await register(api, f"http://127.0.0.1:{port}/kefu")
    example = await asyncio.create_subprocess_exec(
        sys.executable,
        "docs/examples/webhook_receiver.py",
        "--port",
        str(port),
        cwd=ROOT,
        env={"KEFU_WEBHOOK_SECRET": hook["secret"], "PATH": "/usr/bin:/bin"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert example.stdout is not None
    try:
        assert b"listening" in await asyncio.wait_for(example.stdout.readline(), 10)
        event = issue_event(name="张三")
        await publish(broker, webhook_stack, event)
        printed = json.loads(await asyncio.wait_for(example.stdout.readline(), 15))
        assert printed["webhook_id"] == str(event.id) and printed["customer"] == "张三"
        [delivery] = await wait_until(lambda: _delivered(api, hook["id"]), what="logged")
        await api.post(f"/v1/webhooks/{hook['id']}/deliveries/{delivery['id']}/redeliver")
        duplicate = json.loads(await asyncio.wait_for(example.stdout.readline(), 15))
        assert duplicate == {"webhook_id": str(event.id), "duplicate": True}
    finally:
        example.kill()
        await example.wait()
