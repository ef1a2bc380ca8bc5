"""The verdict rules as a pure function: statements in, changes and rows to write out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter

from services.feedback.domain.verdicts import Statement, Verdict, decide
from shared.contracts import CustomerRef, Rating
from shared.satisfaction import Assessment, assess_rating

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
NOW = datetime(2026, 3, 2, tzinfo=UTC)
ISSUE = uuid.uuid4()
LI_SI = CustomerRef(customer_id=uuid.uuid4(), name="李四")
NEUTRAL_TEXT = Assessment("neutral", 0.5, "implicit", "text '满意度为中'")
HAPPY_TEXT = Assessment("satisfied", 1.0, "implicit", "text '非常满意'")


def rating(scale: str, value: Any) -> Rating:
    return TypeAdapter(Rating).validate_python({"scale": scale, "value": value})


def rated(scale: str, value: Any, at: datetime, customer: CustomerRef | None = LI_SI) -> Statement:
    r = rating(scale, value)
    return Statement(ISSUE, assess_rating(r), at, customer, r)


def said(assessment: Assessment, at: datetime, issue_id: uuid.UUID | None = ISSUE) -> Statement:
    return Statement(issue_id, assessment, at, LI_SI)


def stored(assessment: Assessment, at: datetime, **kept: Any) -> dict[uuid.UUID, Verdict]:
    verdict = Verdict(uuid.uuid4(), ISSUE, assessment, at, at, LI_SI, **kept)
    return {ISSUE: verdict}


def test_the_first_statement_makes_a_new_verdict() -> None:
    outcome = decide([said(NEUTRAL_TEXT, T0)], {}, now=NOW)
    [change] = outcome.changes
    assert change.replaces is None
    assert change.verdict.assessment == NEUTRAL_TEXT and change.verdict.evaluated_at == NOW
    [written] = outcome.written
    assert written.new and written.reevaluated and written.verdict == change.verdict


def test_text_never_replaces_a_rating_and_nothing_changed_publishes_nothing() -> None:
    current = stored(assess_rating(rating("csat5", 2)), T0)
    outcome = decide([said(HAPPY_TEXT, T0 + timedelta(days=1))], current, now=NOW)
    assert outcome.changes == [] and outcome.written == []
    same = decide([rated("csat5", 2, T0 + timedelta(hours=1))], current, now=NOW)
    assert same.changes == [] and same.written == []


def test_a_rating_replaces_text_and_names_what_it_replaces() -> None:
    current = stored(NEUTRAL_TEXT, T0 + timedelta(days=1))
    outcome = decide([rated("csat5", 2, T0)], current, now=NOW)
    [change] = outcome.changes
    assert change.replaces == NEUTRAL_TEXT
    assert change.verdict.id == current[ISSUE].id
    [written] = outcome.written
    assert not written.new and written.reevaluated


def test_an_older_rating_loses_but_its_newer_nps_answer_is_kept() -> None:
    current = stored(assess_rating(rating("csat5", 2)), T0 + timedelta(hours=2))
    outcome = decide([rated("nps10", 10, T0)], current, now=NOW)
    assert outcome.changes == []
    [written] = outcome.written
    assert not written.reevaluated
    assert (written.verdict.nps, written.verdict.nps_at) == (10, T0)
    assert written.verdict.assessment == current[ISSUE].assessment
    assert written.verdict.evaluated_at == current[ISSUE].evaluated_at


def test_an_answer_older_than_the_one_kept_is_ignored() -> None:
    current = stored(assess_rating(rating("ces7", 6)), T0, ces=6, ces_at=T0)
    outcome = decide([rated("ces7", 6, T0 - timedelta(hours=1))], current, now=NOW)
    assert outcome.written == []


def test_a_statement_without_a_customer_keeps_the_verdicts_customer() -> None:
    current = stored(NEUTRAL_TEXT, T0)
    outcome = decide([rated("thumbs", "down", T0, customer=None)], current, now=NOW)
    assert outcome.changes[0].verdict.customer == LI_SI


def test_several_statements_of_one_issue_fold_in_order() -> None:
    statements = [
        said(NEUTRAL_TEXT, T0),
        rated("csat5", 2, T0 + timedelta(hours=1)),
        said(HAPPY_TEXT, T0 + timedelta(hours=2)),  # text loses to the rating
        rated("csat5", 5, T0 + timedelta(minutes=30)),  # older: loses
        rated("nps10", 10, T0 + timedelta(hours=4)),
        rated("nps10", 10, T0 + timedelta(hours=5)),  # same verdict: nothing to publish
    ]
    outcome = decide(statements, {}, now=NOW)
    assert [
        (c.verdict.assessment.basis, c.replaces and c.replaces.basis) for c in outcome.changes
    ] == [
        ("text '满意度为中'", None),
        ("rating csat5=2", "text '满意度为中'"),
        ("rating nps10=10", "rating csat5=2"),
    ]
    [written] = outcome.written
    assert written.new and written.reevaluated
    assert written.verdict.assessment.basis == "rating nps10=10"
    assert (written.verdict.nps, written.verdict.nps_at) == (10, T0 + timedelta(hours=5))
    assert written.verdict.decided_at == T0 + timedelta(hours=4)


def test_feedback_naming_no_issue_gets_a_verdict_each_time_in_order() -> None:
    other = uuid.uuid4()
    statements = [
        said(HAPPY_TEXT, T0, issue_id=None),
        said(NEUTRAL_TEXT, T0, issue_id=other),
        said(HAPPY_TEXT, T0, issue_id=None),
    ]
    outcome = decide(statements, {}, now=NOW)
    assert [c.verdict.issue_id for c in outcome.changes] == [None, other, None]
    assert len({w.verdict.id for w in outcome.written}) == 3
    assert all(w.new for w in outcome.written)
