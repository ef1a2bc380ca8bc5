"""`python -m services.need_analyzer.evaluation.ingest FILE... [--append | --append-heldout]`:
checks new labelled messages against the labelling guide's schema and vocabularies, and appends
the good ones to the TUNING set (or, with --append-heldout, to the HELD-OUT set: a fresh part
written by annotators who never read the analyzer, once the old part has been looked at too
often).

A message is refused when a key is missing or extra, a label is outside its vocabulary, the
need fields disagree on whether there is a need, its text (case and spacing set aside) is
already in either set or earlier in the batch, or it is close to a held-out text (half or more
of their character 4-grams shared): a near copy would carry the held-out phrasing into
training. A new held-out message is refused near a tuning text too: it would be scored on what
the model learnt. The held-out set is only compared with, never shown: a refusal names the
file and line.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any, get_args

from services.need_analyzer.domain.need_keys import is_key
from services.need_analyzer.evaluation import HELDOUT, TUNING, load
from shared.contracts import Intent, NeedSource, SentimentLabel, Urgency

KEYS = (
    "text",
    "channel",
    "language",
    "intent",
    "secondary",
    "need",
    "need_source",
    "need_key",
    "sentiment",
    "urgency",
)
CHANNELS = frozenset({"email", "phone", "chat", "web", "social", "sms"})
LANGUAGES = frozenset({"zh", "en", "und"})
INTENTS = frozenset(get_args(Intent))
_VOCABULARIES: dict[str, frozenset[str]] = {
    "channel": CHANNELS,
    "language": LANGUAGES,
    "intent": INTENTS,
    "sentiment": frozenset(get_args(SentimentLabel)),
    "urgency": frozenset(get_args(Urgency)),
}
_SPACE = re.compile(r"\s+")


def fingerprint(text: str) -> str:
    """What makes two texts the same message: case and spacing set aside."""
    return _SPACE.sub(" ", text.casefold()).strip()


def shingles(text: str) -> frozenset[str]:
    folded = fingerprint(text)
    return frozenset(folded[i : i + 4] for i in range(max(1, len(folded) - 3)))


def similarity(one: frozenset[str], other: frozenset[str]) -> float:
    """Jaccard similarity of two texts' character 4-grams."""
    return len(one & other) / len(one | other) if one or other else 1.0


# A new text at least this similar to a held-out one is refused.
NEAR_HELDOUT = 0.5


def problems(message: dict[str, Any]) -> list[str]:
    """Why a message breaks the guide's schema (empty when it does not)."""
    if set(message) != set(KEYS):
        missing, extra = set(KEYS) - set(message), set(message) - set(KEYS)
        return [f"keys: missing {sorted(missing)}, extra {sorted(extra)}"]
    found = []
    if not isinstance(message["text"], str) or not message["text"].strip():
        found.append("text: empty")
    for name, vocabulary in _VOCABULARIES.items():
        if message[name] not in vocabulary:
            found.append(f"{name}: {message[name]!r} not in the vocabulary")
    secondary = message["secondary"]
    if secondary is not None and (secondary not in INTENTS or secondary == message["intent"]):
        found.append(f"secondary: {secondary!r}")
    need, source, key = message["need"], message["need_source"], message["need_key"]
    if (need is None) != (source is None) or (need is None) != (key is None):
        found.append("need, need_source, need_key: not all null or all set")
    if source is not None and source not in get_args(NeedSource):
        found.append(f"need_source: {source!r} not in the vocabulary")
    if key is not None and not (isinstance(key, str) and is_key(key)):
        found.append(f"need_key: {key!r} not in docs/need-keys.md")
    if need is not None and not (isinstance(need, str) and need.strip()):
        found.append("need: empty")
    if message["language"] == "und" and key is not None:
        found.append("need_key: language und never has a need")
    return found


def screen(
    files: list[Path],
    tuning: list[dict[str, Any]],
    heldout: list[dict[str, Any]],
    into_heldout: bool = False,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The messages to keep, and one line per refusal."""
    seen = {fingerprint(m["text"]) for m in tuning + heldout}
    held = [shingles(m["text"]) for m in heldout]
    tuned = [shingles(m["text"]) for m in tuning] if into_heldout else []
    kept: list[dict[str, Any]] = []
    refused: list[str] = []
    for path in files:
        for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{path.name}:{number}"
            try:
                message = json.loads(line)
            except json.JSONDecodeError as error:
                refused.append(f"{where}: not JSON ({error.msg})")
                continue
            if not isinstance(message, dict):
                refused.append(f"{where}: not an object")
                continue
            wrong = problems(message)
            if wrong:
                refused.append(f"{where}: " + "; ".join(wrong))
                continue
            text = fingerprint(message["text"])
            own = shingles(message["text"])
            if any(similarity(own, other) >= NEAR_HELDOUT for other in held):
                refused.append(f"{where}: too close to a held-out message")
            elif text in seen:
                refused.append(f"{where}: duplicate of a tuning message")
            elif any(similarity(own, other) >= NEAR_HELDOUT for other in tuned):
                refused.append(f"{where}: too close to a tuning message")
            else:
                seen.add(text)
                kept.append({name: message[name] for name in KEYS})
    return kept, refused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="+", type=Path)
    into = parser.add_mutually_exclusive_group()
    into.add_argument("--append", action="store_true", help="append to the tuning set")
    into.add_argument("--append-heldout", action="store_true", help="append to the held-out set")
    args = parser.parse_args()
    kept, refused = screen(args.files, load(TUNING), load(HELDOUT), args.append_heldout)
    for reason in refused:
        print("refused", reason)
    languages = Counter(m["language"] for m in kept)
    print(f"{len(kept)} kept ({dict(languages)}), {len(refused)} refused")
    target = TUNING if args.append else HELDOUT if args.append_heldout else None
    if target is not None and kept:
        with target.open("a", encoding="utf-8") as out:
            for message in kept:
                out.write(json.dumps(message, ensure_ascii=False) + "\n")
        print(f"appended to {target}")


if __name__ == "__main__":
    main()
