"""Scores an analyzer against labelled messages: the TUNING set ``messages.jsonl`` (used to
write the rules and train the linear model) and the HELD-OUT set ``heldout.jsonl`` (never used
to tune: only its aggregate figures are ever printed).

Both were labelled from docs/labelling-guide.md by people who never read the analyzer.

Per field: language, intent (exact; and "intent or secondary"), sentiment, urgency, and the
need. A need is **right** when the analysis and the label agree on whether there is a need and,
when there is one, on its key (action:object): the key is what groups needs, and the words of
an implied need are ours, not the customer's. ``need_present`` and ``need_source`` are shown
beside it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.need_analyzer.domain.analyzer import Analyzer

FOLDER = Path(__file__).resolve().parent
TUNING = FOLDER / "messages.jsonl"
HELDOUT = FOLDER / "heldout.jsonl"
FIELDS = (
    "language",
    "intent",
    "intent_or_secondary",
    "secondary",
    "sentiment",
    "urgency",
    "need",
    "need_present",
    "need_source",
)


_SHOWN = ("language", "intent", "need_key", "sentiment", "urgency")


def load(path: Path = TUNING) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def need_right(expected_key: str | None, found_key: str | None) -> bool:
    """Presence agrees, and so does the key when there is a need."""
    return expected_key == found_key


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
            # Exact, "none" included: a secondary given where none applies counts against.
            "secondary": analysis.secondary == message["secondary"],
            "sentiment": analysis.sentiment.label == message["sentiment"],
            "urgency": analysis.urgency == message["urgency"],
            "need": need_right(message["need_key"], analysis.need_key),
            "need_present": (message["need_key"] is None) == (analysis.need_key is None),
            "need_source": analysis.need_source == message["need_source"],
        }
        report.total += 1
        report.correct.update(name for name, ok in found.items() if ok)
        report.confusion[(message["intent"], analysis.intent)] += 1
        if not all(found.values()):
            report.misses.append(
                {
                    "text": message["text"][:80],
                    **{k: v for k, v in found.items() if not v},
                    "expected": {k: message[k] for k in _SHOWN},
                    "got": analysis.model_dump(include=set(_SHOWN) - {"sentiment"})
                    | {"sentiment": analysis.sentiment.label},
                }
            )
    return report
