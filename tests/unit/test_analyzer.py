import pytest

from services.need_analyzer.domain.analyzer import (
    SeedRulesAnalyzer,
    classify_intent,
    detect_language,
    extract_need,
    rate_urgency,
    score_sentiment,
)


def test_seed_zhang_san() -> None:
    analysis = SeedRulesAnalyzer().analyze("需要更快的响应速度")
    assert analysis.need == "更快的响应速度"
    assert analysis.intent == "response_speed"
    assert analysis.language == "zh"


@pytest.mark.parametrize(
    ("text", "need"),
    [
        ("您好，我需要退款，订单号1234。谢谢", "退款"),
        ("Hi team, I need a refund for order 1234. Thanks!", "a refund for order 1234"),
        ("We would like to change the delivery address", "change the delivery address"),
        ("满意度为中", None),
        ("我不需要帮助了，谢谢", None),
        ("The app is great", None),
    ],
)
def test_need_is_the_stated_clause_or_none(text: str, need: str | None) -> None:
    assert extract_need(text) == need


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("需要更快的响应速度", "zh"),
        ("my parcel is late", "en"),
        ("我的order没到", "zh"),
        ("order #1234 ???", "en"),
        ("😀👍", "und"),
        ("12345", "und"),
        ("", "und"),
    ],
)
def test_language_by_script(text: str, language: str) -> None:
    assert detect_language(text) == language


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("我要退款", "refund"),
        ("the parcel tracking shows nothing", "delivery"),
        ("I was charged twice on my invoice", "billing"),
        ("忘记密码，无法登录", "account"),
        ("满意度为中", "feedback"),
        ("hello", "other"),
    ],
)
def test_intent_cues(text: str, intent: str) -> None:
    assert classify_intent(text)[0] == intent


def test_negation_turns_satisfaction_negative() -> None:
    assert score_sentiment("我不太满意").label == "negative"
    assert score_sentiment("not happy with the support").label == "negative"
    assert score_sentiment("very happy, thanks").label == "positive"
    assert score_sentiment("满意度为中").label == "neutral"


def test_urgency() -> None:
    assert rate_urgency("系统宕机了") == "urgent"
    assert rate_urgency("please fix this asap") == "high"
    assert rate_urgency("just a question") == "normal"
