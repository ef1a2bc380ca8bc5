"""The top needs and intents of a period, ranked from the issue counts of each (need, intent)."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PairCount:
    """Issues of one need group (its key, or its case-folded words; None without a need) and
    intent, in the period asked for
    (``current``) or in the period before it."""

    current: bool
    need: str | None
    intent: str
    count: int


@dataclass(frozen=True)
class Ranked:
    key: str
    count: int
    previous: int
    intents: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TopNeeds:
    issues: int
    needs: list[Ranked]
    intents: list[Ranked]


def rank(pairs: Iterable[PairCount], limit: int) -> TopNeeds:
    """The ``limit`` most frequent needs (with their intents) and intents, most frequent first,
    ties by name; each with its count in the period before."""
    needs: Counter[str] = Counter()
    intents: Counter[str] = Counter()
    needs_before: Counter[str] = Counter()
    intents_before: Counter[str] = Counter()
    intents_of: defaultdict[str, set[str]] = defaultdict(set)
    for pair in pairs:
        if pair.current:
            intents[pair.intent] += pair.count
            if pair.need is not None:
                needs[pair.need] += pair.count
                intents_of[pair.need].add(pair.intent)
        else:
            intents_before[pair.intent] += pair.count
            if pair.need is not None:
                needs_before[pair.need] += pair.count

    def top(counts: Counter[str]) -> list[tuple[str, int]]:
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]

    return TopNeeds(
        issues=sum(intents.values()),
        needs=[
            Ranked(need, count, needs_before[need], sorted(intents_of[need]))
            for need, count in top(needs)
        ],
        intents=[Ranked(intent, count, intents_before[intent]) for intent, count in top(intents)],
    )
