"""Kefu under supervision on the suite's own stack, a channel system posting issues, a
subscriber recording every event, and the ledger of one scenario."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
from aio_pika.abc import AbstractIncomingMessage

from bench.e2e import MIXED_TEXTS
from deploy import broker, database
from deploy.launcher import RestartPolicy, ServiceProcesses, Supervisor
from shared.contracts import CLOUDEVENTS_CONTENT_TYPE
from shared.db import asyncpg_dsn
from shared.messaging.topology import (
    CONSUMES,
    EVENTS_EXCHANGE,
    dead_letter_queue_name,
    service_queue_name,
)
from shared.settings import SERVICES, Settings
from tests.chaos.stack import Postgres, RabbitMQ
from tests.support import BOOTSTRAP_KEY, free_port

CONSUMERS = tuple(service for service, types in CONSUMES.items() if types)
FOLLOWUP = "kefu.improvement.followup_required"
TAP_QUEUE = "chaos.tap"
# Each of these is produced once per issue; two of one type with different ids is a second
# effect. (Verdicts may legitimately be replaced: only two identical ones are a duplicate.)
ONCE_PER_ISSUE = ("kefu.issue.received", "kefu.issue.analyzed", FOLLOWUP)
VERDICT = "kefu.satisfaction.evaluated"
# Seconds of load after a fault clears.
AFTER_CLEARING = 3.0
# Longest from a fault's clearing to the first follow-up of an issue posted after it: the
# backlog drains first. Seconds on a quiet box; the limit leaves room for a busy one and still
# catches a back-off that grew without bound.
RECOVERY_LIMIT = 30.0


def say(line: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {line}", flush=True)


# ------------------------------------------------------------------------------- the stack


@dataclass
class Kefu:
    """Own PostgreSQL and RabbitMQ, the schemas and topology set up, the four services run
    under the same Supervisor as `kefu run` (restart with back-off)."""

    home: Path
    postgres: Postgres = field(init=False)
    rabbitmq: RabbitMQ = field(init=False)
    settings: Settings = field(init=False)
    group: ServiceProcesses = field(init=False)
    failpoints: Path = field(init=False)
    supervisor_log: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.postgres = Postgres(self.home / "postgres")
        self.rabbitmq = RabbitMQ(self.home / "rabbitmq")
        self.failpoints = self.home / "failpoints"

    def start(self) -> None:
        say("starting the suite's own PostgreSQL and RabbitMQ")
        self.postgres.start()
        self.rabbitmq.start()
        self.settings = Settings(
            admin_database_url=self.postgres.admin_url,
            amqp_url=self.rabbitmq.amqp_url,
            bootstrap_api_key=BOOTSTRAP_KEY,
            delivery_limit=5,
        )
        database.bootstrap(self.settings.admin_database_url, {})
        database.migrate(self.settings.admin_database_url)
        broker.declare_sync(self.settings)
        self.failpoints.mkdir(exist_ok=True)
        os.chmod(self.failpoints, 0o777)
        (self.home / "logs").mkdir(exist_ok=True)
        self.group = ServiceProcesses(
            self.settings,
            env={
                "KEFU_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY,
                "KEFU_LOG_LEVEL": "WARNING",
                "KEFU_LOG_JSON": "false",
                "KEFU_OUTBOX_POLL_SECONDS": "0.5",
                "KEFU_DELIVERY_LIMIT": str(self.settings.delivery_limit),
                "KEFU_FAILPOINTS_DIR": str(self.failpoints),
            },
            ports={service: free_port() for service in SERVICES},
            log_dir=self.home / "logs",
        )
        self.group.start_all()
        self.group.wait_ready(timeout=120)
        supervisor = Supervisor(
            self.group, lambda: RestartPolicy.from_settings(self.settings), self._note
        )
        supervisor.started_all()

        def supervise() -> None:
            while not self._stop.wait(0.1):
                supervisor.tick()

        self._thread = threading.Thread(target=supervise, daemon=True)
        self._thread.start()
        say(f"Kefu is running (logs in {self.home / 'logs'})")

    def _note(self, line: str) -> None:
        self.supervisor_log.append(line)
        say(f"supervisor: {line}")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        with contextlib.suppress(AttributeError):
            self.group.stop_all()
        self.rabbitmq.stop()
        self.postgres.stop()

    def url(self, service: str) -> str:
        return self.group.url(service)

    def pid(self, service: str) -> int:
        return self.group.procs[service].pid

    def kill(self, service: str, sig: signal.Signals = signal.SIGKILL) -> None:
        os.kill(self.pid(service), sig)

    def arm(self, failpoint: str, content: str = "") -> None:
        (self.failpoints / failpoint).write_text(content)

    def disarm(self, failpoint: str) -> None:
        (self.failpoints / failpoint).unlink(missing_ok=True)

    async def ready(self, service: str) -> bool:
        """Back in full: /readyz is 200 with every check "ok" (it is 200 without the broker)."""
        try:
            async with httpx.AsyncClient(timeout=1) as client:
                answer = await client.get(f"{self.url(service)}/readyz")
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and all(v == "ok" for v in answer.json().values())

    async def wait_all_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not all([await self.ready(s) for s in SERVICES]):
            if time.monotonic() > deadline:
                raise TimeoutError("services not ready again")
            await asyncio.sleep(0.25)


@contextlib.contextmanager
def running_kefu(home: Path) -> Iterator[Kefu]:
    kefu = Kefu(home)
    try:
        kefu.start()
        yield kefu
    finally:
        kefu.stop()


# ------------------------------------------------------------------ the channel system


@dataclass
class Posted:
    external_id: str
    body: bytes
    first_try: float = 0.0
    accepted_at: float | None = None
    issue_id: str | None = None
    tries: int = 0


@dataclass
class Channel:
    """Posts issues at a steady rate as a channel system would: every issue is retried with the
    same body (same external_id, so intake answers a retry with the issue it stored) after a
    refusal or a lost connection, honouring Retry-After, until it is accepted."""

    base_url: str
    run: str
    statuses: Counter[int] = field(default_factory=Counter)
    # (monotonic time, status, Retry-After present, "Service busy": intake's back-pressure)
    server_errors: list[tuple[float, int, bool, bool]] = field(default_factory=list)
    connection_errors: int = 0
    # 4xx answers: the issue is refused for good (none is expected: every body is valid).
    refusals: list[str] = field(default_factory=list)
    posted: list[Posted] = field(default_factory=list)
    give_up_seconds: float = 120.0
    _texts: Iterator[str] = field(default_factory=lambda: itertools.cycle(MIXED_TEXTS))

    def new_issue(self, text: str | None = None) -> Posted:
        index = len(self.posted)
        external_id = f"chaos-{self.run}-{index}"
        body = {
            "channel": "chat",
            "external_id": external_id,
            "customer": {"name": f"客户{index}", "phone": f"139{index:08d}"},
            "text": text or next(self._texts),
        }
        issue = Posted(external_id, json.dumps(body, ensure_ascii=False).encode())
        self.posted.append(issue)
        return issue

    async def deliver(self, client: httpx.AsyncClient, issue: Posted) -> None:
        issue.first_try = time.monotonic()
        while time.monotonic() - issue.first_try < self.give_up_seconds:
            issue.tries += 1
            wait = 0.25
            try:
                reply = await client.post(f"{self.base_url}/v1/issues", content=issue.body)
            except httpx.HTTPError:
                self.connection_errors += 1
            else:
                self.statuses[reply.status_code] += 1
                if reply.status_code in (200, 202):
                    issue.accepted_at = time.monotonic()
                    issue.issue_id = reply.json()["issue_id"]
                    return
                if reply.status_code >= 500:
                    retry_after = reply.headers.get("retry-after")
                    busy = reply.status_code == 503 and '"Service busy"' in reply.text
                    self.server_errors.append(
                        (time.monotonic(), reply.status_code, retry_after is not None, busy)
                    )
                    if retry_after is not None:
                        wait = min(float(retry_after), 2.0)
                else:
                    self.refusals.append(f"{reply.status_code}: {reply.text[:200]}")
                    return
            await asyncio.sleep(wait)

    async def post_at(
        self, rate: float, client: httpx.AsyncClient, more: Callable[[], bool]
    ) -> None:
        """``rate`` new issues a second while ``more()``, whatever the answers (open loop)."""
        started = time.monotonic()
        tasks = []
        for index in itertools.count():
            await asyncio.sleep(max(0.0, started + index / rate - time.monotonic()))
            if not more():
                break
            tasks.append(asyncio.create_task(self.deliver(client, self.new_issue())))
        await asyncio.gather(*tasks)


@contextlib.asynccontextmanager
async def http_client() -> Any:
    async with httpx.AsyncClient(
        headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}", "Content-Type": "application/json"},
        timeout=httpx.Timeout(10.0),
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=64),
    ) as client:
        yield client


# ----------------------------------------------------------------------- the subscriber


@dataclass
class Seen:
    at: float
    id: str
    type: str
    data: dict[str, Any]
    redelivered: bool
    # What the redelivery scenario publishes again: the body and the properties consumers check.
    body: bytes
    user_id: str | None = None
    app_id: str | None = None

    def message(self) -> aio_pika.Message:
        return aio_pika.Message(
            body=self.body,
            content_type=CLOUDEVENTS_CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=self.id,
            type=self.type,
            app_id=self.app_id,
            user_id=self.user_id,
        )


@dataclass
class Tap:
    """A durable queue bound to every event, as a downstream subscriber binds: it keeps what
    arrives while the broker or its connection is away. The suite's measuring instrument
    reconnects by itself (a plain connection, opened again whenever it closes) rather than
    through aio-pika's robust connection, which is what the faults put to the test."""

    amqp_url: str
    seen: list[Seen] = field(default_factory=list)
    _task: asyncio.Task[None] | None = None
    _subscribed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._subscribe_for_good(), name="chaos-tap")
        await asyncio.wait_for(self._subscribed.wait(), 60)

    async def _subscribe_for_good(self) -> None:
        while True:
            try:
                connection = await aio_pika.connect(self.amqp_url, timeout=10)
            except Exception:
                await asyncio.sleep(1)
                continue
            try:
                closed = asyncio.Event()
                connection.close_callbacks.add(lambda *_, closed=closed: closed.set())
                channel = await connection.channel()
                channel.close_callbacks.add(lambda *_, closed=closed: closed.set())
                await channel.set_qos(prefetch_count=1000)
                exchange = await channel.get_exchange(EVENTS_EXCHANGE)
                queue = await channel.declare_queue(
                    TAP_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
                )
                await queue.bind(exchange, routing_key="#")
                await queue.consume(self._on_message)
                self._subscribed.set()
                await closed.wait()
            except Exception:
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await connection.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        event = json.loads(message.body)
        self.seen.append(
            Seen(
                time.monotonic(),
                event["id"],
                event["type"],
                event["data"],
                bool(message.redelivered),
                message.body,
                message.user_id,
                message.app_id,
            )
        )
        await message.ack()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task

    def of(self, event_type: str, issue_ids: set[str]) -> list[Seen]:
        return [
            s for s in self.seen if s.type == event_type and s.data.get("issue_id") in issue_ids
        ]


