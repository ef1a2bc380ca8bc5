"""The fault suite's count of duplicate effects: redeliveries are not effects, second events are."""

from __future__ import annotations

from typing import Any

import aio_pika

from tests.chaos.harness import Seen, Tap, duplicate_effects


def _seen(event_id: str, event_type: str, **data: Any) -> Seen:
    return Seen(0.0, event_id, event_type, data, False, aio_pika.Message(b"{}"))


def test_the_same_event_twice_is_a_redelivery_not_an_effect() -> None:
    tap = Tap("amqp://unused")
    tap.seen = [
        _seen("e1", "kefu.improvement.followup_required", issue_id="i1"),
        _seen("e1", "kefu.improvement.followup_required", issue_id="i1"),
    ]
    assert duplicate_effects(tap, {"i1"}) == (0, 1)


def test_a_second_follow_up_for_one_issue_is_a_duplicate_effect() -> None:
    tap = Tap("amqp://unused")
    tap.seen = [
        _seen("e1", "kefu.improvement.followup_required", issue_id="i1"),
        _seen("e2", "kefu.improvement.followup_required", issue_id="i1"),
        _seen("e3", "kefu.improvement.followup_required", issue_id="i2"),
        _seen("e4", "kefu.improvement.followup_required", issue_id="other-run"),
        _seen("e5", "kefu.improvement.followup_required", issue_id="other-run"),
    ]
    assert duplicate_effects(tap, {"i1", "i2"}) == (1, 0)


def test_a_verdict_replaced_by_a_different_one_is_not_a_duplicate() -> None:
    tap = Tap("amqp://unused")
    implicit = {"verdict": "unsatisfied", "score": 0.2, "basis": "text"}
    rating = {"verdict": "unsatisfied", "score": 0.0, "basis": "csat5=1"}
    tap.seen = [
        _seen("v1", "kefu.satisfaction.evaluated", issue_id="i1", **implicit),
        _seen("v2", "kefu.satisfaction.evaluated", issue_id="i1", **rating),
        _seen("v3", "kefu.satisfaction.evaluated", issue_id="i2", **implicit),
        _seen("v4", "kefu.satisfaction.evaluated", issue_id="i2", **implicit),
    ]
    assert duplicate_effects(tap, {"i1", "i2"}) == (1, 0)
