"""improvement alone on a hot theme: events/s through its batch handlers, theme evaluations/s.

Every issue has the same intent and need (an incident). Each issue's IssueReceived,
IssueAnalyzed and SatisfactionEvaluated go through the real handlers in batches of ``--batch``
events, the way the consumer hands them over (inbox, handlers by type, one transaction), on
``--lanes`` concurrent lanes (a replica's batches, or two replicas), against an isolated
database. The theme worker runs beside them at its interval, as in the service.

    .venv/bin/python -m bench.improvement_hot_theme --issues 2000 --batch 100 --lanes 2
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from services.improvement.adapters.tables import followups, proposals
from services.improvement.bootstrap import definition as improvement
from services.improvement.domain.themes import Thresholds
from services.improvement.handlers import make_subscriptions
from services.improvement.handlers.themes import evaluate_changed_themes
from shared.contracts import (
    Analysis,
    CustomerRef,
    EventData,
    IssueAnalyzed,
    IssueReceived,
    SatisfactionEvaluated,
    Sentiment,
    new_event,
)
from shared.db import Database, Outbox, create_engine
from shared.messaging.consumer import record_in_inbox
from tests.support import isolated_stack


def issue_events(count: int, seed: int = 3) -> list[EventData]:
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    out: list[EventData] = []
    for index in range(count):
        issue_id = uuid.UUID(int=rng.getrandbits(128))
        customer = CustomerRef(customer_id=uuid.UUID(int=index + 1), name=f"客户{index}")
        at = start + timedelta(seconds=index * 5)
        roll = rng.random()
        verdict = "dissatisfied" if roll < 0.6 else "neutral" if roll < 0.8 else "satisfied"
        out += [
            IssueReceived(
                issue_id=issue_id,
                channel="chat",
                external_id=str(issue_id),
                customer=customer,
                text="满意度为中，需要更快的发货",
                received_at=at,
            ),
            IssueAnalyzed(
                issue_id=issue_id,
                channel="chat",
                customer=customer,
                text="满意度为中，需要更快的发货",
                analysis=Analysis(
                    language="zh",
                    need="更快的发货",
                    intent="delivery",
                    urgency="normal",
                    sentiment=Sentiment(label="negative", score=-0.5),
                ),
                analyzer_version="bench",
                analyzed_at=at + timedelta(seconds=1),
            ),
            SatisfactionEvaluated(
                issue_id=issue_id,
                customer=customer,
                score={"satisfied": 1.0, "neutral": 0.5, "dissatisfied": 0.0}[verdict],
                verdict=verdict,
                source="implicit",
                basis="text",
                evaluated_at=at + timedelta(seconds=2),
            ),
        ]
    return out


async def deliver(db: Database, handlers: dict[str, Any], batch: Sequence[EventData]) -> None:
    events = [new_event("/bench", data) for data in batch]
    async with db.unit_of_work() as uow:
        fresh = await record_in_inbox(uow, improvement.inbox, events)
        by_type: dict[str, list[EventData]] = {}
        for event, data in zip(events, batch, strict=True):
            if event.id in fresh:
                by_type.setdefault(data.TYPE, []).append(data)
        for event_type, items in by_type.items():
            await handlers[event_type].handle(items, uow)


def _time_statements(engine: Any) -> dict[str, list[float]]:
    """Time spent per statement (its first 70 characters), to find the slow one."""
    from sqlalchemy import event

    timings: dict[str, list[float]] = {}

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def before(conn: Any, *_args: Any) -> None:
        conn.info["began"] = time.perf_counter()

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def after(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        key = " ".join(statement.split())[:70]
        spent = timings.setdefault(key, [0.0, 0])
        spent[0] += time.perf_counter() - conn.info["began"]
        spent[1] += 1

    return timings


async def run(
    url: str, issues: int, batch: int, lanes: int, interval: float, profile: bool = False
) -> None:
    engine = create_engine(url, pool_size=lanes + 2)
    db = Database(engine, Outbox(improvement.outbox, source="/kefu/improvement"))
    timings = _time_statements(engine) if profile else None
    handlers = {s.type: s for s in make_subscriptions()}
    events = issue_events(issues)
    # The broker hands a replica the events in publication order; lanes take turns.
    batches = [events[i : i + batch] for i in range(0, len(events), batch)]
    queue: asyncio.Queue[Sequence[EventData]] = asyncio.Queue()
    for chunk in batches:
        queue.put_nowait(chunk)

    async def lane() -> None:
        while not queue.empty():
            await deliver(db, handlers, queue.get_nowait())

    evaluations = 0
    rounds = 0

    async def worker() -> None:
        nonlocal evaluations, rounds
        while True:
            evaluations += await evaluate_changed_themes(db, Thresholds())
            rounds += 1
            await asyncio.sleep(interval)

    worker_task = asyncio.create_task(worker())
    began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(lanes)))
    elapsed = time.perf_counter() - began
    worker_task.cancel()
    await asyncio.gather(worker_task, return_exceptions=True)
    await evaluate_changed_themes(db, Thresholds())
    async with db.unit_of_work() as uow:
        n_followups = await uow.session.scalar(select(func.count()).select_from(followups))
        props = (await uow.session.execute(select(proposals))).all()
    print(
        f"{len(events)} events ({issues} issues) in batches of {batch} on {lanes} lane(s): "
        f"{elapsed:.1f}s, {len(events) / elapsed:.0f} events/s, "
        f"{issues / elapsed:.0f} issues/s; follow-ups {n_followups}; "
        f"proposals {[(p.theme_kind, p.theme_key, p.evidence['issues']) for p in props]}; "
        f"theme evaluations {evaluations} in {rounds} rounds "
        f"({evaluations / elapsed:.1f}/s)"
    )
    if timings is not None:
        for key, (spent, count) in sorted(timings.items(), key=lambda kv: -kv[1][0])[:15]:
            print(f"{spent:8.2f}s {int(count):6d}x {spent / count * 1000:7.2f}ms  {key}")
    await db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--issues", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--lanes", type=int, default=1)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--profile", action="store_true", help="time spent per statement")
    args = parser.parse_args()
    with isolated_stack() as settings:
        url = settings.service_database_url("improvement")
        asyncio.run(run(url, args.issues, args.batch, args.lanes, args.interval, args.profile))


if __name__ == "__main__":
    main()