# --------------------------------------------------------------------------- the ledger


@dataclass
class Ledger:
    scenario: str
    attempted: int = 0
    accepted: int = 0
    lost: int = 0
    duplicate_effects: int = 0
    redelivered: int = 0
    http_5xx: int = 0
    http_503: int = 0
    # Intake shedding load ("Service busy", Retry-After 1) while a backlog drains: allowed.
    http_503_busy: int = 0
    connection_errors: int = 0
    dead_lettered: int = 0
    recovered_s: float | None = None
    drained_s: float | None = None
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def row(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "attempted": self.attempted,
            "accepted": self.accepted,
            "lost": self.lost,
            "duplicate_effects": self.duplicate_effects,
            "redelivered": self.redelivered,
            "http_5xx": self.http_5xx,
            "http_503": self.http_503,
            "http_503_busy": self.http_503_busy,
            "connection_errors": self.connection_errors,
            "dead_lettered": self.dead_lettered,
            "recovered_s": None if self.recovered_s is None else round(self.recovered_s, 1),
            "drained_s": None if self.drained_s is None else round(self.drained_s, 1),
            "seconds": round(self.seconds, 1),
            "passed": self.passed,
            "failures": self.failures,
            "notes": self.notes,
        }


def recovery(
    first_tries: dict[str, float], arrivals: dict[str, float], cleared_at: float
) -> tuple[float | None, float | None]:
    """(flow back, backlog drained), in seconds after the fault cleared.

    Flow back: the first follow-up after the clearing of an issue the fault held up (accepted
    before it cleared, its follow-up not yet out); with none held up, of an issue first posted
    after it. Drained: the last follow-up of an issue accepted before the clearing. Flow back
    measures Kefu's back-off; draining also depends on how long the fault lasted."""
    held = [arrivals[i] for i, t in first_tries.items() if t < cleared_at <= arrivals.get(i, 0)]
    fresh = [arrivals[i] for i, t in first_tries.items() if t >= cleared_at and i in arrivals]
    flowing = held or fresh
    before = [i for i, t in first_tries.items() if t < cleared_at]
    drained = (
        max((arrivals[i] for i in before), default=cleared_at) - cleared_at
        if all(i in arrivals for i in before)
        else None
    )
    return (
        min(flowing) - cleared_at if flowing else None,
        max(drained, 0.0) if drained is not None else None,
    )


