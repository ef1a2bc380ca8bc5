"""The faults, each injected into a running Kefu under load (harness.run_scenario)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aio_pika

from deploy.launcher import ROOT
from shared.messaging.topology import EVENTS_EXCHANGE, dead_letter_queue_name
from shared.settings import SERVICES
from tests.chaos.harness import Kefu, Run, http_client

FaultFunction = Callable[[Run], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: FaultFunction
    fault_at: float = 3.0
    allow_503: bool = False
    # The fault must make some event arrive twice (and the inboxes absorb it).
    copies_expected: bool = False


async def no_fault(run: Run) -> None:
    run.cleared()


def kill(service: str) -> FaultFunction:
    async def fault(run: Run) -> None:
        run.kefu.kill(service)
        # Cleared once the supervisor has it back and ready.
        deadline = time.monotonic() + 60
        while not await run.kefu.ready(service):
            if time.monotonic() > deadline:
                run.failures.append(f"{service} not ready 60 s after its kill")
                break
            await asyncio.sleep(0.1)
        run.cleared()

    return fault


async def broker_restart(run: Run) -> None:
    ctl = run.kefu.rabbitmq.ctl
    began = time.monotonic()
    await asyncio.to_thread(ctl, "stop_app")
    stopped = time.monotonic()
    await asyncio.sleep(5)
    await asyncio.to_thread(ctl, "start_app")
    await asyncio.to_thread(run.kefu.rabbitmq.wait_ready)
    run.notes.append(
        f"stop_app took {stopped - began:.1f} s, start_app {time.monotonic() - stopped - 5:.1f} s"
    )
    run.cleared()


async def connections_closed(run: Run) -> None:
    await asyncio.to_thread(run.kefu.rabbitmq.ctl, "close_all_connections", "fault suite")
    run.cleared()


async def postgres_restart(run: Run) -> None:
    await asyncio.to_thread(run.kefu.postgres.restart_immediate)
    run.cleared()


async def relay_dies_after_confirm(run: Run) -> None:
    # Intake's and need_analyzer's relays each die once between the broker's confirm and the
    # update that marks their rows sent: the rows are published again after the restart.
    for service in ("intake", "need_analyzer"):
        run.kefu.arm(f"relay-after-confirm.{service}")
    deadline = time.monotonic() + 30
    while any(
        (run.kefu.failpoints / f"relay-after-confirm.{s}").exists()
        for s in ("intake", "need_analyzer")
    ):
        if time.monotonic() > deadline:
            run.failures.append("a relay failpoint did not fire within 30 s")
            break
        await asyncio.sleep(0.1)
    await run.kefu.wait_all_ready()
    run.cleared()


def alarm(kind: str) -> FaultFunction:
    """Publishers blocked by a resource alarm for 5 s; intake keeps accepting meanwhile."""

    async def fault(run: Run) -> None:
        async def ctl(*args: str) -> None:
            await asyncio.to_thread(run.kefu.rabbitmq.ctl, *args)

        if kind == "memory":
            await ctl("set_vm_memory_high_watermark", "0")
        else:
            await ctl("set_disk_free_limit", "100000GB")
        accepted_before = sum(p.accepted_at is not None for p in run.channel.posted)
        await asyncio.sleep(5)
        accepted_during = sum(p.accepted_at is not None for p in run.channel.posted)
        run.notes.append(f"{accepted_during - accepted_before} issues accepted during the alarm")
        if accepted_during == accepted_before:
            run.failures.append("intake accepted nothing while publishers were blocked")
        if kind == "memory":
            await ctl("set_vm_memory_high_watermark", "0.4")
        else:
            await ctl("set_disk_free_limit", "50MB")
        run.cleared()

    return fault


async def poison_message(run: Run) -> None:
    """need_analyzer fails every time on one message (a bug, armed by a failpoint): it goes to
    the DLQ after the delivery limit, the others flow; once the fix is deployed (the failpoint
    disarmed), `kefu dlq replay need_analyzer` brings it back and it completes the loop once."""
    kefu = run.kefu
    marker = f"POISON-{run.channel.run}"
    kefu.arm("poison.need_analyzer", marker)
    async with http_client() as client:
        poisoned = run.channel.new_issue(f"不满意，需要更快的发货 {marker}")
        await run.channel.deliver(client, poisoned)
    deadline = time.monotonic() + 60
    while await _depth(kefu, dead_letter_queue_name("need_analyzer")) < 1:
        if time.monotonic() > deadline:
            run.failures.append("the poisoned message did not reach the DLQ within 60 s")
            break
        await asyncio.sleep(0.25)
    received = [
        s.id
        for s in run.tap.seen
        if s.type == "kefu.issue.received" and s.data["issue_id"] == poisoned.issue_id
    ]
    failed = _failed_deliveries(kefu, "need_analyzer", received[0]) if received else 0
    # The consumer dead-letters a message that failed more often than its delivery limit.
    expected = kefu.settings.delivery_limit + 1
    run.notes.append(f"poisoned message: {failed} failed deliveries, then the DLQ")
    if failed != expected:
        run.failures.append(f"poisoned message failed {failed} times, expected {expected}")
    kefu.disarm("poison.need_analyzer")
    replay = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "deploy.cli", "dlq", "replay", "need_analyzer"],
        env={**os.environ, "KEFU_AMQP_URL": kefu.settings.amqp_url},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    run.notes.append(f"kefu dlq replay need_analyzer: {replay.stdout.strip()}")
    if replay.returncode != 0:
        run.failures.append(f"kefu dlq replay failed: {replay.stderr.strip()[-300:]}")
    run.cleared()


async def _depth(kefu: Kefu, queue: str) -> int:
    connection = await aio_pika.connect(kefu.settings.amqp_url)
    try:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0
    finally:
        await connection.close()


def _failed_deliveries(kefu: Kefu, service: str, event_id: str) -> int:
    """The consumer logs one line per failed delivery of a message: "handler failed; message
    will be redelivered" while it has tries left, "handler failed; delivery limit reached" on
    the last."""
    log = (kefu.home / "logs" / f"{service}.log").read_text(errors="replace")
    return sum(1 for line in log.splitlines() if "handler failed;" in line and event_id in line)


async def reordered(run: Run) -> None:
    """need_analyzer frozen for 4 s (SIGSTOP): verdicts reach improvement before analyses, and
    ratings posted before their issues reach feedback first; then it thaws."""
    kefu = run.kefu
    kefu.kill("need_analyzer", signal.SIGSTOP)
    try:
        async with http_client() as client:
            for _ in range(20):
                issue = run.channel.new_issue()
                rating = {
                    "issue": {"channel": "chat", "external_id": issue.external_id},
                    "rating": {"scale": "csat5", "value": 1},
                }
                reply = await client.post(
                    f"{kefu.url('intake')}/v1/feedback", content=json.dumps(rating)
                )
                if reply.status_code not in (200, 202):
                    run.failures.append(
                        f"feedback before its issue: {reply.status_code} {reply.text}"
                    )
                    break
                await run.channel.deliver(client, issue)
        await asyncio.sleep(4)
        ids = {p.issue_id for p in run.channel.posted if p.issue_id}
        analysed = {s.data["issue_id"] for s in run.tap.of("kefu.issue.analyzed", ids)}
        early = {s.data["issue_id"] for s in run.tap.of("kefu.satisfaction.evaluated", ids)}
        run.notes.append(f"{len(early - analysed)} verdicts published before their analysis")
        if not early - analysed:
            run.failures.append("nothing arrived out of order")
    finally:
        kefu.kill("need_analyzer", signal.SIGCONT)
    run.cleared()


async def redelivered(run: Run) -> None:
    """Every event of the run so far published again as it was (same id), shuffled: each
    consumer's inbox must make the copies no-ops."""
    ids = {p.issue_id for p in run.channel.posted if p.issue_id}
    copies = list({s.id: s for s in run.tap.seen if s.data.get("issue_id") in ids}.values())
    random.Random(7).shuffle(copies)
    connection = await aio_pika.connect(run.kefu.settings.amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(EVENTS_EXCHANGE)
        await asyncio.gather(
            *(
                exchange.publish(seen.message(), routing_key=seen.type.removeprefix("kefu."))
                for seen in copies
            )
        )
    finally:
        await connection.close()
    run.notes.append(f"{len(copies)} events published a second time")
    run.cleared()


SCENARIOS = (
    Scenario("no fault (baseline)", no_fault),
    *(Scenario(f"kill -9 {service}", kill(service)) for service in SERVICES),
    Scenario("RabbitMQ stop_app 5 s / start_app", broker_restart),
    Scenario("RabbitMQ close_all_connections", connections_closed),
    Scenario("PostgreSQL restart -m immediate", postgres_restart, allow_503=True),
    Scenario("relay dies after confirm", relay_dies_after_confirm, copies_expected=True),
    Scenario("memory alarm 5 s", alarm("memory")),
    Scenario("disk alarm 5 s", alarm("disk")),
    Scenario("poison message, DLQ, replay", poison_message),
    Scenario("reordered (analyzer frozen, ratings first)", reordered),
    Scenario("events redelivered", redelivered, fault_at=6.0, copies_expected=True),
)
