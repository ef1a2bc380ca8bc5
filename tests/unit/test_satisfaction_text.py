"""Satisfaction stated in text, and the report arithmetic."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from services.feedback.domain.reports import Counts, summarise
from services.feedback.evaluation import accuracy, evaluate, load
from services.need_analyzer.evaluation import TUNING
from services.need_analyzer.evaluation import load as load_messages
from shared.contracts import Rating
from shared.satisfaction import (
    _ENGLISH_ANY_CASE,
    _ENGLISH_STATEMENTS,
    assess_rating,
    assess_text,
)


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("满意度为中", "neutral"),
        ("非常满意", "satisfied"),
        ("不太满意", "dissatisfied"),
        ("一般般", "neutral"),
        ("还行", "neutral"),
        ("5分", "satisfied"),
        ("给个差评", "dissatisfied"),
        ("satisfaction: medium", "neutral"),
        ("very happy with the support", "satisfied"),
        ("not satisfied", "dissatisfied"),
        ("3/5", "neutral"),
        ("would not recommend", "dissatisfied"),
        ("没有不满意", "satisfied"),
        ("不是很满意", "dissatisfied"),
        ("8/10", "neutral"),
        ("I'd give you a 9", "satisfied"),
        ("★★☆☆☆", "dissatisfied"),
        ("退款收到了，整体还算满意，就是物流慢了点", "satisfied"),
    ],
)
def test_statements_of_the_issue(text: str, verdict: str) -> None:
    assessment = assess_text(text)
    assert assessment is not None and assessment.verdict == verdict, assessment
    assert assessment.source == "implicit" and 0 <= assessment.score <= 1


@pytest.mark.parametrize(
    "text",
    [
        "我的快递还没到",
        "请尽快退款",
        "How do I reset my password?",
        "满意度调查怎么填？",
        "我需要一个满意的答复",
        "等了5分钟",
        "what is your satisfaction guarantee?",
        "Also soon, please",  # "so so" only as whole words
        "1/1/1/1/1/1",
        "",
    ],
)
def test_no_statement_no_verdict(text: str) -> None:
    assert assess_text(text) is None


@pytest.mark.parametrize(
    ("value", "verdict", "score"),
    [("great", "satisfied", 1.0), ("okay", "neutral", 0.5), ("not_good", "dissatisfied", 0.0)],
)
def test_faces3(value: str, verdict: str, score: float) -> None:
    assessment = assess_rating(
        TypeAdapter(Rating).validate_python({"scale": "faces3", "value": value})
    )
    assert (assessment.verdict, assessment.score) == (verdict, score)


def test_corpus_accuracy_does_not_regress() -> None:
    rows = load()
    assert len(rows) >= 150
    assert {row["language"] for row in rows} == {"zh", "en"}
    confusion, _ = evaluate(rows)
    assert accuracy(confusion) >= 0.93


def test_report_arithmetic_against_hand_computed_values() -> None:
    # 10 rated: 6 satisfied, 1 neutral, 3 dissatisfied -> CSAT 60 %.
    # NPS answers 9, 10, 7, 3, 6 -> 2 promoters, 1 passive, 2 detractors -> NPS 0.
    # CES answers 7, 5, 2 -> 14 / 3 = 4.67.
    counts = Counts(
        rated=10,
        satisfied=6,
        neutral=1,
        dissatisfied=3,
        nps_answers=5,
        promoters=2,
        detractors=2,
        ces_answers=3,
        ces_sum=14,
    )
    summary = summarise(counts)
    assert summary["csat_percent"] == 60.0
    assert summary["nps"] == {
        "score": 0.0,
        "answers": 5,
        "promoters": 2,
        "passives": 1,
        "detractors": 2,
    }
    assert summary["ces"] == {"average": 4.67, "answers": 3}
    assert summarise(Counts())["csat_percent"] is None
    assert summarise(Counts(nps_answers=4, promoters=3, detractors=0))["nps"]["score"] == 75.0
    assert (counts + counts).rated == 20


def test_reading_stops_at_the_time_budget_and_says_so() -> None:
    ticks = iter(range(100))
    assessment = assess_text(
        "非常满意。物流很快。包装也好。", clock=lambda: float(next(ticks)), budget_seconds=1.5
    )
    assert assessment is not None and assessment.verdict == "satisfied"
    assert assessment.partial == "time budget spent after 1 of 3 clauses"
    assert "partial" in assessment.basis


def test_a_rating_in_words_is_a_rating_and_words_alone_are_not() -> None:
    assert assess_text("给个差评", words=False) is not None
    assert assess_text("8/10", words=False) is not None
    assert assess_text("非常满意", words=False) is None
    assert assess_text("非常满意") is not None


def test_english_statements_keep_the_customers_case() -> None:
    assessment = assess_text("VERY HAPPY with the fix. Also so-so delivery")
    assert assessment is not None
    assert assessment.basis == "text 'VERY HAPPY', 'so-so'"


def test_english_patterns_find_in_lowered_text_what_ignorecase_finds() -> None:
    """The English statement patterns search the lower-cased clause without IGNORECASE: in every
    labelled text they find what IGNORECASE finds in the text as written."""
    texts = [row["text"] for row in load()] + [m["text"] for m in load_messages(TUNING)]
    pairs = list(zip(_ENGLISH_STATEMENTS, _ENGLISH_ANY_CASE, strict=True))
    for text in texts:
        lowered = text.lower()
        if len(lowered) != len(text):
            continue
        for (plain, _), (any_case, _) in pairs:
            found = [match.span() for match in plain.finditer(lowered)]
            assert found == [match.span() for match in any_case.finditer(text)], text