def duplicate_effects(tap: Tap, issue_ids: set[str]) -> tuple[int, int]:
    """(second effects, redeliveries of one event) among the run's issues' events."""
    ids: dict[tuple[str, str], set[str]] = defaultdict(set)
    verdicts: dict[str, Counter[str]] = defaultdict(Counter)
    copies: Counter[str] = Counter()
    for s in tap.seen:
        issue = s.data.get("issue_id")
        if issue not in issue_ids:
            continue
        copies[s.id] += 1
        if copies[s.id] > 1:
            continue
        if s.type in ONCE_PER_ISSUE:
            ids[(s.type, issue)].add(s.id)
        elif s.type == VERDICT:
            verdicts[issue][json.dumps([s.data[k] for k in ("verdict", "score", "basis")])] += 1
    second = sum(len(found) - 1 for found in ids.values())
    second += sum(n - 1 for per in verdicts.values() for n in per.values())
    return second, sum(n - 1 for n in copies.values())


async def dead_letter_depths(amqp_url: str) -> dict[str, int]:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        depths = {}
        for service in CONSUMERS:
            queue = await channel.declare_queue(dead_letter_queue_name(service), passive=True)
            depths[service] = queue.declaration_result.message_count or 0
        return depths
    finally:
        await connection.close()


async def quiet(kefu: Kefu, limit: float = 60.0) -> bool:
    """Every consumer queue empty and every outbox published, twice in a row a second apart."""
    deadline = time.monotonic() + limit
    calm = 0
    while time.monotonic() < deadline:
        try:
            connection = await aio_pika.connect(kefu.settings.amqp_url)
            db = await asyncpg.connect(asyncpg_dsn(kefu.settings.admin_database_url))
        except Exception:
            await asyncio.sleep(1)
            continue
        try:
            channel = await connection.channel()
            busy = 0
            for service in CONSUMERS:
                queue = await channel.declare_queue(service_queue_name(service), passive=True)
                busy += queue.declaration_result.message_count or 0
            # Every service with an outbox (a service may have none, or no schema at all).
            for schema in await db.fetch(
                "SELECT table_schema FROM information_schema.tables WHERE table_name = 'outbox'"
            ):
                busy += await db.fetchval(
                    f"SELECT count(*) FROM {schema[0]}.outbox WHERE published_at IS NULL"
                )
        finally:
            await db.close()
            await connection.close()
        calm = calm + 1 if busy == 0 else 0
        if calm >= 2:
            return True
        await asyncio.sleep(1)
    return False


