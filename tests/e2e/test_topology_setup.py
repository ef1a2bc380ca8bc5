"""Set-up owns the topology (deploy/broker.py, `kefu setup`): an issue posted before
need_analyzer ever ran waits in need_analyzer's queue, and is analysed at its first start."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import asyncpg
import httpx
import pytest

from deploy import broker, cli
from deploy.launcher import ServiceProcesses
from shared.contracts import EVENT_TYPES, routing_key
from shared.db import asyncpg_dsn
from shared.messaging.topology import (
    CONSUMES,
    WEBHOOK_JOBS_QUEUE,
    bound_by_setup,
    dead_letter_queue_name,
    service_queue_name,
    webhook_delay_queue_name,
)
from shared.settings import Settings, get_settings, get_webhook_settings
from tests.support import (
    BOOTSTRAP_KEY,
    event_tap,
    free_port,
    isolated_stack,
    queue_depth,
    wait_until,
)

EVENTS_TO_WEBHOOKS = ("kefu.events", "kefu.webhooks")
pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}


@pytest.fixture(scope="module")
def stack() -> Iterator[Settings]:
    """A vhost no consumer has ever declared anything in."""
    with isolated_stack() as settings:
        yield settings


def _group(stack: Settings, service: str, log_dir: Path) -> ServiceProcesses:
    return ServiceProcesses(
        stack,
        env={
            "KEFU_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY,
            "KEFU_LOG_JSON": "false",
            # As set-up declared the queues: a consumer re-declares them with the same arguments.
            "KEFU_DELIVERY_LIMIT": str(stack.delivery_limit),
        },
        ports={service: free_port()},
        services=(service,),
        log_dir=log_dir,
    )


@pytest.mark.asyncio(loop_scope="session")
async def test_an_issue_posted_before_the_analyzer_first_starts_is_analysed(
    stack: Settings, tmp_path: Path
) -> None:
    declared = await broker.declare(stack)  # what `kefu setup` does after the migrations
    service_queues = [service_queue_name(s) for s, types in CONSUMES.items() if types]
    assert declared[: len(service_queues)] == service_queues
    # Then the webhooks' jobs queue and one delay queue per distinct step of the schedule.
    delays = get_webhook_settings().retry_delays()
    assert declared[len(service_queues) :] == [
        WEBHOOK_JOBS_QUEUE,
        *(webhook_delay_queue_name(delay) for delay in sorted(set(delays))),
    ]

    intake = _group(stack, "intake", tmp_path)
    intake.start("intake")
    analyzer = _group(stack, "need_analyzer", tmp_path)
    amqp = await aio_pika.connect_robust(stack.amqp_url)
    try:
        await asyncio.to_thread(intake.wait_ready, 60)
        async with httpx.AsyncClient(base_url=intake.url("intake"), headers=AUTH) as client:
            answer = await client.post(
                "/v1/issues",
                json={
                    "channel": "email",
                    "external_id": "before-the-analyzer",
                    "customer": {"name": "张三", "email": "zhangsan@example.com"},
                    "text": "需要更快的响应速度",
                },
            )
        assert answer.status_code == 202, answer.text
        issue_id = answer.json()["issue_id"]

        async def waiting_in_its_queue() -> bool:
            return await queue_depth(amqp, service_queue_name("need_analyzer")) == 1

        await wait_until(waiting_in_its_queue, what="issue.received in kefu.need_analyzer")

        async with event_tap(stack, binding="issue.analyzed") as tap:
            analyzer.start("need_analyzer")  # its first start ever
            analyzed = await tap.wait_for(
                "kefu.issue.analyzed", lambda d: d["issue_id"] == issue_id, timeout=60
            )
        assert analyzed["data"]["analysis"]["intent"] == "response_speed"
    finally:
        await amqp.close()
        analyzer.stop_all()
        intake.stop_all()


def test_kefu_setup_declares_every_queue_with_its_bindings(
    stack: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KEFU_ADMIN_DATABASE_URL", stack.admin_database_url)
    monkeypatch.setenv("KEFU_AMQP_URL", stack.amqp_url)
    monkeypatch.setenv("KEFU_DELIVERY_LIMIT", str(stack.delivery_limit))
    get_settings.cache_clear()
    try:
        assert cli.main(["setup"]) == 0
    finally:
        get_settings.cache_clear()
    assert "broker ready: kefu.need_analyzer, kefu.feedback, kefu.improvement" in (
        capsys.readouterr().out
    )
    vhost = stack.amqp_url.rsplit("/", 1)[1]
    listing = subprocess.run(
        [
            "rabbitmqctl",
            "-q",
            "list_bindings",
            "-p",
            vhost,
            "source_name",
            "destination_name",
            "routing_key",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    bindings = {tuple(line.split("\t")) for line in listing.splitlines() if line}
    for service, event_types in CONSUMES.items():
        for key in bound_by_setup(service):
            assert ("kefu.events", service_queue_name(service), key) in bindings
        if event_types:
            queue = service_queue_name(service)
            assert ("kefu.dlx", dead_letter_queue_name(service), queue) in bindings
    assert ("kefu.events", "kefu.events.archive", "#") in bindings
    # webhooks binds the rest itself, as its endpoints ask.
    webhooks = {key for source, queue, key in bindings if (source, queue) == EVENTS_TO_WEBHOOKS}
    assert webhooks == {"customer.erased"}


def test_setup_keeps_a_dead_letter_queue_declared_before_dlqs_had_a_bound() -> None:
    """An earlier release declared the DLQs without a length limit; RabbitMQ refuses to declare
    them again with one, and set-up must still complete over that topology."""
    with isolated_stack() as settings:

        async def declare_old_dlq() -> None:
            connection = await aio_pika.connect(settings.amqp_url)
            try:
                channel = await connection.channel()
                await channel.declare_queue(
                    dead_letter_queue_name("feedback"),
                    durable=True,
                    arguments={"x-queue-type": "quorum"},
                )
            finally:
                await connection.close()

        asyncio.run(declare_old_dlq())
        assert service_queue_name("feedback") in broker.declare_sync(settings)


def test_setup_binds_what_registered_webhooks_want() -> None:
    """A release's set-up binds the event types registered webhooks want before any of its
    publishers runs, so none is lost while the webhooks service is still being replaced."""
    with isolated_stack() as settings:

        async def register() -> None:
            connection = await asyncpg.connect(asyncpg_dsn(settings.admin_database_url))
            try:
                await connection.execute(
                    "INSERT INTO webhooks.endpoints (id, url, events, secret, max_in_flight, "
                    "created_at, updated_at) VALUES ($1, 'https://crm.example.com/hook', "
                    "$2, 'whsec_x', 4, now(), now())",
                    uuid.uuid4(),
                    ["improvement.*"],
                )
            finally:
                await connection.close()

        asyncio.run(register())
        broker.declare_sync(settings)
        columns = ("source_name", "destination_name", "routing_key")
        listing = subprocess.run(
            ["rabbitmqctl", "-q", "list_bindings", "-p", settings.amqp_vhost(), *columns],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        bound = {
            key
            for source, queue, key in (line.split("\t") for line in listing.splitlines() if line)
            if (source, queue) == EVENTS_TO_WEBHOOKS
        }
        improvement = {routing_key(t) for t in EVENT_TYPES if t.startswith("kefu.improvement.")}
        assert improvement and bound == {"customer.erased", *improvement}
