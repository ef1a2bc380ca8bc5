"""Which events an endpoint receives: routing-key patterns and optional channel/intent filters."""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.contracts import EVENT_TYPES, routing_key
from shared.errors import InvalidInput

SECRET_PREFIX = "whsec_"
_WORD = re.compile(r"^(?:[a-z_]+|\*|#)$")
ROUTING_KEYS = tuple(sorted(routing_key(event_type) for event_type in EVENT_TYPES))


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """An AMQP topic pattern as a regex: ``*`` is one word, ``#`` zero or more words."""
    words = pattern.split(".")
    if words == ["#"]:
        return re.compile(r"^.*$")
    regex = ""
    for index, word in enumerate(words):
        if word == "#":
            # Leading: words each followed by a dot; elsewhere: words each after a dot.
            regex += r"(?:[^.]+\.)*" if index == 0 else r"(?:\.[^.]+)*"
            continue
        if index and not (index == 1 and words[0] == "#"):
            regex += r"\."
        regex += r"[^.]+" if word == "*" else re.escape(word)
    return re.compile(f"^{regex}$")


def check_patterns(patterns: Sequence[str]) -> list[str]:
    """Valid patterns, each matching at least one event type; a 422 naming ``events`` if not."""
    if not patterns:
        raise InvalidInput("name at least one routing-key pattern", field="events")
    checked = []
    for index, raw in enumerate(patterns):
        pattern = raw.strip().removeprefix("kefu.")
        if not pattern or not all(_WORD.match(word) for word in pattern.split(".")):
            raise InvalidInput(
                f"{raw!r} is not a routing-key pattern (words of a-z and _, '*' or '#', "
                "separated by dots)",
                field=f"events[{index}]",
            )
        if not any(pattern_regex(pattern).match(key) for key in ROUTING_KEYS):
            raise InvalidInput(
                f"{raw!r} matches no event type; known: {', '.join(ROUTING_KEYS)}",
                field=f"events[{index}]",
            )
        checked.append(pattern)
    return sorted(set(checked))


@dataclass(frozen=True)
class Selector:
    """What an endpoint asked for."""

    patterns: tuple[str, ...]
    channels: frozenset[str] | None = None
    intents: frozenset[str] | None = None

    @classmethod
    def of(
        cls,
        patterns: Iterable[str],
        channels: Iterable[str] | None,
        intents: Iterable[str] | None,
    ) -> Selector:
        return cls(
            tuple(patterns),
            frozenset(channels) if channels is not None else None,
            frozenset(intents) if intents is not None else None,
        )

    def wants(self, event_type: str, data: Mapping[str, Any]) -> bool:
        key = routing_key(event_type)
        if not any(_compiled(pattern).match(key) for pattern in self.patterns):
            return False
        # A filter admits only events that carry the field with an admitted value.
        if self.channels is not None and data.get("channel") not in self.channels:
            return False
        return self.intents is None or intent_of(data) in self.intents


def intent_of(data: Mapping[str, Any]) -> str | None:
    """The intent an event carries: its own (follow-ups), or its analysis's."""
    intent = data.get("intent")
    if intent is None and isinstance(data.get("analysis"), Mapping):
        intent = data["analysis"].get("intent")
    return intent if isinstance(intent, str) else None


_CACHE: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    regex = _CACHE.get(pattern)
    if regex is None:
        regex = _CACHE[pattern] = pattern_regex(pattern)
    return regex


def routing_keys_wanted(patterns: Iterable[str]) -> set[str]:
    """The event types' routing keys that any of the patterns match."""
    regexes = [pattern_regex(pattern) for pattern in set(patterns)]
    return {key for key in ROUTING_KEYS if any(regex.match(key) for regex in regexes)}
