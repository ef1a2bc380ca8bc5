"""Screening new labelled messages before they join the tuning set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from services.need_analyzer.evaluation.ingest import problems, screen


def message(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "text": "快递五天没动了",
        "channel": "chat",
        "language": "zh",
        "intent": "delivery",
        "secondary": None,
        "need": "尽快送达包裹",
        "need_source": "implied",
        "need_key": "deliver:package",
        "sentiment": "negative",
        "urgency": "normal",
    }
    return base | changes


def test_a_message_by_the_guide_has_no_problem() -> None:
    assert problems(message()) == []
    assert problems(message(need=None, need_source=None, need_key=None, intent="praise")) == []


def test_labels_outside_the_vocabularies_are_named() -> None:
    assert problems(message(intent="shipping")) == ["intent: 'shipping' not in the vocabulary"]
    assert problems(message(need_key="speed:response")) == [
        "need_key: 'speed:response' not in docs/need-keys.md"
    ]
    assert problems(message(secondary="delivery")) == ["secondary: 'delivery'"]
    assert problems(message(need_source=None)) == [
        "need, need_source, need_key: not all null or all set"
    ]
    assert problems(message(mood="bad"))[0].startswith("keys:")


def test_duplicates_and_near_copies_of_held_out_texts_are_refused(tmp_path: Path) -> None:
    batch = tmp_path / "batch.jsonl"
    lines = [
        message(text="快递五天没动了"),  # a tuning text
        message(text="My parcel has not moved for a week, where is it?"),  # near a held-out one
        message(text="退款什么时候到账"),
        message(text="退款什么时候到账 "),  # the same text again
        message(intent="nothing"),
        "not json",
    ]
    batch.write_text(
        "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n"
    )
    tuning = [message()]
    heldout = [message(text="my parcel has not moved for a week! where is it")]
    kept, refused = screen([batch], tuning, heldout)
    assert [m["text"] for m in kept] == ["退款什么时候到账"]
    assert [reason.split(": ", 1)[1] for reason in refused] == [
        "duplicate of a tuning message",
        "too close to a held-out message",
        "duplicate of a tuning message",
        "intent: 'nothing' not in the vocabulary",
        "not JSON (Expecting value)",
    ]
    assert all("parcel" not in reason for reason in refused)  # held-out texts are never shown


def test_a_new_held_out_message_near_a_tuning_text_is_refused(tmp_path: Path) -> None:
    batch = tmp_path / "batch.jsonl"
    lines = [
        message(text="快递五天了还没动，怎么回事"),  # near the tuning text
        message(text="my parcel has not moved for a week! where is it"),  # a held-out text
        message(text="发票抬头开错了，麻烦重开"),
    ]
    batch.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    tuning = [message(text="快递五天了还没动，怎么回事？")]
    heldout = [message(text="my parcel has not moved for a week! where is it")]
    kept, refused = screen([batch], tuning, heldout, into_heldout=True)
    assert [m["text"] for m in kept] == ["发票抬头开错了，麻烦重开"]
    assert [reason.split(": ", 1)[1] for reason in refused] == [
        "too close to a tuning message",
        "too close to a held-out message",
    ]
    # Into the tuning set, nearness to a tuning text is no reason (only exact duplicates are).
    kept, _ = screen([batch], tuning, heldout)
    assert len(kept) == 2
