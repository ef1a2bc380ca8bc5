"""Benchmark of the console's pages with 100,000 issues in the system (`make bench-console`).

Seeding: the loop would take a quarter of an hour to carry 100,000 issues through four services
on a 2-core box (~110 issues/s, docs/benchmarks.md), so the bench writes, set-wise in its own
isolated database, the rows each service would have written for them: intake's customers and
issues, need_analyzer's analyses (40 needs over 13 intents, 30 % without a need), feedback's
verdicts and ratings (60 % of issues rated, a third of those with NPS, a fifth with CES),
improvement's issues, a follow-up for every issue not satisfied (in all four statuses) and a
proposal per intent. Times spread evenly over the last 90 days. Then VACUUM ANALYZE, as
autovacuum would, and the services and the console start as processes.

Each page is fetched signed in (session cookie, as a browser), once to warm up, then ``--runs``
times; the figure is the time to the whole rendered page at the client, so it includes every
call the console makes to the services. Target: 300 ms each.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from deploy.launcher import ServiceProcesses
from shared.db import asyncpg_dsn
from shared.settings import RUNNABLE
from tests.support import BOOTSTRAP_KEY, free_port, isolated_stack

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_MS = 300.0

NEEDS = [
    ("更快的响应速度", "response_speed"), ("尽快退款", "refund"), ("退货退款", "refund"),
    ("查询物流信息", "delivery"), ("尽快发货", "delivery"), ("修改收货地址", "delivery"),
    ("开具发票", "billing"), ("取消自动扣费", "billing"), ("重新支付订单", "billing"),
    ("重置密码", "account"), ("更换绑定手机号", "account"), ("注销账户", "account"),
    ("更换破损的商品", "product_quality"), ("补发缺少的配件", "product_quality"),
    ("修复登录报错", "technical"), ("修复支付页面", "technical"), ("app 闪退问题", "technical"),
    ("取消订单", "cancellation"), ("取消会员", "cancellation"), ("客服态度改善", "complaint"),
    ("a refund for my order", "refund"), ("faster delivery", "delivery"),
    ("an invoice for last month", "billing"), ("to reset my password", "account"),
    ("a replacement for the broken item", "product_quality"), ("to cancel my plan", "cancellation"),
    ("the app to stop crashing", "technical"), ("a faster reply", "response_speed"),
    ("了解会员权益", "inquiry"), ("咨询保修政策", "inquiry"), ("了解配送范围", "inquiry"),
    ("how to change my plan", "inquiry"), ("延长退货期限", "refund"),
    ("加急处理", "response_speed"), ("电话回访", "response_speed"), ("核对账单明细", "billing"),
    ("恢复被封账号", "account"), ("说明缺陷原因", "product_quality"),
    ("赔偿延误损失", "delivery"), ("人工客服", "response_speed"),
]  # fmt: skip
INTENTS = [
    "refund", "delivery", "billing", "account", "product_quality", "technical", "response_speed",
    "cancellation", "complaint", "praise", "feedback", "inquiry", "other",
]  # fmt: skip
CHANNELS = ["email", "phone", "chat", "web", "social", "sms", "other"]

# $1 issues, $2 customers, $3 need phrases, $4 their intents, $5 intents, $6 channels.
BASE = """
WITH base AS (
  SELECT i,
         md5('issue' || i)::uuid AS issue_id,
         md5('customer' || (i % $2))::uuid AS customer_id,
         now() - ((i * 7919) % (90 * 1440)) * interval '1 minute' AS at,
         ($6::text[])[1 + i % 7] AS channel,
         CASE WHEN i % 10 < 7 THEN ($3::text[])[1 + (i * 31) % array_length($3::text[], 1)] END
           AS need,
         CASE WHEN i % 10 < 7 THEN ($4::text[])[1 + (i * 31) % array_length($3::text[], 1)]
              ELSE ($5::text[])[1 + i % 13] END AS intent,
         CASE WHEN i % 5 < 3 THEN (ARRAY['satisfied','satisfied','neutral','dissatisfied'])
              [1 + (i * 13) % 4] END AS verdict
  FROM generate_series(1, $1) AS i
)
"""
CUSTOMERS = """
INSERT INTO intake.customers (id, name, email, phone, created_at, updated_at)
SELECT md5('customer' || c)::uuid, '客户' || c, 'customer' || c || '@example.com',
       '+86139' || lpad(c::text, 8, '0'), now(), now()
FROM generate_series(0, $1 - 1) AS c
"""
ISSUES = (
    BASE
    + """
INSERT INTO intake.issues (id, channel, external_id, customer_id, text, language, received_at,
                           fingerprint)
