"""The need analyzer on real (offline) models: the seed, the hard cases, and accuracy floors."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from bench.analyzer import adversarial_texts
from services.need_analyzer.adapters.models import OfflineModels, load_linear_model
from services.need_analyzer.domain.analyzer import (
    IntentResult,
    TextAnalyzer,
    _explain,
    _intent_of,
    extract_need,
)
from services.need_analyzer.domain.linear import Prediction
from services.need_analyzer.evaluation import HELDOUT, TUNING, evaluate, load, need_right
from shared.satisfaction import assess_text


@pytest.fixture(scope="session")
def analyzer(tmp_path_factory: pytest.TempPathFactory) -> TextAnalyzer:
    cache = Path(tmp_path_factory.mktemp("jieba-cache"))
    return TextAnalyzer(OfflineModels(cache), load_linear_model())


def test_seed_zhang_san(analyzer: TextAnalyzer) -> None:
    analysis = analyzer.analyze("需要更快的响应速度")
    assert analysis.need == "更快的响应速度"
    assert analysis.need_source == "stated"
    assert analysis.need_key == "speed_up:response"
    assert analysis.intent == "response_speed"
    assert analysis.language == "zh"
    assert analysis.explanations["intent"].evidence
    assert 0 < analysis.explanations["intent"].confidence <= 1


def test_seed_li_si_is_a_satisfaction_statement(analyzer: TextAnalyzer) -> None:
    analysis = analyzer.analyze("满意度为中")
    assert analysis.intent == "feedback"
    assert analysis.need is None and analysis.need_source is None and analysis.need_key is None
    assert analysis.sentiment.label == "neutral"


@pytest.mark.parametrize(
    ("text", "key", "need"),
    [
        ("快递三天没动了，订单 2026113002", "deliver:package", "尽快送达包裹"),
        ("I was charged twice for order #K5521", "refund:charge", "refund the wrong charge"),
    ],
)
def test_a_problem_without_a_request_implies_a_need(
    analyzer: TextAnalyzer, text: str, key: str, need: str
) -> None:
    analysis = analyzer.analyze(text)
    assert (analysis.need, analysis.need_source, analysis.need_key) == (need, "implied", key)


@pytest.mark.parametrize("text", ["回复快一点行吗", "需要更快的响应速度", "等了两个小时没人理"])
def test_needs_of_one_meaning_share_a_key(analyzer: TextAnalyzer, text: str) -> None:
    assert analyzer.analyze(text).need_key == "speed_up:response"


@pytest.mark.parametrize("text", ["在吗", "谢谢小张，耐心又专业", "Thank you so much!"])
def test_greetings_and_thanks_have_no_need(analyzer: TextAnalyzer, text: str) -> None:
    assert analyzer.analyze(text).need is None


@pytest.mark.parametrize(
    ("text", "need"),
    [
        ("您好，我需要退款，订单号1234。谢谢", "退款"),
        ("Hi team, I need a refund for order 1234. Thanks!", "a refund for order 1234"),
        ("We would like to change the delivery address", "change the delivery address"),
        ("能不能帮我换一个新的", "换一个新的"),
        ("我不需要帮助了，谢谢", None),
        ("满意度为中", None),
        ("The app is great", None),
    ],
)
def test_need_is_the_stated_request_or_none(text: str, need: str | None) -> None:
    assert extract_need(text)[0] == need


# The labelling guide's §3.2: request forms state the need; information questions (how-to,
# do you, wh-questions) and reports of what was done imply it.
@pytest.mark.parametrize(
    ("text", "need"),
    [
        ("外卖超时了，能不能快点送到", "快点送到"),
        ("把我的会员从年费降成月费", "把我的会员从年费降成月费"),
        ("发错货了，给我换", "换"),
        ("麻烦给我换一下", "换一下"),
        ("扣了我一年的会员费，这个钱必须退", "退"),
        ("Can I change my delivery address?", "change my delivery address"),
        ("Order still not shipped after 10 days, just cancel it.", "cancel it"),
        ("You really should offer next-day delivery.", "offer next-day delivery"),
        ("4/5, it would be nice if the box were smaller", "the box were smaller"),
        ("怎么取消自动续费？", None),
        ("Do you ship to Canada?", None),
        ("How do I change my e-mail?", None),
        ("where can I find my invoice?", None),
        ("说好今天给我回电话，等到现在也没人打来", None),
        ("我把地址写错了，是3栋", None),
    ],
)
def test_request_forms_state_a_need_and_questions_do_not(text: str, need: str | None) -> None:
    assert extract_need(text)[0] == need


def test_praise_and_other_are_never_secondary() -> None:
    def head(label: str) -> Prediction:
        return Prediction(label, 0.9, [(label, 0.9)])

    rules = IntentResult("refund", None, _explain(0.5, []), [], cued=True)
    for label in ("praise", "other", "none", "refund"):
        assert _intent_of(head("refund"), head(label), rules)[1] is None
    assert _intent_of(head("refund"), head("product_quality"), rules)[1] == "product_quality"


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("需要更快的响应速度", "zh"),
        ("my parcel is late", "en"),
        ("我的order还没到", "zh"),
        ("Hi 客服, my order is late again", "en"),
        ("😀👍", "und"),
        ("12345", "und"),
        ("", "und"),
        ("ご注文ありがとうございます", "ja"),
        ("merci beaucoup", "und"),
        ("kuaidi zenme hai mei dao a, dou yi zhou le", "zh"),  # pinyin is Chinese
        ("tuikuan shenme shihou dao", "zh"),
        ("a man can hang on", "en"),  # every word pinyin-like, most of them English
    ],
)
def test_language(analyzer: TextAnalyzer, text: str, language: str) -> None:
    assert analyzer.analyze(text).language == language


@pytest.mark.parametrize(
    ("word", "pinyin"),
    [
        ("kuaidi", True),
        ("zhuangxiang", True),
        ("nv", True),
        ("order", False),
        ("hello", False),
        ("a" * 30, False),
        ("", False),
    ],
)
def test_a_pinyin_word_splits_into_syllables(
    analyzer: TextAnalyzer, word: str, pinyin: bool
) -> None:
    assert analyzer.models.is_pinyin(word) is pinyin


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("我不太满意", "negative"),
        ("not happy with the support", "negative"),
        ("very happy, thanks a lot", "positive"),
        ("请问周末发货吗？", "neutral"),
        ("Do you ship to Canada?", "neutral"),
        ("物流太慢了，一个星期还没到", "negative"),
    ],
)
def test_sentiment_rules_where_models_fail(analyzer: TextAnalyzer, text: str, label: str) -> None:
    assert analyzer.analyze(text).sentiment.label == label


@pytest.mark.parametrize(
    ("text", "urgency"),
    [
        ("系统宕机了，所有用户都登不上", "urgent"),
        ("my account was hacked", "urgent"),
        ("I will contact my lawyer", "urgent"),
        ("please fix this asap", "high"),
        ("第三次联系你们了，还没人处理", "high"),
        ("Thank you, great service!", "low"),
        ("我的快递到哪了", "normal"),
    ],
)
def test_urgency(analyzer: TextAnalyzer, text: str, urgency: str) -> None:
    assert analyzer.analyze(text).urgency == urgency


def test_keywords_leave_out_urls_and_codes(analyzer: TextAnalyzer) -> None:
    token = "x" * 150
    analysis = analyzer.analyze(f"my order page https://example.com/{token} shows an error")
    assert analysis.keywords and all(len(word) <= 40 for word in analysis.keywords)


def test_text_without_chinese_is_split_as_jieba_splits_it(analyzer: TextAnalyzer) -> None:
    """The fast path for text jieba has no word for gives jieba's own tokens."""
    models = analyzer.models
    assert isinstance(models, OfflineModels)
    texts = [m["text"] for m in load(TUNING) if not re.search("[\u4e00-\u9fd5]", m["text"])]
    texts += ["v2.5 costs 50% more -- SF1402938845 #tag ... pro-max 3.5kg", "Привет, мир"]
    for text in texts:
        jieba_words = [word for word in models.tokenizer.lcut(text) if word.strip()]
        assert models.segment(text) == jieba_words, text


