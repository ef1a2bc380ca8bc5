"""`python -m services.need_analyzer.evaluation [--misses]`: accuracy per field of the current
analyzer on the tuning set (with the intent confusion table, and its misses on request) and on
the held-out set (aggregate figures only: its messages and misses are never shown)."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from services.need_analyzer.adapters.models import OfflineModels, load_linear_model
from services.need_analyzer.domain.analyzer import TextAnalyzer
from services.need_analyzer.evaluation import FIELDS, HELDOUT, TUNING, Report, evaluate, load
from shared.contracts import Intent

INTENTS: tuple[Intent, ...] = Intent.__args__  # type: ignore[attr-defined]


def describe(name: str, messages: list[dict[str, Any]]) -> str:
    languages = sorted({m["language"] for m in messages})
    counts = [f"{sum(m['language'] == lang for m in messages)} {lang}" for lang in languages]
    return f"{name}: {len(messages)} messages ({', '.join(counts)})"


def table(reports: dict[str, Report]) -> None:
    print(f"  {'field':<20}" + "".join(f"{name:>10}" for name in reports))
    for field in FIELDS:
        print(f"  {field:<20}" + "".join(f"{r.accuracy(field):>10.1%}" for r in reports.values()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--misses", action="store_true", help="list the tuning set's errors")
    args = parser.parse_args()
    analyzer = TextAnalyzer(
        OfflineModels(Path(tempfile.gettempdir()) / "kefu-eval-cache"), load_linear_model()
    )
    tuning, heldout = load(TUNING), load(HELDOUT)
    print(f"{analyzer.version}\n  {describe('tuned', tuning)}\n  {describe('held-out', heldout)}\n")
    reports = {"tuned": evaluate(analyzer, tuning), "held-out": evaluate(analyzer, heldout)}
    table(reports)
    short = {intent: intent[:7] for intent in INTENTS}
    print("\nintent confusion on the tuned set (rows: expected, columns: found)")
    print(" " * 16 + " ".join(f"{short[i]:>7}" for i in INTENTS))
    for expected in INTENTS:
        row = [reports["tuned"].confusion[(expected, found)] for found in INTENTS]
        print(f"{expected:<16}" + " ".join(f"{n or '.':>7}" for n in row))
    if args.misses:
        print()
        for miss in reports["tuned"].misses:
            print(json.dumps(miss, ensure_ascii=False))


if __name__ == "__main__":
    main()