async def followups_in_database(kefu: Kefu, issue_ids: set[str]) -> Counter[str]:
    db = await asyncpg.connect(asyncpg_dsn(kefu.settings.admin_database_url))
    try:
        rows = await db.fetch(
            "SELECT issue_id::text AS issue FROM improvement.followups "
            "WHERE issue_id = ANY($1::uuid[])",
            list(issue_ids),
        )
    finally:
        await db.close()
    return Counter(row["issue"] for row in rows)


@dataclass
class Run:
    """One scenario's traffic: the channel posting, the tap recording, the clock of the fault."""

    kefu: Kefu
    tap: Tap
    channel: Channel
    started: float = field(default_factory=time.monotonic)
    cleared_at: float | None = None
    allow_503: bool = False
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def cleared(self) -> None:
        self.cleared_at = time.monotonic()


Fault = Callable[[Run], Any]


async def run_scenario(
    kefu: Kefu,
    tap: Tap,
    name: str,
    fault: Fault,
    *,
    rate: float,
    seconds: float,
    fault_at: float,
    allow_503: bool = False,
    copies_expected: bool = False,
    drain_seconds: float = 120.0,
    expect_dead_lettered: int = 0,
) -> Ledger:
    """Post ``rate`` issues/s for ``seconds`` (and at least AFTER_CLEARING seconds after the
    fault); ``fault_at`` seconds in, run ``fault`` (which calls ``run.cleared()`` once the fault
    is over); then wait for every accepted issue's follow-up, and write the ledger."""
    say(f"scenario {name}")
    await kefu.wait_all_ready()
    await quiet(kefu)
    run = Run(kefu, tap, Channel(kefu.url("intake"), uuid.uuid4().hex[:8]), allow_503=allow_503)

    def more() -> bool:
        # The load goes on for a while after the fault clears, to see the flow come back.
        now = time.monotonic()
        cleared = run.cleared_at
        return now - run.started < seconds or cleared is None or now - cleared < AFTER_CLEARING

    async with http_client() as client:
        posting = asyncio.create_task(run.channel.post_at(rate, client, more))
        await asyncio.sleep(fault_at)
        try:
            await fault(run)
        except Exception as exc:  # the ledger says so, and the next scenarios still run
            run.failures.append(f"the fault could not be injected: {exc!r}"[:300])
        if run.cleared_at is None:
            run.cleared()
        await posting
    ledger = Ledger(name)
    accepted = {p.issue_id: p for p in run.channel.posted if p.issue_id is not None}
    issue_ids = set(accepted)
    deadline = time.monotonic() + drain_seconds
    while time.monotonic() < deadline:
        done = {s.data["issue_id"] for s in tap.of(FOLLOWUP, issue_ids)}
        if len(done) >= len(issue_ids) - expect_dead_lettered:
            break
        await asyncio.sleep(0.5)
    if not await quiet(kefu):
        ledger.failures.append("queues or outboxes not quiet 60 s after the drain")
    arrivals: dict[str, float] = {}
    for s in tap.of(FOLLOWUP, issue_ids):
        arrivals.setdefault(s.data["issue_id"], s.at)
    ledger.attempted = len(run.channel.posted)
    ledger.accepted = len(accepted)
    ledger.lost = len(issue_ids - arrivals.keys())
    ledger.duplicate_effects, ledger.redelivered = duplicate_effects(tap, issue_ids)
    in_database = await followups_in_database(kefu, issue_ids)
    ledger.duplicate_effects += sum(n - 1 for n in in_database.values())
    ledger.connection_errors = run.channel.connection_errors
    for _, status, retry_after, busy in run.channel.server_errors:
        if status == 503 and retry_after and busy:
            ledger.http_503_busy += 1
        elif status == 503 and retry_after:
            ledger.http_503 += 1
        else:
            ledger.http_5xx += 1
    depths = await dead_letter_depths(kefu.settings.amqp_url)
    ledger.dead_lettered = sum(depths.values())
    assert run.cleared_at is not None
    ledger.recovered_s, ledger.drained_s = recovery(
        {i: p.first_try for i, p in accepted.items()}, arrivals, run.cleared_at
    )
    ledger.seconds = time.monotonic() - run.started
    ledger.failures.extend(run.failures)
    ledger.notes.extend(run.notes)
    ledger.notes.extend(kefu.supervisor_log)
    kefu.supervisor_log.clear()

    if run.channel.refusals:
        ledger.failures.append(f"refused: {run.channel.refusals[:3]}")
    if ledger.accepted < ledger.attempted:
        ledger.failures.append(f"{ledger.attempted - ledger.accepted} issues never accepted")
    if ledger.lost > expect_dead_lettered:
        ledger.failures.append(f"{ledger.lost} accepted issues without their follow-up")
    if ledger.duplicate_effects:
        ledger.failures.append(f"{ledger.duplicate_effects} duplicate effects")
    if copies_expected and not ledger.redelivered:
        ledger.failures.append("no event arrived twice: the fault did not happen as meant")
    if ledger.http_5xx:
        ledger.failures.append(f"{ledger.http_5xx} 5xx answers (other than 503 + Retry-After)")
    if ledger.http_503 and not allow_503:
        ledger.failures.append(f"{ledger.http_503} x 503 unavailable while the database was up")
    if ledger.dead_lettered != expect_dead_lettered:
        ledger.failures.append(f"dead-lettered {depths}, expected {expect_dead_lettered}")
    if ledger.recovered_s is None:
        ledger.failures.append("no issue posted after the fault cleared completed the loop")
    elif ledger.recovered_s > RECOVERY_LIMIT:
        ledger.failures.append(f"flow back after {ledger.recovered_s:.0f} s")
    return ledger


def markdown(ledgers: Sequence[Ledger]) -> str:
    head = (
        "| scenario | attempted | accepted | lost | duplicate effects | redelivered | 5xx | "
        "503 unavailable | 503 busy | connection errors | dead-lettered | flow back (s) | "
        "backlog drained (s) | result |"
    )
    lines = [head, "|" + "---|" * 14]
    for ledger in ledgers:
        r = ledger.row()
        result = "pass" if ledger.passed else "FAIL: " + "; ".join(ledger.failures)
        recovered = "-" if r["recovered_s"] is None else f"{r['recovered_s']:.1f}"
        drained = "-" if r["drained_s"] is None else f"{r['drained_s']:.1f}"
        lines.append(
            f"| {r['scenario']} | {r['attempted']} | {r['accepted']} | {r['lost']} | "
            f"{r['duplicate_effects']} | {r['redelivered']} | {r['http_5xx']} | "
            f"{r['http_503']} | {r['http_503_busy']} | {r['connection_errors']} | "
            f"{r['dead_lettered']} | "
            f"{recovered} | {drained} | {result} |"
        )
    return "\n".join(lines)