def test_two_intents_give_a_secondary(analyzer: TextAnalyzer) -> None:
    analysis = analyzer.analyze("包裹到了但是杯子碎了，我要退款")
    assert {analysis.intent, analysis.secondary} == {"refund", "product_quality"}


def test_a_need_is_right_when_presence_and_key_agree() -> None:
    assert need_right(None, None)
    assert need_right("refund:order", "refund:order")
    assert not need_right("refund:order", None)
    assert not need_right(None, "refund:order")
    assert not need_right("refund:order", "refund:charge")


# Floors a little under the figures of README (the tuned set is what the model was trained on;
# the held-out set was never used to tune): a regression fails the build.
FLOORS = {
    TUNING: {
        "language": 0.97,
        "intent": 0.97,
        "secondary": 0.97,
        "sentiment": 0.97,
        "urgency": 0.97,
        "need": 0.97,
        "need_source": 0.90,
    },
    HELDOUT: {
        "language": 0.98,
        "intent": 0.90,
        "secondary": 0.92,
        "sentiment": 0.90,
        "urgency": 0.87,
        "need": 0.85,
        "need_source": 0.92,
    },
}


@pytest.mark.parametrize("path", [TUNING, HELDOUT], ids=["tuned", "held-out"])
def test_accuracy_on_the_labelled_sets_does_not_regress(analyzer: TextAnalyzer, path: Path) -> None:
    messages = load(path)
    assert len(messages) >= 300
    report = evaluate(analyzer, messages)
    accuracy = {name: round(report.accuracy(name), 3) for name in FLOORS[path]}
    assert all(accuracy[name] >= floor for name, floor in FLOORS[path].items()), accuracy


