"""feedback's consumer path alone: mixed events through ``Consumer._process`` in batches.

Pushes ``--events`` events (issue received, analysed, feedback with ratings or comments, in
arrival order) through the production path (inbox, the handlers, outbox, commit) in batches of
``--batch`` against an isolated database, and prints events/s.
``python -m bench.feedback_batch [--events 5000] [--batch 100] [--handlers module]``;
``--handlers`` names a module with ``subscriptions`` (another version of the handlers).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import event

from services.feedback.adapters.tables import inbox
from services.feedback.bootstrap import definition
from services.feedback.evaluation import load
from shared.contracts import (
    Analysis,
    CustomerRef,
    EventData,
    FeedbackSubmitted,
    IssueAnalyzed,
    IssueReceived,
    Rating,
    Sentiment,
    new_event,
)
from shared.messaging.consumer import Consumer, Delivery
from shared.settings import Settings
from tests.integration.conftest import open_database
from tests.support import isolated_stack

RATINGS: list[dict[str, Any]] = [
    {"scale": "csat5", "value": 2},
    {"scale": "csat5", "value": 5},
    {"scale": "nps10", "value": 9},
    {"scale": "nps10", "value": 3},
    {"scale": "ces7", "value": 6},
    {"scale": "thumbs", "value": "down"},
    {"scale": "faces3", "value": "okay"},
]


def stream(count: int, rng: random.Random) -> list[EventData]:
    """Events in a plausible arrival order: each issue's received, then analysed, then its
    feedback (one or two), interleaved with other issues'."""
    texts = [row["text"] for row in load()]
    t0 = datetime.now(UTC) - timedelta(days=1)
    per_issue: list[list[EventData]] = []
    total = 0
    while total < count:
        issue_id = uuid.uuid4()
        customer = CustomerRef(customer_id=uuid.uuid4(), name="李四")
        at = t0 + timedelta(seconds=len(per_issue))
        text = rng.choice(texts) if rng.random() < 0.7 else "我的快递还没到，请尽快处理"
        events: list[EventData] = [
            IssueReceived(
                issue_id=issue_id,
                channel=rng.choice(["chat", "email", "web"]),
                external_id=str(issue_id),
                customer=customer,
                text=text,
                received_at=at,
            ),
            IssueAnalyzed(
                issue_id=issue_id,
                channel="chat",
                customer=customer,
                text=text,
                analyzer_version="bench",
                analysis=Analysis(
                    language="zh",
                    intent=rng.choice(["delivery", "refund", "complaint"]),
                    urgency="normal",
                    sentiment=Sentiment(label="neutral", score=0),
                ),
                analyzed_at=at,
            ),
        ]
        for n in range(rng.choice([1, 1, 2])):
            with_rating = rng.random() < 0.6
            events.append(
                FeedbackSubmitted(
                    feedback_id=uuid.uuid4(),
                    issue_id=issue_id,
                    customer=customer,
                    rating=cast(Rating, rng.choice(RATINGS)) if with_rating else None,
                    comment=None if with_rating else rng.choice(texts),
                    submitted_at=at + timedelta(minutes=n + 1),
                )
            )
        per_issue.append(events)
        total += len(events)
    # Interleave: take the next event of a random issue still open among the last few.
    out: list[EventData] = []
    window: list[list[EventData]] = []
    pending = iter(per_issue)
    while len(out) < count:
        while len(window) < 20:
            nxt = next(pending, None)
            if nxt is None:
                break
            window.append(nxt)
        if not window:
            break
        events = rng.choice(window)
        out.append(events.pop(0))
        if not events:
            window.remove(events)
    return out


TIMES: dict[str, list[float]] = {}


def _time_statements(db: Any) -> None:
    """Time spent in each statement, client side (driver and server)."""

    @event.listens_for(db.engine.sync_engine, "before_cursor_execute")
    def before(conn: Any, *_: Any) -> None:
        conn.info["started"] = time.perf_counter()

    @event.listens_for(db.engine.sync_engine, "after_cursor_execute")
    def after(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        spent = TIMES.setdefault(" ".join(statement.split())[:200], [0, 0.0])
        spent[0] += 1
        spent[1] += time.perf_counter() - conn.info["started"]


async def run(
    settings: Settings, events: int, batch: int, handlers: str | None, profile: bool
) -> None:
    module = importlib.import_module(handlers or "services.feedback.handlers")
    rng = random.Random(8)
    items = stream(events, rng)
    # Validate ratings now, as decoding would.
    items = [type(item).model_validate(item.model_dump()) for item in items]
    db = await open_database(settings, definition)
    if profile:
        _time_statements(db)
    consumer = Consumer(
        service="feedback",
        db=db,
        inbox=inbox,
        subscriptions=module.subscriptions,
        prefetch=batch * 2,
        batch_size=batch,
        delivery_limit=3,
    )
    deliveries = [Delivery(cast(Any, None), new_event("/bench", item), item) for item in items]
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(deliveries), batch):
        await consumer._process(deliveries[start : start + batch])
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    await db.dispose()
    if profile:
        for statement, (count, seconds) in sorted(TIMES.items(), key=lambda kv: -kv[1][1])[:12]:
            print(f"{seconds * 1000:9.1f} ms {count:6d}x  {statement[:110]!r}")
    print(
        f"{len(items)} events in batches of {batch}: {elapsed:.2f} s, "
        f"{len(items) / elapsed:,.0f} events/s, {cpu * 1e6 / len(items):.0f} µs CPU per event "
        f"in this process ({module.__name__})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--handlers", default=None)
    parser.add_argument("--profile", action="store_true", help="time each statement")
    args = parser.parse_args()
    with isolated_stack() as settings:
        asyncio.run(run(settings, args.events, args.batch, args.handlers, args.profile))


if __name__ == "__main__":
    main()