SELECT issue_id, channel, 'bench-' || i, customer_id,
       COALESCE(CASE WHEN need ~ '^[a-z]' THEN 'I need ' || need ELSE '需要' || need END,
                '订单的问题 ' || i), 'zh', at, md5(i::text) || md5('x' || i)
FROM base
"""
)
ANALYSES = (
    BASE
    + """
INSERT INTO need_analyzer.analyses (issue_id, channel, customer, text, received_at, language,
  need, intent, sentiment_label, sentiment_score, urgency, keywords, explanations,
  analyzer_version, analyzed_at)
SELECT issue_id, channel, jsonb_build_object('customer_id', customer_id, 'name', '客户' || i % $2),
       COALESCE('需要' || need, '订单的问题 ' || i), at, 'zh', need, intent,
       (ARRAY['negative','neutral','positive'])[1 + i % 3], ((i % 3) - 1) * 0.5, 'normal',
       ARRAY[]::varchar[], '{}'::jsonb, 'kefu-rules-2', at + interval '1 second'
FROM base
"""
)
VERDICTS = (
    BASE
    + """
INSERT INTO feedback.verdicts (id, issue_id, customer, verdict, score, source, basis, decided_at,
  evaluated_at, channel, intent, nps, nps_at, ces, ces_at)
SELECT md5('verdict' || i)::uuid, issue_id, jsonb_build_object('customer_id', customer_id),
       verdict, CASE verdict WHEN 'satisfied' THEN 1 WHEN 'neutral' THEN 0.5 ELSE 0 END,
       'explicit', 'rating csat5', at + interval '1 hour', at + interval '1 hour', channel, intent,
       CASE WHEN i % 3 = 0 THEN (i * 7) % 11 END, CASE WHEN i % 3 = 0 THEN at END,
       CASE WHEN i % 5 = 0 THEN 1 + (i * 3) % 7 END, CASE WHEN i % 5 = 0 THEN at END
FROM base WHERE verdict IS NOT NULL
"""
)
FEEDBACK = (
    BASE
    + """
INSERT INTO feedback.feedback (feedback_id, issue_id, customer, rating, submitted_at)
SELECT md5('feedback' || i)::uuid, issue_id, jsonb_build_object('customer_id', customer_id),
       jsonb_build_object('scale', 'csat5', 'value',
         CASE verdict WHEN 'satisfied' THEN 5 WHEN 'neutral' THEN 3 ELSE 1 END),
       at + interval '1 hour'
FROM base WHERE verdict IS NOT NULL
"""
)
IMPROVEMENT_ISSUES = (
    BASE
    + """
INSERT INTO improvement.issues (issue_id, channel, customer, received_at, language, need,
  need_key, intent, analyzed_at, verdict, verdict_at)
SELECT issue_id, channel, jsonb_build_object('customer_id', customer_id, 'name', '客户' || i % $2),
       at, 'zh', need, lower(need), intent, at, verdict, at + interval '1 hour'
FROM base
"""
)
FOLLOWUPS = (
    BASE
    + """
INSERT INTO improvement.followups (id, issue_id, customer, channel, need, intent, verdict,
  reason, summary, status, created_at, updated_at)
SELECT md5('followup' || i)::uuid, issue_id,
       jsonb_build_object('customer_id', customer_id, 'name', '客户' || i % $2,
                          'email', 'customer' || i % $2 || '@example.com',
                          'phone', '+86139' || lpad((i % $2)::text, 8, '0')),
       channel, need, intent, verdict, 'customer is ' || verdict || ' (rating csat5)',
       '改进企业产品和服务，满足客户' || i % $2 || '的需求',
       (ARRAY['open','open','contacted','resolved','dismissed'])[1 + i % 5],
       at + interval '1 hour', at + interval '2 hours'
FROM base WHERE verdict IN ('neutral', 'dissatisfied')
"""
)
PROPOSALS = """
INSERT INTO improvement.proposals (id, theme_kind, theme_key, status, evidence, recommendation,
  priority, opened_at, updated_at)
SELECT md5('proposal' || k)::uuid, 'intent', ($1::text[])[k],
       (ARRAY['open','accepted','in_progress','open'])[1 + k % 4],
       jsonb_build_object('issues', 700 + 10 * k, 'dissatisfied', 200 + k, 'rated', 420 + k,
         'satisfied', 150, 'csat', 0.36, 'trend', 1.2 + k / 10.0,
         'dissatisfied_share', (200.0 + k) / (420 + k), 'baseline_issues', 600,
         'period_start', now() - interval '7 days', 'period_end', now(),
         'sample_issue_ids', jsonb_build_array(md5('issue' || k)::uuid),
         'reasons', jsonb_build_array('dissatisfied share above 40 % with 95 % confidence')),
       'Review the ' || ($1::text[])[k] || ' process', 200.0 + k, now() - interval '3 days', now()