@pytest.mark.parametrize("name", sorted(adversarial_texts()))
def test_adversarial_texts_cost_linear_time(analyzer: TextAnalyzer, name: str) -> None:
    """20,000 characters built to make rules backtrack or rescan: each once cost seconds. The
    bench holds them to 50 ms of CPU; here a margin for a loaded test machine, and the best of
    three runs (a collection of the test process's large heap can fall in one run)."""
    text = adversarial_texts()[name]
    # Its budget in CPU time here, so that a loaded test machine cannot make it partial.
    in_cpu_time = replace(analyzer, clock=time.thread_time)
    assert not in_cpu_time.analyze(text).partial
    assert _best_cpu_seconds(in_cpu_time.analyze, text) < 0.25
    assert _best_cpu_seconds(assess_text, text) < 0.25


def _best_cpu_seconds(work: Callable[[str], object], text: str) -> float:
    times = []
    for _ in range(3):
        started = time.thread_time()
        work(text)
        times.append(time.thread_time() - started)
    return min(times)


def test_an_analysis_over_its_budget_skips_what_it_can_and_says_so(
    analyzer: TextAnalyzer,
) -> None:
    ticks = iter(range(100))
    slow = replace(analyzer, clock=lambda: float(next(ticks)))  # each look at the clock: 1 s
    analysis = slow.analyze("需要更快的响应速度，等了三天了")
    assert analysis.partial
    assert analysis.partial_reason is not None
    assert "models, linear model, keywords skipped" in analysis.partial_reason
    assert analysis.keywords == []
    # What the rules decide is still there.
    assert analysis.need == "更快的响应速度"
    assert analysis.intent == "response_speed"


def test_a_text_longer_than_intake_accepts_is_read_in_part(analyzer: TextAnalyzer) -> None:
    analysis = analyzer.analyze("我要退款。" + "x" * 30_000)
    assert analysis.partial
    assert analysis.partial_reason is not None and "first 21000" in analysis.partial_reason
    assert analysis.intent == "refund"


@pytest.mark.parametrize(
    "text",
    ["8/10", "3/10", "4 out of 5", "★★☆☆☆", "满意度为中", "给个差评", "打个9分", "rating: 2 stars"],
)
def test_ratings_read_as_feedback_with_the_verdict_feedback_gives(
    analyzer: TextAnalyzer, text: str
) -> None:
    """One reader for both services: the sentiment follows feedback's verdict of the rating."""
    assessment = assess_text(text)
    assert assessment is not None
    analysis = analyzer.analyze(text)
    assert analysis.intent == "feedback"
    expected = {"satisfied": "positive", "neutral": "neutral", "dissatisfied": "negative"}
    assert analysis.sentiment.label == expected[assessment.verdict]


def test_top_needs_are_ranked_from_pair_counts() -> None:
    from services.need_analyzer.domain.needs import PairCount, rank

    pairs = [
        PairCount(True, "speed:response", "response_speed", 5),
        PairCount(True, "speed:response", "complaint", 1),
        PairCount(True, "refund:order", "refund", 6),
        PairCount(True, None, "feedback", 9),
        PairCount(True, "a refund", "refund", 6),
        PairCount(False, "refund:order", "refund", 2),
        PairCount(False, None, "praise", 4),
    ]
    top = rank(pairs, limit=2)
    assert top.issues == 27
    assert [(n.key, n.count, n.previous) for n in top.needs] == [
        ("a refund", 6, 0),
        ("refund:order", 6, 2),
    ]  # ties by name
    assert top.needs[1].intents == ["refund"]
    assert [(i.key, i.count, i.previous) for i in top.intents] == [
        ("refund", 12, 2),
        ("feedback", 9, 0),
    ]
    assert rank(pairs, limit=10).needs[2].intents == ["complaint", "response_speed"]
