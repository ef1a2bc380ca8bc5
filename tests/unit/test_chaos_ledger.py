"""The fault suite's ledger: redeliveries are not effects, second events are; the flow is back
when the first held-up issue completes, not when the backlog has drained."""

from __future__ import annotations

from typing import Any

from tests.chaos.harness import Seen, Tap, duplicate_effects, recovery


def _seen(event_id: str, event_type: str, **data: Any) -> Seen:
    return Seen(0.0, event_id, event_type, data, False, b"{}")


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


def test_the_flow_is_back_with_the_first_held_up_issue_and_drained_with_the_last() -> None:
    # Cleared at 100: "a" finished before, "b" and "c" were held up, "d" was posted after.
    first_tries = {"a": 10.0, "b": 50.0, "c": 90.0, "d": 101.0}
    arrivals = {"a": 11.0, "b": 103.0, "c": 125.0, "d": 126.0}
    assert recovery(first_tries, arrivals, 100.0) == (3.0, 25.0)


def test_with_nothing_held_up_the_flow_is_measured_on_fresh_issues() -> None:
    assert recovery({"a": 10.0, "b": 101.0}, {"a": 11.0, "b": 102.5}, 100.0) == (2.5, 0.0)


def test_an_issue_that_never_completed_leaves_the_backlog_undrained() -> None:
    flow_back, drained = recovery({"a": 10.0, "b": 20.0}, {"a": 104.0}, 100.0)
    assert flow_back == 4.0 and drained is None
