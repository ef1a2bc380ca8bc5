"""Benchmark of the need analyzer (run by hand: `make bench-analyzer`).

- latency: every message of the labelled set through `TextAnalyzer.analyze`, several rounds
  after a warm-up; median and p99 ms per message; and in the same run the bare ceiling, the
  linear model alone on the same texts (character n-grams, no rules, no jieba, no VADER: the
  least an analysis of all four labels costs), with the analyzer's median as a multiple of
  it, which says more than the milliseconds on a box of unknown speed;
- start-up: a real `python -m services.need_analyzer` process on an isolated database and
  vhost, from spawn until /healthz answers (the language models load before the server
  starts) and until /readyz does (connected to PostgreSQL and RabbitMQ); and the CPU time the
  process had used when /healthz answered, which a loaded box does not inflate as it does
  the wall time;
- memory: that process's resident set (VmRSS, VmHWM) once up, and again after this process has
  analysed the whole set (the same models and code) for comparison.
- adversarial texts: 20,000 characters each that once cost seconds (one repeated character, a
  question particle before a run of spaces, one huge token, repeated cue words, emoji, mixed
  scripts), through the analyzer and through feedback's text rules (`assess_text`); the CPU
  time of this thread (so that other processes on the box do not count), median of 5 runs.
Targets (issues 3 and 11): <= 0.5 ms median, start-up <= 3 s, RSS <= 250 MB, each adversarial
text <= 50 ms.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from deploy.launcher import ROOT, service_env
from services.need_analyzer.adapters.models import OfflineModels, load_linear_model
from services.need_analyzer.domain.analyzer import MODEL_WINDOW, TextAnalyzer
from services.need_analyzer.evaluation import load
from shared.satisfaction import assess_text
from tests.support import free_port, isolated_stack

RESULTS = Path(__file__).resolve().parent / "results"


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    raise KeyError(field)


def service_start_and_memory(cache: Path) -> dict[str, Any]:
    """On an isolated database and vhost, so that it connects and consumes for real."""
    with isolated_stack() as settings:
        port = free_port()
        env = service_env(
            settings,
            "need_analyzer",
            port,
            {"KEFU_CACHE_DIR": str(cache), "KEFU_LOG_LEVEL": "WARNING"},
        )
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.need_analyzer"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            healthy = _wait(proc, f"http://127.0.0.1:{port}/healthz", started)
            healthy_cpu = _cpu_seconds(proc.pid)
            ready = _wait(proc, f"http://127.0.0.1:{port}/readyz", started)
            time.sleep(1)
            return {
                "startup_seconds": round(healthy, 2),
                "startup_cpu_seconds": healthy_cpu,
                "ready_seconds": round(ready, 2),
                "rss_mb": _status_mb(proc.pid, "VmRSS"),
                "peak_rss_mb": _status_mb(proc.pid, "VmHWM"),
            }
        finally:
            proc.terminate()
            proc.wait(10)


def _cpu_seconds(pid: int) -> float:
    """The CPU time a process has used (user and system): what its start costs whatever else
    runs on the box, where the wall time grows with the box's load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)


def _wait(proc: subprocess.Popen[bytes], url: str, started: float) -> float:
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return time.perf_counter() - started
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.perf_counter() - started > 60:
            raise RuntimeError("need_analyzer did not start")
        time.sleep(0.02)


def latency(analyze: Callable[[str], object], texts: list[str], rounds: int) -> dict[str, Any]:
    for text in texts:
        analyze(text)
    timings = []
    for _ in range(rounds):
        for text in texts:
            started = time.perf_counter()
            analyze(text)
            timings.append((time.perf_counter() - started) * 1000)
    timings.sort()
    return {
        "messages": len(texts),
        "rounds": rounds,
        "median_ms": round(statistics.median(timings), 3),
        "p99_ms": round(timings[int(0.99 * (len(timings) - 1))], 3),
        "max_ms": round(timings[-1], 3),
    }


def adversarial_texts(length: int = 20_000) -> dict[str, str]:
    """Texts of ``length`` characters built to find superlinear cost in rules and models."""

    def repeat(unit: str) -> str:
        return (unit * (length // len(unit) + 1))[:length]

    return {
        "one character": repeat("a"),
        "one Chinese character": repeat("好"),
        "吗 then spaces": "吗" + " " * (length - 2) + "x",
        "question marks then a letter": "?" * (length - 1) + "x",
        "spaces": " " * length,
        "newlines": "\n" * length,
        "full stops": repeat("。"),
        "one huge token": "x" * length,
        "digits": "1" * length,
        "emoji": repeat("😀"),
        "stars": repeat("★"),
        "url": "http://" + repeat("a/")[: length - 7],
        "cue word 满意": repeat("满意"),
        "cue word 不满意": repeat("不满意"),
        "request word 请": repeat("请"),
        "request 需要": repeat("需要"),
        "not ": repeat("not "),
        "please ": repeat("please "),
        "but good bad": repeat("but good bad "),
        "ratings 1/": repeat("1/"),
        "scores 5 分": repeat("5 分"),
        "mixed scripts": repeat("我的order还没到 refund 退款! "),
        "alternating 中a": repeat("中a"),
    }


def _cpu_ms(work: Any, text: str, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.thread_time()
        work(text)
        times.append((time.thread_time() - started) * 1000)
    return round(statistics.median(times), 2)


def adversarial(analyzer: TextAnalyzer) -> dict[str, Any]:
    texts = adversarial_texts()
    rows = {
        name: {
            "analyzer_ms": _cpu_ms(analyzer.analyze, text),
            "feedback_ms": _cpu_ms(assess_text, text),
        }
        for name, text in texts.items()
    }
    partial = [name for name, text in texts.items() if analyzer.analyze(text).partial]
    return {
        "characters": len(next(iter(texts.values()))),
        "texts": rows,
        "max_analyzer_ms": max(row["analyzer_ms"] for row in rows.values()),
        "max_feedback_ms": max(row["feedback_ms"] for row in rows.values()),
        "partial": partial,
    }


def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as cache:
        service_start_and_memory(Path(cache))  # first start builds jieba's cache
        service = service_start_and_memory(Path(cache))
        loaded = time.perf_counter()
        analyzer = TextAnalyzer(OfflineModels(Path(cache)), load_linear_model())
        load_seconds = time.perf_counter() - loaded
    texts = [message["text"] for message in load()]
    figures = latency(analyzer.analyze, texts, rounds=5)
    assert analyzer.model is not None
    model = analyzer.model
    bare = latency(lambda text: model.predict(text[:MODEL_WINDOW], ()), texts, rounds=5)
    figures["bare_model_median_ms"] = bare["median_ms"]
    figures["times_bare"] = round(figures["median_ms"] / bare["median_ms"], 1)
    return {
        "benchmark": "analyzer",
        "analyzer_version": analyzer.version,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "per_message": figures,
        "adversarial": adversarial(analyzer),
        "model_load_seconds": round(load_seconds, 2),
        "service": service,
        "this_process_peak_rss_mb": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
        ),
    }


if __name__ == "__main__":
    result = main()
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"analyzer-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written to {out}")
