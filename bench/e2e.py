"""Benchmark (run by hand: `make bench`): intake requests/s, and the loop's issues/s and latency.

Starts the four services as processes on an isolated database and vhost, then
1. posts single issues to intake with a fixed concurrency and times the answers;
2. posts issues that state a satisfaction level ("满意度为中") and times each one until its
   `improvement.followup_required` reaches a subscriber bound to kefu.events — the whole loop
   intake -> feedback -> improvement through the outboxes and the broker — once as fast as it
   goes (throughput), once paced well under capacity (latency without queueing).
Prints the figures and writes them to bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika
import httpx

from deploy.launcher import ServiceProcesses
from shared.settings import SERVICES
from tests.support import BOOTSTRAP_KEY, event_tap, free_port, isolated_stack, queue_depth

RESULTS = Path(__file__).resolve().parent / "results"
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def summary(latencies_ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(latencies_ms), 2),
        "p90_ms": round(percentile(latencies_ms, 90), 2),
        "p99_ms": round(percentile(latencies_ms, 99), 2),
        "max_ms": round(max(latencies_ms), 2),
    }


def issue(run: str, index: int, text: str) -> dict[str, Any]:
    return {
        "channel": "chat",
        "external_id": f"bench-{run}-{index}",
        "customer": {"name": f"客户{index}", "phone": f"139{index % 100_000_000:08d}"},
        "text": text,
    }


async def intake_throughput(url: str, count: int, concurrency: int) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    latencies: list[float] = []
    errors: list[str] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)
    limits = httpx.Limits(max_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, headers=AUTH, limits=limits, timeout=30) as client:

        async def worker() -> None:
            while not queue.empty():
                index = queue.get_nowait()
                started = time.perf_counter()
                try:
                    response = await client.post(
                        "/v1/issues", json=issue(run, index, "需要更快的响应速度")
                    )
                    response.raise_for_status()
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))
                    continue
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "requests": count,
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "requests_per_second": round(len(latencies) / elapsed, 1),
        "errors": len(errors),
        "first_errors": errors[:3],
        **summary(latencies),
    }


async def loop_throughput(
    url: str, settings: Any, count: int, concurrency: int, rate: float | None = None
) -> dict[str, Any]:
    """Post ``count`` issues (``concurrency`` at a time, or paced at ``rate`` per second) and
    time each until its follow-up reaches a subscriber."""
    run = uuid.uuid4().hex[:8]
    sent_at: dict[str, float] = {}
    async with event_tap(settings, binding="improvement.#") as tap:
        semaphore = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=30) as client:

            async def send(index: int) -> None:
                if rate:
                    await asyncio.sleep(index / rate)
                async with semaphore:
                    started = time.perf_counter()
                    response = await client.post(
                        "/v1/issues", json=issue(run, index, "满意度为中，需要更快的响应速度")
                    )
                    response.raise_for_status()
                    sent_at[response.json()["issue_id"]] = started

            started = time.perf_counter()
            await asyncio.gather(*(send(index) for index in range(count)))
            deadline = time.monotonic() + 300
            while len({e["data"]["issue_id"] for e in tap.events} & sent_at.keys()) < count:
                if time.monotonic() > deadline:
                    raise TimeoutError("not every follow-up arrived within 300 s")
                await asyncio.sleep(0.05)
        arrived = {
            e["data"]["issue_id"]: message_seen
            for e, message_seen in zip(tap.events, tap.seen_at, strict=True)
            if e["data"]["issue_id"] in sent_at
        }
    latencies = [(arrived[i] - sent_at[i]) * 1000 for i in sent_at]
    elapsed = max(arrived.values()) - started
    return {
        "issues": count,
        "concurrency": concurrency,
        "offered_rate_per_second": rate,
        "seconds": round(elapsed, 3),
        "issues_per_second": round(count / elapsed, 1),
        "observed_event": "kefu.improvement.followup_required",
        **summary(latencies),
    }


async def quiet(settings: Any, services: tuple[str, ...]) -> None:
    """Wait until every consumer queue has stayed empty for a second: phases must not overlap."""
    connection = await aio_pika.connect_robust(settings.amqp_url)
    try:
        calm_since = None
        while calm_since is None or time.monotonic() - calm_since < 1:
            depths = [await queue_depth(connection, f"kefu.{s}") for s in services]
            if any(depths):
                calm_since = None
            elif calm_since is None:
                calm_since = time.monotonic()
            await asyncio.sleep(0.2)
    finally:
        await connection.close()


async def measure(url: str, settings: Any, args: argparse.Namespace) -> dict[str, Any]:
    await intake_throughput(url, 100, args.concurrency)  # warm-up
    intake = await intake_throughput(url, args.requests, args.concurrency)
    if args.intake_alone:
        return {"intake_single_issue_alone": intake}
    consumers = ("need_analyzer", "feedback", "improvement")
    await quiet(settings, consumers)
    # As fast as the loop goes: its throughput (latency here is mostly queueing).
    loop = await loop_throughput(url, settings, args.issues, args.concurrency)
    await quiet(settings, consumers)
    # Well under capacity: the latency of one issue through intake, feedback, improvement.
    paced = await loop_throughput(
        url, settings, args.paced_issues, args.concurrency, rate=args.rate
    )
    return {
        "intake_single_issue": intake,
        "loop_to_followup": loop,
        "loop_to_followup_paced": paced,
    }


def main(args: argparse.Namespace) -> dict[str, Any]:
    with isolated_stack() as settings, tempfile.TemporaryDirectory() as logs:
        group = ServiceProcesses(
            settings,
            env={"KEFU_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY, "KEFU_LOG_LEVEL": "WARNING"},
            ports={service: free_port() for service in SERVICES},
            services=("intake",) if args.intake_alone else SERVICES,
            log_dir=Path(logs),
        )
        group.start_all()
        try:
            group.wait_ready()
            figures = asyncio.run(measure(group.url("intake"), settings, args))
        finally:
            group.stop_all()
    return {
        "benchmark": "e2e",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        **figures,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--issues", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--paced-issues", type=int, default=100)
    parser.add_argument(
        "--intake-alone", action="store_true", help="run intake only: its own ceiling"
    )
    parser.add_argument("--rate", type=float, default=5.0, help="issues/s of the paced run")
    result = main(parser.parse_args())
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"e2e-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written to {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")
