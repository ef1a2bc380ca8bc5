"""Re-analysis: stored issues go through the current analyzer once, and publish again."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from deploy.launcher import ROOT
from services.need_analyzer.adapters.models import OfflineModels, load_linear_model
from services.need_analyzer.adapters.tables import analyses, outbox
from services.need_analyzer.bootstrap import definition as need_analyzer
from services.need_analyzer.domain.analyzer import TextAnalyzer
from services.need_analyzer.handlers import make_subscriptions, reanalyze_batch
from shared.contracts import (
    Analysis,
    CustomerRef,
    IssueReceived,
    Sentiment,
)
from shared.settings import Settings
from tests.integration.conftest import open_database

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass(frozen=True)
class OldAnalyzer:
    """Stands for an earlier analyzer version: it found nothing."""

    version: str = "old-1"

    def analyze(self, text: str) -> Analysis:
        return Analysis(
            language="und",
            intent="other",
            sentiment=Sentiment(label="neutral", score=0),
            urgency="normal",
        )


async def store_with_old_analyzer(db, issue_ids) -> None:  # type: ignore[no-untyped-def]
    old_handler = next(s for s in make_subscriptions(OldAnalyzer()) if s.type == IssueReceived.TYPE)
    for issue_id in issue_ids:
        data = IssueReceived(
            issue_id=issue_id,
            channel="email",
            external_id=str(issue_id),
            customer=CustomerRef(customer_id=uuid.uuid4(), name="张三"),
            text="需要更快的响应速度",
            received_at=datetime.now(UTC),
        )
        async with db.unit_of_work() as uow:
            await old_handler.handle([data], uow)


async def published_versions(db, issue_ids) -> list[str]:  # type: ignore[no-untyped-def]
    async with db.unit_of_work() as uow:
        rows = await uow.session.execute(
            select(outbox.c.payload["data"]["analyzer_version"].astext)
            .where(outbox.c.payload["subject"].astext.in_([str(i) for i in issue_ids]))
            .order_by(outbox.c.created_at)
        )
        return [row[0] for row in rows]


async def test_reanalysis_updates_stored_issues_once(
    private_stack: Settings, tmp_path: Path
) -> None:
    db = await open_database(private_stack, need_analyzer)
    issue_ids = [uuid.uuid4() for _ in range(3)]
    await store_with_old_analyzer(db, issue_ids)
    assert await published_versions(db, issue_ids) == ["old-1"] * 3

    analyzer = TextAnalyzer(OfflineModels(tmp_path), load_linear_model())
    async with db.unit_of_work() as uow:
        first = await reanalyze_batch(uow, analyzer, since=None, until=None, after=None, limit=2)
    async with db.unit_of_work() as uow:
        rest = await reanalyze_batch(
            uow, analyzer, since=None, until=None, after=first[-1], limit=2
        )
    assert sorted([*first, *rest]) == sorted(issue_ids)
    async with db.unit_of_work() as uow:
        again = await reanalyze_batch(uow, analyzer, since=None, until=None, after=None, limit=10)
    assert again == []
    versions = await published_versions(db, issue_ids)
    assert versions == ["old-1"] * 3 + [analyzer.version] * 3
    async with db.unit_of_work() as uow:
        needs = (
            (
                await uow.session.execute(
                    select(analyses.c.need).where(analyses.c.issue_id.in_(issue_ids))
                )
            )
            .scalars()
            .all()
        )
    assert needs == ["更快的响应速度"] * 3
    await db.dispose()


async def test_the_reanalyze_command(private_stack: Settings, tmp_path: Path) -> None:
    """`kefu reanalyze` as an operator runs it: nothing left to do is a clean no-op."""
    db = await open_database(private_stack, need_analyzer)
    await store_with_old_analyzer(db, [uuid.uuid4() for _ in range(2)])
    async with db.unit_of_work() as uow:
        stale = await uow.session.scalar(
            select(func.count()).select_from(analyses).where(analyses.c.analyzer_version == "old-1")
        )
    assert stale == 2
    env = {
        **os.environ,
        "KEFU_ADMIN_DATABASE_URL": private_stack.admin_database_url,
        "KEFU_CACHE_DIR": str(tmp_path),
        "PYTHONPATH": str(ROOT),
    }
    env.pop("KEFU_DATABASE_URL", None)
    command = [sys.executable, "-m", "deploy.cli", "reanalyze", "--since", "2000-01-01"]

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
        )

    done = await asyncio.to_thread(run)
    assert done.returncode == 0, done.stderr
    assert f"re-analysed {stale} issue(s)" in done.stdout
    again = await asyncio.to_thread(run)
    assert "re-analysed 0 issue(s)" in again.stdout
    await db.dispose()