FROM generate_series(1, 13) AS k
"""
TABLES = (
    "intake.customers",
    "intake.issues",
    "need_analyzer.analyses",
    "feedback.verdicts",
    "feedback.feedback",
    "improvement.issues",
    "improvement.followups",
    "improvement.proposals",
)


async def seed(admin_url: str, issues: int) -> dict[str, Any]:
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    customers = max(issues // 4, 1)
    args = (issues, customers, [n for n, _ in NEEDS], [i for _, i in NEEDS], INTENTS, CHANNELS)
    try:
        started = time.perf_counter()
        await conn.execute(CUSTOMERS, customers)
        for statement in (ISSUES, ANALYSES, VERDICTS, FEEDBACK, IMPROVEMENT_ISSUES, FOLLOWUPS):
            await conn.execute(statement, *args)
        await conn.execute(PROPOSALS, INTENTS)
        for table in TABLES:
            await conn.execute(f"VACUUM ANALYZE {table}")
        rows = {table: await conn.fetchval(f"SELECT count(*) FROM {table}") for table in TABLES}
        sample = await conn.fetchval(
            "SELECT issue_id FROM improvement.followups f JOIN need_analyzer.analyses a "
            "USING (issue_id) WHERE a.need IS NOT NULL ORDER BY f.created_at DESC LIMIT 1"
        )
        return {"seconds": round(time.perf_counter() - started, 1), "rows": rows, "issue": sample}
    finally:
        await conn.close()


def sign_in(client: httpx.Client) -> None:
    form = client.get("/login")
    token = re.search(r'name="login_token" value="([^"]+)"', form.text)
    assert token, "no sign-in form"
    answer = client.post(
        "/login", data={"api_key": BOOTSTRAP_KEY, "login_token": token.group(1), "next": "/"}
    )
    assert answer.status_code == 303 and "kefu_session" in client.cookies, answer.text[:300]


def timed(client: httpx.Client, path: str, runs: int) -> dict[str, Any]:
    client.get(path).raise_for_status()  # warm-up
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(path)
        response.raise_for_status()
        timings.append((time.perf_counter() - started) * 1000)
    median = statistics.median(timings)
    return {
        "path": path,
        "median_ms": round(median, 1),
        "max_ms": round(max(timings), 1),
        "bytes": len(response.content),
        "within_target": median <= TARGET_MS,
    }


def main(args: argparse.Namespace) -> dict[str, Any]:
    with isolated_stack() as settings:
        print(f"seeding {args.issues:,} issues...", flush=True)
        seeded = asyncio.run(seed(settings.admin_database_url, args.issues))
        print(f"seeded in {seeded['seconds']} s: {seeded['rows']}", flush=True)
        group = ServiceProcesses(
            settings,
            env={"KEFU_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY, "KEFU_LOG_LEVEL": "WARNING"},
            ports={service: free_port() for service in RUNNABLE},
            services=RUNNABLE,
        )
        group.start_all()
        try:
            group.wait_ready(timeout=120)
            pages = {
                "overview (7 days)": "/",
                "overview (90 days, by channel)": "/?days=90&channel=chat",
                "needs (30 days)": "/needs",
                "follow-ups (open)": "/followups",
                "follow-ups (all, over 3 days)": "/followups?status=&age=3",
                "improvements": "/improvements",
                "issue timeline": f"/issues/{seeded['issue']}",
            }
            with httpx.Client(base_url=group.url("console"), timeout=60) as client:
                sign_in(client)
                figures = {name: timed(client, path, args.runs) for name, path in pages.items()}
        finally:
            group.stop_all()
    return {
        "benchmark": "console",
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "issues": args.issues,
        "seed_seconds": seeded["seconds"],
        "rows": seeded["rows"],
        "target_ms": TARGET_MS,
        "pages": figures,
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        f"Console pages with {result['issues']:,} issues (median of the runs; target "
        f"{TARGET_MS:.0f} ms)",
        f"{'page':<32} {'median ms':>10} {'max ms':>8} {'KiB':>6}  ok",
    ]
    for name, figure in result["pages"].items():
        lines.append(
            f"{name:<32} {figure['median_ms']:>10.1f} {figure['max_ms']:>8.1f} "
            f"{figure['bytes'] / 1024:>6.1f}  {'yes' if figure['within_target'] else 'NO'}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--issues", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10)
    result = main(parser.parse_args())
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"console-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(table(result))
    print(f"written to {out}")
