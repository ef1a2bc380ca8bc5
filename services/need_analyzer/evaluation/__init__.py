"""Scores an analyzer against the labelled messages in ``messages.jsonl``.

Per field: language, intent (exact; and "intent or secondary" when the label has two), sentiment,
urgency, need. A need counts as right when both are absent, or both are present and one
contains the other or they share most characters: the exact words of a phrase matter less
than getting its substance.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.need_analyzer.domain.analyzer import Analyzer

MESSAGES = Path(__file__).resolve().parent / "messages.jsonl"
FIELDS = ("language", "intent", "intent_or_secondary", "sentiment", "urgency", "need")
_NOT_WORD = re.compile(r"[\W_]+")


def load(path: Path = MESSAGES) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def needs_agree(expected: str | None, found: str | None) -> bool:
    if expected is None or found is None:
        return expected is None and found is None
    a, b = _NOT_WORD.sub("", expected.lower()), _NOT_WORD.sub("", found.lower())
    if not a or not b:
        return a == b
    if a in b or b in a:
        return True
    common = sum((Counter(a) & Counter(b)).values())
    return 2 * common / (len(a) + len(b)) >= 0.6


@dataclass
class Report:
    total: int = 0
    correct: Counter[str] = field(default_factory=Counter)
    confusion: Counter[tuple[str, str]] = field(default_factory=Counter)
    misses: list[dict[str, Any]] = field(default_factory=list)

    def accuracy(self, name: str) -> float:
        return self.correct[name] / self.total if self.total else 0.0


def evaluate(analyzer: Analyzer, messages: list[dict[str, Any]]) -> Report:
    report = Report()
    for message in messages:
        analysis = analyzer.analyze(message["text"])
        found = {
            "language": analysis.language == message["language"],
            "intent": analysis.intent == message["intent"],
            "intent_or_secondary": analysis.intent in {message["intent"], message["secondary"]}
            or (message["secondary"] is not None and analysis.secondary == message["intent"]),
            "sentiment": analysis.sentiment.label == message["sentiment"],
            "urgency": analysis.urgency == message["urgency"],
            "need": needs_agree(message["need"], analysis.need),
        }
        report.total += 1
        report.correct.update(name for name, ok in found.items() if ok)
        report.confusion[(message["intent"], analysis.intent)] += 1
        if not all(found.values()):
            report.misses.append(
                {
                    "text": message["text"][:80],
                    **{k: v for k, v in found.items() if not v},
                    "got": analysis.model_dump(include={"language", "intent", "need", "urgency"})
                    | {"sentiment": analysis.sentiment.label},
                }
            )
    return report
