"""Benchmark (run by hand: `make bench`): Kefu against the bare stack, in the same run.

Starts Kefu's services as processes on an isolated database and vhost and runs, one after the
other (each waits until the queues and outboxes are quiet):

a. single POST /v1/issues at 64 keep-alive connections, intake alone (the consumers not
   started), vs a bare FastAPI + one INSERT app (bench/ceilings.py);
b. POST /v1/issues/batch, 100 issues a request, a few at a time, vs the bare app's 100-row
   INSERT; every accepted issue must have its event in intake's outbox;
c. the whole loop, all four services: issues/s from the POST until its
   `kefu.improvement.followup_required` reaches a subscriber queue bound to kefu.events, for a
   mixed stream and for a hot theme, vs a bare consume -> INSERT -> publish -> ack stage;
d. the loop paced at a fixed rate: latency POST -> followup_required;
e. (in every row) CPU ms per issue of each service, PostgreSQL and RabbitMQ; peak RSS;
f. the hot theme again with two replicas of improvement.

Prints one table and writes it (JSON and Markdown) to bench/results/. docs/benchmarks.md
explains every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import queue
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import httpx
from aio_pika.abc import AbstractIncomingMessage

from bench import load
from bench.procs import Meter, memory_mb
from deploy.launcher import ROOT, ServiceProcesses
from shared.db import asyncpg_dsn
from shared.messaging.topology import declare_events_exchange
from shared.settings import SERVICES, Settings
from tests.support import BOOTSTRAP_KEY, free_port, isolated_stack

RESULTS = Path(__file__).resolve().parent / "results"
CONSUMERS = ("need_analyzer", "feedback", "improvement")
SHORT = {
    "intake": "intake",
    "need_analyzer": "analyzer",
    "feedback": "feedback",
    "improvement": "improvement",
    "postgres": "pg",
    "rabbitmq": "mq",
    "ceiling": "bare app",
    "client": "client",
}

# Each states a need or a problem and a satisfaction that is not "satisfied" (checked against
# shared/satisfaction.py by tests/e2e/test_bench_smoke.py), so every issue
# gets exactly one follow-up; together they spread over a dozen intents and many needs.
MIXED_TEXTS = (
    "满意度为中，需要更快的响应速度",
    "不满意，我要退款",
    "服务太差了，希望尽快修好屏幕",
    "一般般，希望客服态度好一点",
    "不太满意，需要发票",
    "给个差评，快递太慢了",
    "评分：中，请帮我修改收货地址",
    "3/5，希望能延长保修",
    "打个2分，我想换货",
    "不满意，账号登录不上去",
    "I'm not happy, I need a refund for order 1234",
    "not satisfied, please fix the broken screen",
    "satisfaction: medium, I want faster delivery",
    "would not recommend, the app keeps crashing",
    "meh, can you send me the invoice",
    "3 out of 5, I'd like to change my address",
    "not happy with the support, I need a replacement",
    "I'd give you a 4 out of 10, billing is wrong",
    "★★☆☆☆ 需要更快的退款",
    "不满意，价格太贵了希望打折",
    "满意度为低，会员积分没到账",
    "很失望，需要人工客服回电",
    "not satisfied, I want to cancel my subscription",
    "2/5, the password reset email never arrives",
    "not happy, please speed up shipping",
    "satisfaction: low, I need help with my warranty",
    "一般般，需要更详细的使用说明",
    "不太满意，希望增加夜间客服",
    "3星，希望包装更结实",
    "给个差评，商品和描述不符，我要退货",
    "很不满意，需要更快的发货",
    "满意度为中，需要更快的发货",
)
# An incident: every customer writes the same thing. Dissatisfied (not merely neutral), so the
# theme crosses the dissatisfied-share rule and improvement must propose, then update.
HOT_TEXT = "很不满意，快递一周了还没到，需要尽快发货"
HOT_THEMES = ("intent:delivery", "need:deliver:package")


@dataclass
class Sizes:
    post_seconds: float
    warmup_seconds: float
    fallback_requests: int
    batch_requests: int
    batch_concurrency: int
    loop_issues: int
    loop_connections: int
    paced_issues: int
    paced_rate: float
    stage_messages: int
    drain_seconds: float
    quiet_seconds: float
    calm_seconds: float = 1.5


FULL = Sizes(10, 2, 6000, 40, 4, 3000, 64, 2000, 200.0, 5000, 90, 90)
QUICK = Sizes(1, 0.5, 300, 3, 2, 60, 16, 40, 40.0, 300, 30, 30)


_T0 = time.monotonic()


def progress(message: str) -> None:
    print(f"[{time.monotonic() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------- the table


@dataclass
class Row:
    scenario: str
    kefu: str
    ceiling: str = "-"
    ratio: str = "-"
    p50: str = "-"
    p99: str = "-"
    lost: str = "-"
    duplicated: str = "-"
    cpu: str = "-"
    notes: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


COLUMNS = (
    "scenario",
    "Kefu",
    "ceiling",
    "ratio",
    "p50",
    "p99",
    "lost",
    "duplicated",
    "CPU ms per issue",
)


def _cells(row: Row) -> list[str]:
    return [
        row.scenario,
        row.kefu,
        row.ceiling,
        row.ratio,
        row.p50,
        row.p99,
        row.lost,
        row.duplicated,
        row.cpu,
    ]


def markdown(rows: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(row)) + " |" for row in rows]
    notes = [f"- **{row.scenario}**: {'; '.join(row.notes)}" for row in rows if row.notes]
    return "\n".join(lines + (["", *notes] if notes else [])) + "\n"


def text_table(rows: Sequence[Row]) -> str:
    table = [list(COLUMNS)] + [_cells(row) for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    out = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)) for line in table]
    out.insert(1, "  ".join("-" * w for w in widths))
    for row in rows:
        for note in row.notes:
            out.append(f"  {row.scenario}: {note}")
    return "\n".join(out) + "\n"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def _ratio(kefu: float, ceiling: float | None) -> str:
    return f"{kefu / ceiling:.2f}x" if ceiling else "-"


def _cpu(meter: Meter, units: int, names: Sequence[str]) -> str:
    per = meter.per_unit_ms(units)
    return " · ".join(f"{SHORT.get(n, n)} {per[n]:.2f}" for n in names if n in per)


# ------------------------------------------------------------------------------ the stack


class Bench:
    def __init__(
        self,
        settings: Settings,
        sizes: Sizes,
        log_dir: Path,
        use_wrk: bool,
        otlp_endpoint: str | None = None,
    ) -> None:
        self.settings = settings
        self.sizes = sizes
        self.use_wrk = use_wrk
        self.log_dir = log_dir
        self.admin_dsn = asyncpg_dsn(settings.admin_database_url)
        self.group = ServiceProcesses(
            settings,
            env={
                "KEFU_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY,
                "KEFU_LOG_LEVEL": "WARNING",
                "KEFU_OUTBOX_POLL_SECONDS": "1.0",
                "KEFU_DELIVERY_LIMIT": "5",
                # One key drives every scenario: the bench measures capacity, not the limit.
                "KEFU_RATE_LIMIT_PER_SECOND": "0",
                # --tracing: every service exports its spans to the bench's local sink.
                **({"KEFU_OTLP_ENDPOINT": otlp_endpoint} if otlp_endpoint else {}),
            },
            ports={service: free_port() for service in SERVICES},
            log_dir=log_dir,
        )
        self.host = settings.host
        self.ceiling_pid: int | None = None
        self.memory: dict[str, dict[str, float]] = {}

    def groups(self) -> dict[str, list[int]]:
        found = {s: list(self.group.pids(s).values()) for s in SERVICES}
        found = {s: pids for s, pids in found.items() if pids}
        if self.ceiling_pid is not None:
            found["ceiling"] = [self.ceiling_pid]
        found["client"] = [os.getpid()]
        return found

    def instances(self) -> dict[str, int]:
        return {name: pid for s in SERVICES for name, pid in self.group.pids(s).items()}

    def port(self, service: str) -> int:
        return self.group.ports[service]

    def keep_memory(self, meter: Meter) -> None:
        for name, rss in meter.peak_rss_mb.items():
            if rss:
                entry = self.memory.setdefault(name, {"peak_rss_mb": 0.0, "hwm_mb": 0.0})
                entry["peak_rss_mb"] = round(max(entry["peak_rss_mb"], rss), 1)

    def final_memory(self) -> None:
        for service in SERVICES:
            for name, pid in self.group.pids(service).items():
                entry = self.memory.setdefault(name, {"peak_rss_mb": 0.0, "hwm_mb": 0.0})
                entry["hwm_mb"] = round(memory_mb(pid)[1], 1)

    @contextmanager
    def ceiling_app(self) -> Iterator[int]:
        port = free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.ceilings",
                "serve",
                "--dsn",
                self.admin_dsn,
                "--port",
                str(port),
                "--pool",
                str(self.settings.db_pool_size),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"http://{self.host}:{port}/healthz", timeout=1).is_success:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the bare app did not start")
                time.sleep(0.1)
            self.ceiling_pid = proc.pid
            yield port
        finally:
            self.ceiling_pid = None
            proc.terminate()
            proc.wait(15)

    async def quiet(self, services: Sequence[str], limit: float | None = None) -> float:
        """Wait until every consumer queue is empty, every outbox published and every inbox
        still for a second and a half: scenarios must not overlap. Returns the seconds waited;
        gives up after ``limit`` (the table then says what was left)."""
        limit = self.sizes.quiet_seconds if limit is None else limit
        started = time.monotonic()
        connection = await aio_pika.connect(self.settings.amqp_url)
        db = await asyncpg.connect(self.admin_dsn)
        try:
            channel = await connection.channel()
            calm_since: float | None = None
            last: tuple[int, ...] | None = None
            while time.monotonic() - started < limit:
                depths = []
                for service in services:
                    if service in CONSUMERS:
                        declared = await channel.declare_queue(f"kefu.{service}", passive=True)
                        depths.append(declared.declaration_result.message_count or 0)
                for service in services:
                    depths.append(
                        await db.fetchval(
                            f"SELECT count(*) FROM {service}.outbox WHERE published_at IS NULL"
                        )
                    )
                inboxes = tuple(
                    [await db.fetchval(f"SELECT count(*) FROM {s}.inbox") for s in services]
                )
                if any(depths) or inboxes != last:
                    calm_since = None
                elif calm_since is None:
                    calm_since = time.monotonic()
                elif time.monotonic() - calm_since >= self.sizes.calm_seconds:
                    return time.monotonic() - started
                last = inboxes
                await asyncio.sleep(0.25)
            return time.monotonic() - started
        finally:
            await db.close()
            await connection.close()


# ----------------------------------------------------------------------- the subscriber tap


class Tap:
    """A subscriber queue bound to kefu.events (improvement.#), consumed on its own thread and
    event loop so that the load generator cannot delay the arrival times it records."""

    def __init__(self, amqp_url: str) -> None:
        self.amqp_url = amqp_url
        self.records: list[tuple[float, str, dict[str, Any]]] = []
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._errors: queue.Queue[BaseException] = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Tap:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError(f"tap did not start: {list(self._errors.queue)}")
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self._errors.put(exc)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        connection = await aio_pika.connect(self.amqp_url)
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=2000)
            exchange = await declare_events_exchange(channel)
            tap = await channel.declare_queue(exclusive=True, auto_delete=True)
            await tap.bind(exchange, routing_key="improvement.#")

            async def on_message(message: AbstractIncomingMessage) -> None:
                seen = time.perf_counter()
                event = json.loads(message.body)
                self.records.append((seen, event["type"], event["data"]))

            await tap.consume(on_message, no_ack=True)
            self._ready.set()
            await self._stop.wait()
        finally:
            await connection.close()

    def since(self, index: int, event_type: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, d) for t, kind, d in self.records[index:] if kind == event_type]


# ------------------------------------------------------------------------------- scenarios


async def single_post(bench: Bench) -> Row:
    s = bench.sizes
    run_id = uuid.uuid4().hex[:8]

    async def drive(url: str, port: int, token: str | None, tag: str) -> tuple[load.HttpRun, Meter]:
        await load.single_posts(
            url,
            bench.host,
            port,
            seconds=s.warmup_seconds,
            connections=64,
            run_id=f"{run_id}w{tag}",
            token=token,
            fallback_requests=max(100, s.fallback_requests // 10),
            use_wrk=bench.use_wrk,
        )
        await bench.quiet(("intake",))
        with Meter(bench.groups, bench.instances) as meter:
            run = await load.single_posts(
                url,
                bench.host,
                port,
                seconds=s.post_seconds,
                connections=64,
                run_id=f"{run_id}{tag}",
                token=token,
                fallback_requests=s.fallback_requests,
                use_wrk=bench.use_wrk,
            )
        return run, meter

    with bench.ceiling_app() as port:
        bare, bare_meter = await drive(f"http://{bench.host}:{port}", port, None, "c")
    kefu, meter = await drive(bench.group.url("intake"), bench.port("intake"), BOOTSTRAP_KEY, "k")
    relay_wait = await bench.quiet(("intake",))
    bench.keep_memory(meter)
    accepted = kefu.count(202)
    bare_ok = bare.count(202)
    rate, bare_rate = accepted / kefu.seconds, bare_ok / bare.seconds
    return Row(
        scenario="a. single POST, 64 conns, intake alone",
        kefu=f"{rate:.0f} accepted/s",
        ceiling=f"{bare_rate:.0f} /s",
        ratio=_ratio(rate, bare_rate),
        p50=_ms(kefu.p50_ms if kefu.p50_ms is not None else kefu.summary()["p50_ms"]),
        p99=_ms(kefu.summary()["p99_ms"]),
        lost=f"5xx {kefu.server_errors} (503: {kefu.statuses[503]}), time-outs {kefu.timeouts}",
        cpu=_cpu(meter, max(accepted, 1), ("intake", "postgres", "rabbitmq", "client")),
        notes=[
            f"load: {kefu.tool}, {kefu.requests} requests in {kefu.seconds:.1f} s; client CPU "
            f"{1000 * kefu.client_cpu_seconds / max(kefu.requests, 1):.2f} ms per request",
            f"bare app p50 {_ms(bare.summary()['p50_ms'])} p99 {_ms(bare.summary()['p99_ms'])}, "
            f"5xx {bare.server_errors}, CPU {_cpu(bare_meter, max(bare_ok, 1), ('ceiling',))}",
            f"statuses {dict(kefu.statuses)}; the relay then needed {relay_wait:.1f} s to "
            "publish the backlog",
        ],
        figures={"kefu": kefu.summary(), "ceiling": bare.summary(), "cpu_s": meter.cpu},
    )


def _batch_requests(bench: Bench, port: int, token: str | None, run_id: str) -> list[bytes]:
    s = bench.sizes
    return [
        load.post_request(
            bench.host,
            port,
            "/v1/issues/batch",
            json.dumps(
                {
                    "items": [
                        load.issue_body(run_id, r * 100 + i, load.CUSTOMER_TEXT, channel="web")
                        for i in range(100)
                    ]
                },
                ensure_ascii=False,
            ).encode(),
            token,
        )
        for r in range(s.batch_requests)
    ]


async def batch_ingest(bench: Bench) -> Row:
    s = bench.sizes
    run_id = uuid.uuid4().hex[:8]

    def accepted_in(replies: list[bytes]) -> int:
        return sum(
            1 for body in replies for item in json.loads(body)["results"] if item["status"] == 202
        )

    async def drive(port: int, token: str | None, tag: str) -> tuple[load.HttpRun, Meter, int]:
        replies: list[bytes] = []
        bodies = _batch_requests(bench, port, token, f"{run_id}{tag}")

        def keep(_: int, __: float, status: int, body: bytes) -> None:
            if status == 200:
                replies.append(body)

        with Meter(bench.groups, bench.instances) as meter:
            run = await load.closed_loop(
                bench.host, port, bodies, s.batch_concurrency, request_timeout=60, on_reply=keep
            )
        return run, meter, accepted_in(replies)

    with bench.ceiling_app() as port:
        bare, _, bare_accepted = await drive(port, None, "c")
    kefu, meter, accepted = await drive(bench.port("intake"), BOOTSTRAP_KEY, "k")
    await bench.quiet(("intake",))
    bench.keep_memory(meter)
    db = await asyncpg.connect(bench.admin_dsn)
    try:
        in_outbox = await db.fetchval(
            "SELECT count(*) FROM intake.outbox WHERE type = 'kefu.issue.received' "
            "AND payload->'data'->>'external_id' LIKE $1",
            f"bench-{run_id}k-%",
        )
    finally:
        await db.close()
    rate, bare_rate = accepted / kefu.seconds, bare_accepted / bare.seconds
    summary = kefu.summary()
    return Row(
        scenario=f"b. batch POST, 100/request, {s.batch_concurrency} at a time",
        kefu=f"{rate:.0f} issues/s",
        ceiling=f"{bare_rate:.0f} /s",
        ratio=_ratio(rate, bare_rate),
        p50=_ms(summary["p50_ms"]),
        p99=_ms(summary["p99_ms"]),
        lost=f"{accepted - in_outbox} without event; 5xx {kefu.server_errors}",
        cpu=_cpu(meter, max(accepted, 1), ("intake", "postgres", "rabbitmq", "client")),
        notes=[
            f"{accepted} of {100 * s.batch_requests} items accepted, {in_outbox} "
            "issue.received events in intake's outbox; latency is per request of 100"
        ],
        figures={
            "kefu": summary,
            "ceiling": bare.summary(),
            "accepted": accepted,
            "outbox_events": in_outbox,
            "cpu_s": meter.cpu,
        },
    )


async def stage_ceiling(bench: Bench) -> dict[str, Any]:
    prefetch = bench.settings.prefetch
    batch = int(getattr(bench.settings, "consumer_batch_size", prefetch))
    out = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "bench.ceilings",
            "stage",
            "--dsn",
            bench.admin_dsn,
            "--amqp",
            bench.settings.amqp_url,
            "--count",
            str(bench.sizes.stage_messages),
            "--prefetch",
            str(prefetch),
            "--batch",
            str(batch),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    line = next(x for x in out.stdout.splitlines() if x.startswith("KEFU-BENCH "))
    figures: dict[str, Any] = json.loads(line.removeprefix("KEFU-BENCH "))
    return figures


@dataclass
class LoopResult:
    posted: int
    accepted: int
    completed_in_time: int
    seconds: float
    issues_per_second: float
    latencies_ms: list[float]
    lost: int
    duplicated_followups: int
    proposals: Counter[str]
    updates: Counter[str]
    http: load.HttpRun
    meter: Meter
    drained: bool


async def loop_run(
    bench: Bench, tap: Tap, texts: Sequence[str], count: int, rate: float | None
) -> LoopResult:
    s = bench.sizes
    run_id = uuid.uuid4().hex[:8]
    port = bench.port("intake")
    cycle = itertools.cycle(texts)
    bodies = [
        load.post_request(
            bench.host,
            port,
            "/v1/issues",
            json.dumps(load.issue_body(run_id, i, next(cycle)), ensure_ascii=False).encode(),
            BOOTSTRAP_KEY,
        )
        for i in range(count)
    ]
    sent_at: dict[str, float] = {}

    def keep(_: int, started: float, status: int, body: bytes) -> None:
        if status == 202:
            sent_at[json.loads(body)["issue_id"]] = started

    mark = len(tap.records)
    with Meter(bench.groups, bench.instances) as meter:
        if rate is None:
            http = await load.closed_loop(
                bench.host, port, bodies, s.loop_connections, on_reply=keep
            )
        else:
            http = await load.open_loop(
                bench.host, port, bodies, rate, s.loop_connections, on_reply=keep
            )
        deadline = time.perf_counter() + s.drain_seconds
        while time.perf_counter() < deadline:
            seen = {d["issue_id"] for _, d in tap.since(mark, "kefu.improvement.followup_required")}
            if sent_at.keys() <= seen:
                break
            await asyncio.sleep(0.05)
    first_arrival: dict[str, float] = {}
    for seen_at, data in tap.since(mark, "kefu.improvement.followup_required"):
        if data["issue_id"] in sent_at:
            first_arrival.setdefault(data["issue_id"], seen_at)
    in_time = len(first_arrival)
    start = min(sent_at.values(), default=time.perf_counter())
    end = max(first_arrival.values(), default=time.perf_counter())
    latencies = [(first_arrival[i] - sent_at[i]) * 1000 for i in first_arrival]
    # Then let everything settle (bounded) and count what never came, and what came twice.
    waited = await bench.quiet(SERVICES)
    drained = waited < s.quiet_seconds
    per_issue = Counter(
        d["issue_id"]
        for _, d in tap.since(mark, "kefu.improvement.followup_required")
        if d["issue_id"] in sent_at
    )
    proposals: Counter[str] = Counter()
    updates: Counter[str] = Counter()
    for _, kind, data in tap.records:
        key = f"{data.get('theme_kind')}:{data.get('theme_key')}"
        if kind == "kefu.improvement.proposed":
            proposals[key] += 1
        elif kind == "kefu.improvement.updated":
            updates[key] += 1
    return LoopResult(
        posted=count,
        accepted=len(sent_at),
        completed_in_time=in_time,
        seconds=end - start,
        issues_per_second=in_time / (end - start) if end > start else 0.0,
        latencies_ms=latencies,
        lost=len(sent_at.keys() - per_issue.keys()),
        duplicated_followups=sum(n - 1 for n in per_issue.values() if n > 1),
        proposals=proposals,
        updates=updates,
        http=http,
        meter=meter,
        drained=drained,
    )


def loop_row(name: str, result: LoopResult, stage: dict[str, Any], hot: bool) -> Row:
    ceiling = stage["messages_per_second"]
    duplicate_proposals = sum(n - 1 for n in result.proposals.values() if n > 1)
    lat = result.latencies_ms
    notes = [
        f"{result.accepted} of {result.posted} POSTs accepted "
        f"(statuses {dict(result.http.statuses)}, time-outs {result.http.timeouts}); "
        f"{result.completed_in_time} follow-ups within the drain limit",
    ]
    if not result.drained:
        notes.append("queues were NOT quiet after the drain limit: later rows overlap")
    if hot:
        raised = {t: result.proposals[t] for t in HOT_THEMES}
        updated = {t: result.updates[t] for t in HOT_THEMES}
        notes.append(f"hot theme proposals raised {raised}, updated {updated} (whole run)")
    names = (*SERVICES, "postgres", "rabbitmq", "client")
    return Row(
        scenario=name,
        kefu=f"{result.issues_per_second:.0f} issues/s",
        ceiling=f"{ceiling:.0f} msg/s",
        ratio=_ratio(result.issues_per_second, ceiling),
        p50=_ms(load.percentile(lat, 50) if lat else None),
        p99=_ms(load.percentile(lat, 99) if lat else None),
        lost=str(result.lost),
        duplicated=f"{result.duplicated_followups} follow-ups, {duplicate_proposals} proposals",
        cpu=_cpu(result.meter, max(result.completed_in_time, 1), names),
        notes=notes,
        figures={
            "posted": result.posted,
            "accepted": result.accepted,
            "followups_in_time": result.completed_in_time,
            "seconds": round(result.seconds, 3),
            "issues_per_second": round(result.issues_per_second, 1),
            "p50_ms": load.percentile(lat, 50) if lat else None,
            "p99_ms": load.percentile(lat, 99) if lat else None,
            "lost": result.lost,
            "duplicated_followups": result.duplicated_followups,
            "proposals": dict(result.proposals),
            "updates": dict(result.updates),
            "http": result.http.summary(),
            "cpu_s": result.meter.cpu,
            "drained": result.drained,
        },
    )


async def measure(bench: Bench) -> tuple[list[Row], dict[str, Any]]:
    s = bench.sizes
    progress("a. single POST: bare app, then intake")
    rows = [await single_post(bench)]
    progress("b. batch POST: bare app, then intake")
    rows.append(await batch_ingest(bench))
    progress("starting the consumers")
    # The consumers start now, on an empty queue (the events of a and b went to the archive).
    waited = await bench.quiet(("intake",))
    progress(f"intake's outbox published ({waited:.1f} s)")
    for service in CONSUMERS:
        bench.group.start(service)
    await asyncio.to_thread(bench.group.wait_ready, 90)
    progress("c. ceiling: bare consumer stage")
    stage = await stage_ceiling(bench)
    with Tap(bench.settings.amqp_url) as tap:
        await bench.quiet(SERVICES)
        progress("c. loop, mixed stream")
        mixed = await loop_run(bench, tap, MIXED_TEXTS, s.loop_issues, None)
        rows.append(
            loop_row(f"c. loop, mixed stream ({len(MIXED_TEXTS)} texts)", mixed, stage, False)
        )
        bench.keep_memory(mixed.meter)
        progress("c. loop, hot theme")
        hot = await loop_run(bench, tap, (HOT_TEXT,), s.loop_issues, None)
        rows.append(loop_row("c. loop, hot theme", hot, stage, True))
        bench.keep_memory(hot.meter)
        progress("d. loop, paced")
        paced = await loop_run(bench, tap, MIXED_TEXTS, s.paced_issues, s.paced_rate)
        row = loop_row(f"d. loop paced at {s.paced_rate:.0f}/s (mixed)", paced, stage, False)
        row.ceiling = row.ratio = "-"
        row.kefu = f"{paced.issues_per_second:.0f} issues/s"
        rows.append(row)
        bench.keep_memory(paced.meter)
        progress("f. second replica of improvement, hot theme again")
        bench.group.start("improvement", replica=2)
        await asyncio.to_thread(bench.group.wait_ready, 90, ["improvement"])
        await bench.quiet(SERVICES)
        scaled = await loop_run(bench, tap, (HOT_TEXT,), s.loop_issues, None)
        row = loop_row("f. loop, hot theme, 2 x improvement", scaled, stage, True)
        row.notes.append(
            f"vs 1 replica: {scaled.issues_per_second:.0f} / {hot.issues_per_second:.0f} "
            f"= {_ratio(scaled.issues_per_second, hot.issues_per_second)}"
        )
        rows.append(row)
        bench.keep_memory(scaled.meter)
    bench.final_memory()
    progress("done")
    rows[2].notes.append(
        f"ceiling: bare stage, {stage['messages']} messages, prefetch {stage['prefetch']}, "
        f"batches of up to {stage['batch']}, {stage['cpu_ms_per_message']} CPU ms per message"
    )
    return rows, {"stage_ceiling": stage}


def main(args: argparse.Namespace, sizes: Sizes | None = None) -> dict[str, Any]:
    sizes = sizes or (QUICK if args.quick else FULL)
    if args.paced_rate:
        sizes = replace(sizes, paced_rate=args.paced_rate)
    started = time.monotonic()
    sink = otlp_sink() if args.tracing else None
    exported: dict[str, int] = {}
    with isolated_stack() as settings, tempfile.TemporaryDirectory() as logs:
        bench = Bench(
            settings,
            sizes,
            Path(logs),
            use_wrk=not args.no_wrk,
            otlp_endpoint=sink[1] if sink else None,
        )
        bench.group.start("intake")
        try:
            bench.group.wait_ready(60)
            rows, extra = asyncio.run(measure(bench))
        except BaseException:
            for log in sorted(Path(logs).glob("*.log")):  # the logs go with the stack
                tail = log.read_text(errors="replace").splitlines()[-15:]
                print(f"--- {log.name}\n" + "\n".join(tail), file=sys.stderr)
            raise
        finally:
            bench.group.stop_all()
            if sink is not None:
                exported = stop_otlp_sink(sink[0])
    rss = " · ".join(
        f"{name} {m['peak_rss_mb']:.0f}/{m['hwm_mb']:.0f}" for name, m in bench.memory.items()
    )
    return {
        "benchmark": "e2e",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        # --tracing: spans exported to the local sink (its export requests and their bytes).
        "tracing": {"on": True, **exported} if args.tracing else {"on": False},
        "seconds": round(time.monotonic() - started, 1),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_generator": "wrk" if (load.wrk_path() and not args.no_wrk) else "asyncio",
        "sizes": sizes.__dict__,
        "memory_mb": bench.memory,
        "memory_line": f"RSS MB, peak sampled under load / VmHWM: {rss}",
        "rows": [
            {
                "scenario": r.scenario,
                **dict(zip(COLUMNS[1:], _cells(r)[1:], strict=True)),
                "notes": r.notes,
                "figures": r.figures,
            }
            for r in rows
        ],
        "markdown": markdown(rows),
        "text": text_table(rows),
        **extra,
    }


def write(result: dict[str, Any], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"e2e-{datetime.now(UTC):%Y%m%dT%H%M%S}{'-quick' if result['quick'] else ''}"
    (folder / f"{stem}.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    tracing = result["tracing"]
    traced = (
        f", tracing on: {tracing.get('requests', 0)} OTLP exports, {tracing.get('bytes', 0)} bytes"
        if tracing["on"]
        else ""
    )
    header = (
        f"# make bench, {result['at']} ({result['machine']['cpus']} CPUs, load generator "
        f"{result['load_generator']}, {result['seconds']} s{traced})\n\n"
    )
    (folder / f"{stem}.md").write_text(
        header + result["markdown"] + "\n" + result["memory_line"] + "\n"
    )
    return folder / f"{stem}.md"


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument("--no-wrk", action="store_true", help="use the asyncio client only")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the results")
    parser.add_argument(
        "--paced-rate", type=float, help="issues/s of the paced run d (default: 200)"
    )
    parser.add_argument(
        "--tracing",
        action="store_true",
        help="tracing on: every service exports its spans to a local OTLP sink",
    )
    return parser


def otlp_sink() -> tuple[subprocess.Popen[str], str]:
    """The local OTLP/HTTP sink (bench/otlp_sink.py) in a process of its own, and its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.otlp_sink", "--port", str(port)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)
    return process, f"http://127.0.0.1:{port}"


def stop_otlp_sink(process: subprocess.Popen[str]) -> dict[str, int]:
    process.terminate()
    out, _ = process.communicate(timeout=10)
    counts: dict[str, int] = json.loads(out.strip().splitlines()[-1])
    return counts


if __name__ == "__main__":
    arguments = parser().parse_args()
    outcome = main(arguments)
    written = write(outcome, arguments.out)
    print(outcome["text"])
    print(outcome["memory_line"])
    print(f"took {outcome['seconds']} s; written to {written} (and .json)")
