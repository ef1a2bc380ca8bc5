"""Accuracy of the satisfaction text rules on the labelled statements."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from services.feedback.evaluation import LABELS, STATEMENTS, accuracy, evaluate, load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--file", type=Path, default=STATEMENTS)
    parser.add_argument("--misses", action="store_true")
    args = parser.parse_args()
    rows = load(args.file)
    confusion, misses = evaluate(rows)
    print(f"{len(rows)} statements: accuracy {accuracy(confusion):.1%}")
    for language in sorted({row["language"] for row in rows}):
        subset, _ = evaluate([row for row in rows if row["language"] == language])
        print(f"  {language}: {accuracy(subset):.1%}")
    names = [label or "none" for label in LABELS]
    print("\nexpected \\ found " + "".join(f"{name:>14}" for name in names))
    for expected in LABELS:
        counts = "".join(f"{confusion[(expected, found)] or '.':>14}" for found in LABELS)
        print(f"{expected or 'none':<16} {counts}")
    if args.misses:
        print()
        for miss in misses:
            print(json.dumps(miss, ensure_ascii=False))


if __name__ == "__main__":
    main()
