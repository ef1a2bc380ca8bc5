"""`make bench` at tiny sizes, so that the harness cannot rot (bench/e2e.py)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from bench import e2e
from shared.satisfaction import assess_text

TINY = e2e.Sizes(
    post_seconds=1,
    warmup_seconds=1,
    fallback_requests=100,
    batch_requests=1,
    batch_concurrency=2,
    loop_issues=10,
    loop_connections=8,
    paced_issues=6,
    paced_rate=20.0,
    stage_messages=100,
    drain_seconds=20,
    quiet_seconds=20,
    calm_seconds=0.6,
)


def test_every_bench_text_asks_for_a_followup() -> None:
    """The loop counts one follow-up per issue: no text may read as satisfied, or as nothing."""
    for text in (*e2e.MIXED_TEXTS, e2e.HOT_TEXT):
        assessment = assess_text(text)
        assert assessment is not None and assessment.verdict != "satisfied", text
    hot = assess_text(e2e.HOT_TEXT)
    assert hot is not None and hot.verdict == "dissatisfied"  # so the theme gets a proposal


def test_the_bench_harness_runs_end_to_end(tmp_path: Path) -> None:
    args = e2e.parser().parse_args(["--quick", "--out", str(tmp_path)])
    result = e2e.main(args, TINY)
    written = e2e.write(result, tmp_path)

    rows = {row["scenario"][:2]: row for row in result["rows"]}
    assert [row["scenario"][:2] for row in result["rows"]] == ["a.", "b.", "c.", "c.", "d.", "f."]
    single = rows["a."]["figures"]
    assert single["kefu"]["requests"] > 0 and single["ceiling"]["requests"] > 0
    assert single["kefu"]["server_errors_5xx"] == 0
    batch = rows["b."]["figures"]
    assert batch["accepted"] == batch["outbox_events"] == 100
    for row in result["rows"][2:]:
        figures = row["figures"]
        assert figures["accepted"] == figures["posted"], row["notes"]
        assert figures["lost"] == 0 and figures["duplicated_followups"] == 0, row["notes"]
    hot = result["rows"][-1]["figures"]
    assert hot["proposals"].get("intent:delivery") == 1
    assert hot["updates"].get("intent:delivery", 0) >= 1
    assert result["stage_ceiling"]["messages_per_second"] > 0
    assert set(result["memory_mb"]) >= {"intake", "improvement", "improvement#2"}
    assert "| scenario | Kefu | ceiling |" in written.read_text()
    assert json.loads(written.with_suffix(".json").read_text())["rows"]


def test_the_tracing_sink_takes_and_counts_exports() -> None:
    """`--tracing` sends every service's spans to bench/otlp_sink.py, which answers 200."""
    process, url = e2e.otlp_sink()
    try:
        for _ in range(2):
            answer = httpx.post(f"{url}/v1/traces", content=b"\x0a\x00", timeout=5)
            assert answer.status_code == 200
    finally:
        counts = e2e.stop_otlp_sink(process)
    assert counts == {"requests": 2, "bytes": 4}
