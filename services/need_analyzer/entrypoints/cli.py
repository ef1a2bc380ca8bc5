"""`kefu reanalyze`: run stored issues through the current analyzer and publish the results.

Writes each new ``issue.analyzed`` into need_analyzer's outbox, in the same transaction as the
updated analysis; the running service's relay publishes them. Safe to interrupt and re-run.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

from tqdm import tqdm

from services.need_analyzer.adapters import repository as repo
from services.need_analyzer.adapters.tables import outbox
from services.need_analyzer.bootstrap import analyzer
from services.need_analyzer.handlers import reanalyze_batch
from shared.db import Database, Outbox, create_engine
from shared.settings import get_settings


async def reanalyze(
    *, since: datetime | None, until: datetime | None, batch_size: int = 200, progress: bool = True
) -> int:
    settings = get_settings()
    db = Database(
        create_engine(settings.service_database_url("need_analyzer")),
        Outbox(outbox, source="/kefu/need_analyzer"),
    )
    try:
        async with db.unit_of_work() as uow:
            pending = await repo.count_stale(
                uow.session, analyzer.version, since=since, until=until
            )
        done = 0
        after: uuid.UUID | None = None
        with tqdm(
            total=pending,
            unit="issue",
            disable=not progress,
            desc=f"re-analysing with {analyzer.version}",
        ) as bar:
            while True:
                async with db.unit_of_work() as uow:
                    ids = await reanalyze_batch(
                        uow, analyzer, since=since, until=until, after=after, limit=batch_size
                    )
                if not ids:
                    return done
                done += len(ids)
                after = ids[-1]
                bar.update(len(ids))
    finally:
        await db.dispose()


def run(since: datetime | None, until: datetime | None, batch_size: int) -> int:
    return asyncio.run(reanalyze(since=since, until=until, batch_size=batch_size))
