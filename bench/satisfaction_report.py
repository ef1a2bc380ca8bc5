"""Benchmark of the satisfaction summary on a million verdicts (run by hand:
`make bench-report`).

Loads 1,000,000 verdict rows (a year of issues over 7 channels and 13 intents, with NPS and
CES answers on a share of them) into an isolated database, runs VACUUM ANALYZE as a
production database's autovacuum would, starts the feedback service, and times
`GET /v1/satisfaction/summary` over 30 days and over a year for each `group_by`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from deploy.launcher import ServiceProcesses
from shared.db import asyncpg_dsn
from tests.support import BOOTSTRAP_KEY, free_port, isolated_stack

RESULTS = Path(__file__).resolve().parent / "results"

LOAD = """
INSERT INTO feedback.verdicts (id, issue_id, verdict, score, source, basis, decided_at,
                               evaluated_at, channel, intent, nps, nps_at, ces, ces_at)
SELECT gen_random_uuid(), gen_random_uuid(), v.verdict, v.score, 'explicit', 'bench',
       t.at, t.at,
       (ARRAY['email','phone','chat','web','social','sms','other'])[1 + (i % 7)],
       (ARRAY['refund','delivery','billing','account','product_quality','technical',
              'response_speed','cancellation','complaint','praise','feedback','inquiry',
              'other'])[1 + (i % 13)],
       CASE WHEN i % 3 = 0 THEN (i * 7) % 11 END, CASE WHEN i % 3 = 0 THEN t.at END,
       CASE WHEN i % 5 = 0 THEN 1 + (i * 3) % 7 END, CASE WHEN i % 5 = 0 THEN t.at END
FROM generate_series(1, $1) AS i,
     LATERAL (SELECT now() - (i % 525600) * interval '1 minute' AS at) AS t,
     LATERAL (SELECT (ARRAY['satisfied','neutral','dissatisfied'])[1 + (i * 5) % 3] AS verdict,
                     ((i * 5) % 3) / 2.0 AS score) AS v
"""


async def load(admin_url: str, rows: int) -> float:
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        started = time.perf_counter()
        await conn.execute(LOAD, rows)
        await conn.execute("VACUUM ANALYZE feedback.verdicts")
        return time.perf_counter() - started
    finally:
        await conn.close()


def timed(client: httpx.Client, params: dict[str, str], runs: int) -> dict[str, Any]:
    client.get("/v1/satisfaction/summary", params=params).raise_for_status()  # warm-up
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get("/v1/satisfaction/summary", params=params)
        response.raise_for_status()
        timings.append((time.perf_counter() - started) * 1000)
    return {
        "median_ms": round(statistics.median(timings), 1),
        "max_ms": round(max(timings), 1),
        "rated": response.json()["total"]["rated"],
    }


def main(args: argparse.Namespace) -> dict[str, Any]:
    with isolated_stack() as settings:
        load_seconds = asyncio.run(load(settings.admin_database_url, args.rows))
        group = ServiceProcesses(
            settings,
            env={"KEFU_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY, "KEFU_LOG_LEVEL": "WARNING"},
            ports={"feedback": free_port()},
            services=("feedback",),
        )
        group.start_all()
        try:
            group.wait_ready()
            now = datetime.now(UTC)
            periods = {"30_days": now - timedelta(days=30), "365_days": now - timedelta(days=365)}
            figures: dict[str, Any] = {}
            with httpx.Client(
                base_url=group.url("feedback"),
                headers={"Authorization": f"Bearer {BOOTSTRAP_KEY}"},
                timeout=60,
            ) as client:
                for name, since in periods.items():
                    for group_by in ("none", "channel", "intent", "day"):
                        figures[f"{name}/{group_by}"] = timed(
                            client, {"since": since.isoformat(), "group_by": group_by}, args.runs
                        )
        finally:
            group.stop_all()
    return {
        "benchmark": "satisfaction_report",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "verdict_rows": args.rows,
        "load_and_vacuum_seconds": round(load_seconds, 1),
        "summary": figures,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    result = main(parser.parse_args())
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"report-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written to {out}")
