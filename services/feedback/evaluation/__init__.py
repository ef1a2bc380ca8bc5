"""Scores the text rules against ``statements.jsonl``: for each text, the verdict it states, or
null when it states none. ``python -m services.feedback.evaluation [--misses]``."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from shared.satisfaction import assess_text

STATEMENTS = Path(__file__).resolve().parent / "statements.jsonl"
LABELS = ("satisfied", "neutral", "dissatisfied", None)


def load(path: Path = STATEMENTS) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def evaluate(rows: list[dict[str, Any]]) -> tuple[Counter[tuple[Any, Any]], list[dict[str, Any]]]:
    """The confusion counts (expected, found) and the rows that were wrong."""
    confusion: Counter[tuple[Any, Any]] = Counter()
    misses = []
    for row in rows:
        assessment = assess_text(row["text"])
        found = assessment.verdict if assessment else None
        confusion[(row["verdict"], found)] += 1
        if found != row["verdict"]:
            misses.append({**row, "found": found, "basis": assessment and assessment.basis})
    return confusion, misses


def accuracy(confusion: Counter[tuple[Any, Any]]) -> float:
    total = sum(confusion.values())
    return sum(n for (expected, found), n in confusion.items() if expected == found) / total
