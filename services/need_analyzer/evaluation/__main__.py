"""`python -m services.need_analyzer.evaluation [--file F] [--misses]`: accuracy per field and
the intent confusion table of the current analyzer on a labelled set."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from services.need_analyzer.adapters.models import OfflineModels
from services.need_analyzer.domain.analyzer import RuleAnalyzer
from services.need_analyzer.evaluation import FIELDS, MESSAGES, evaluate, load
from shared.contracts import Intent

INTENTS: tuple[Intent, ...] = Intent.__args__  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--file", type=Path, default=MESSAGES)
    parser.add_argument("--misses", action="store_true", help="list every message with an error")
    args = parser.parse_args()
    analyzer = RuleAnalyzer(OfflineModels(Path(tempfile.gettempdir()) / "kefu-eval-cache"))
    messages = load(args.file)
    report = evaluate(analyzer, messages)
    languages = sorted({m["language"] for m in messages})
    print(
        f"{analyzer.version} on {report.total} messages ({args.file.name}: "
        + ", ".join(f"{sum(m['language'] == lang for m in messages)} {lang}" for lang in languages)
        + ")\n"
    )
    for name in FIELDS:
        print(f"  {name:<20} {report.accuracy(name):6.1%}")
    short = {intent: intent[:7] for intent in INTENTS}
    print("\nintent confusion (rows: expected, columns: found)")
    print(" " * 16 + " ".join(f"{short[i]:>7}" for i in INTENTS))
    for expected in INTENTS:
        row = [report.confusion[(expected, found)] for found in INTENTS]
        print(f"{expected:<16}" + " ".join(f"{n or '.':>7}" for n in row))
    if args.misses:
        print()
        for miss in report.misses:
            print(json.dumps(miss, ensure_ascii=False))


if __name__ == "__main__":
    main()
