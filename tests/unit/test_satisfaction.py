from datetime import UTC, datetime, timedelta

import pytest
from pydantic import TypeAdapter, ValidationError

from services.feedback.domain.verdicts import supersedes
from shared.contracts import Rating
from shared.satisfaction import Assessment, assess_rating, assess_text

rating = TypeAdapter(Rating)


@pytest.mark.parametrize(
    ("scale", "value", "verdict"),
    [
        ("csat5", 5, "satisfied"),
        ("csat5", 4, "satisfied"),
        ("csat5", 3, "neutral"),
        ("csat5", 2, "dissatisfied"),
        ("csat5", 1, "dissatisfied"),
        ("nps10", 10, "satisfied"),
        ("nps10", 9, "satisfied"),
        ("nps10", 8, "neutral"),
        ("nps10", 7, "neutral"),
        ("nps10", 6, "dissatisfied"),
        ("nps10", 0, "dissatisfied"),
        ("ces7", 7, "satisfied"),
        ("ces7", 5, "satisfied"),
        ("ces7", 4, "neutral"),
        ("ces7", 3, "dissatisfied"),
        ("ces7", 1, "dissatisfied"),
        ("thumbs", "up", "satisfied"),
        ("thumbs", "down", "dissatisfied"),
    ],
)
def test_scale_bands(scale: str, value: object, verdict: str) -> None:
    assessment = assess_rating(rating.validate_python({"scale": scale, "value": value}))
    assert assessment.verdict == verdict
    assert 0 <= assessment.score <= 1
    assert assessment.source == "explicit"


@pytest.mark.parametrize(
    "bad",
    [
        {"scale": "csat5", "value": 0},
        {"scale": "csat5", "value": 6},
        {"scale": "nps10", "value": 11},
        {"scale": "ces7", "value": 0},
        {"scale": "thumbs", "value": "sideways"},
        {"scale": "stars", "value": 3},
    ],
)
def test_out_of_range_ratings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        rating.validate_python(bad)


def test_seed_li_si_is_neutral_not_satisfied() -> None:
    assessment = assess_text("满意度为中")
    assert assessment is not None
    assert assessment.verdict == "neutral"


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("满意度为满意", "satisfied"),
        ("满意度：非常满意", "satisfied"),
        ("满意度为不满意", "dissatisfied"),
        ("Satisfaction: medium", "neutral"),
        ("satisfaction is low", "dissatisfied"),
        ("满意度为中请尽快处理", "neutral"),
        ("满意度为高谢谢", "satisfied"),
        ("满意度：不满意哦", "dissatisfied"),
        ("满意度为非常满意", "satisfied"),
    ],
)
def test_stated_levels(text: str, verdict: str) -> None:
    assessment = assess_text(text)
    assert assessment is not None and assessment.verdict == verdict


@pytest.mark.parametrize("text", ["需要更快的响应速度", "hello", "满意度为紫色", ""])
def test_no_statement_no_verdict(text: str) -> None:
    assert assess_text(text) is None


def test_precedence() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    explicit = Assessment("dissatisfied", 0.0, "explicit", "rating csat5=1")
    implicit = Assessment("satisfied", 0.75, "implicit", "text")
    later_explicit = Assessment("satisfied", 1.0, "explicit", "rating csat5=5")
    assert supersedes(explicit, t0, None, None)
    assert not supersedes(implicit, t0 + timedelta(days=1), explicit, t0)
    assert supersedes(explicit, t0, implicit, t0 + timedelta(days=1))
    assert supersedes(later_explicit, t0 + timedelta(hours=1), explicit, t0)
    assert not supersedes(explicit, t0 - timedelta(hours=1), later_explicit, t0)
    assert not supersedes(explicit, t0 + timedelta(hours=1), explicit, t0)
