"""Need analysis: language, need, intent, sentiment, urgency and keywords, each explained.

Statistical models do what they are good at (jieba segments Chinese and weighs keywords by
TF-IDF; VADER scores English sentiment; snownlp's naive Bayes data scores Chinese sentiment),
and rules cover where they are known to fail in support messages: neutral questions,
satisfaction statements, negation ("不太满意", "not happy"), and problems stated without any
emotional word. Everything here is pure: the models arrive through ``LanguageModels``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from services.need_analyzer.domain import lexicon
from shared.contracts import Analysis, Explanation, Intent, Sentiment, SentimentLabel, Urgency

ANALYZER_VERSION = "kefu-rules-2"

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_QUESTION = re.compile(
    r"[?？]|[吗呢么]\s*[。!！]?\s*$|^\s*(请问|how|what|when|where|why|which|can|could|"
    r"do|does|is|are|will|would)\b",
    re.IGNORECASE,
)


class LanguageModels(Protocol):
    def segment(self, text: str) -> list[str]: ...
    def idf(self, word: str) -> float: ...
    def is_stopword(self, word: str) -> bool: ...
    def is_english_word(self, word: str) -> bool: ...
    def english_polarity(self, text: str) -> float: ...
    def chinese_positive_probability(self, words: list[str]) -> float: ...


class Analyzer(Protocol):
    """Text in, analysis out: what the consumer and the re-analysis command depend on."""

    @property
    def version(self) -> str: ...

    def analyze(self, text: str) -> Analysis: ...


def _explain(confidence: float, evidence: Iterable[str]) -> Explanation:
    return Explanation(
        confidence=round(min(max(confidence, 0.0), 1.0), 3),
        evidence=list(dict.fromkeys(evidence))[:8],
    )


def _find(text: str, lowered: str, cues: Iterable[str]) -> list[str]:
    """Cues present in the text: Chinese as substrings, English as whole words or phrases."""
    found = []
    for cue in cues:
        if cue.isascii():
            if _has_phrase(lowered, cue):
                found.append(cue)
        elif cue in text:
            found.append(cue)
    return found


def _has_phrase(lowered: str, phrase: str) -> bool:
    start = lowered.find(phrase)
    while start != -1:
        end = start + len(phrase)
        before = lowered[start - 1] if start else " "
        after = lowered[end] if end < len(lowered) else " "
        if not (before.isascii() and before.isalnum()) and not (
            after.isascii() and after.isalnum()
        ):
            return True
        start = lowered.find(phrase, start + 1)
    return False


# ---------------------------------------------------------------- language


def detect_language(text: str, models: LanguageModels) -> tuple[str, Explanation]:
    """By script; Latin text is English when its words are English words."""
    han, kana, hangul = (
        len(_HAN.findall(text)),
        len(_KANA.findall(text)),
        len(_HANGUL.findall(text)),
    )
    cyrillic = len(_CYRILLIC.findall(text))
    words = _LATIN_WORD.findall(text)
    latin = sum(len(word) for word in words)
    if kana and kana + han >= latin:
        return "ja", _explain(0.9, [f"{kana} kana"])
    if hangul and hangul * 2 >= latin:
        return "ko", _explain(0.9, [f"{hangul} hangul"])
    if cyrillic and cyrillic >= latin:
        return "ru", _explain(0.8, [f"{cyrillic} cyrillic letters"])
    # A Chinese character carries about as much as an English word of ~4 letters.
    if han and han * 4 >= latin:
        share = han * 4 / (han * 4 + latin)
        return "zh", _explain(
            0.5 + share / 2, [f"{han} Chinese characters", f"{latin} Latin letters"]
        )
    if words:
        known = sum(1 for word in words if models.is_english_word(word.lower()))
        if known:
            share = known / len(words)
            return "en", _explain(0.4 + 0.6 * share, [f"{known}/{len(words)} English words"])
        return "und", _explain(0.5, [f"{len(words)} Latin words, none known English"])
    return "und", _explain(1.0, ["no letters"])


# ---------------------------------------------------------------- need

_ZH_STOP = r"[^，,。.！!？?；;\n~～#]"
_EN_STOP = r"[^.!?;\n#]"
_NEED_ZH = [
    ("需要", rf"(?<![不无])需要(?:你们|您)?(?P<need>{_ZH_STOP}{{2,40}})"),
    ("希望", rf"(?:希望|期望|盼)(?:你们|您|能|可以|贵司)*(?P<need>{_ZH_STOP}{{2,40}})"),
    ("要求", rf"(?:想要|我要|要求|请求)(?P<need>{_ZH_STOP}{{2,40}})"),
    ("想", rf"(?<![不理思感梦回])想(?!了解|问|知道)(?P<need>{_ZH_STOP}{{2,40}})"),
    (
        "请",
        rf"(?:麻烦|请(?!问)|烦请|劳烦)(?:你们|您|帮忙|帮我|给我|一下)*(?P<need>{_ZH_STOP}{{2,40}})",
    ),
    (
        "能不能",
        rf"(?:能不能|能否|可不可以|可否|可以|(?<![功可不才])能)(?:帮我|帮忙|给我)?"
        rf"(?P<need>{_ZH_STOP}{{2,40}}?)(?:吗|么|不)",
    ),
    (
        "怎么",
        rf"(?:怎么|如何|怎样)(?!还|回事|搞的|办)(?P<need>{_ZH_STOP}{{2,30}}?)(?:[？?]|$|，|,)",
    ),
    ("帮我", rf"帮(?:我|忙)(?P<need>{_ZH_STOP}{{2,40}})"),
]
_NEED_EN = [
    (
        "I need",
        rf"\b(?:(?:i|we)\s+(?:really\s+|just\s+|urgently\s+)?need|^need)\s+(?:to\s+)?"
        rf"(?P<need>{_EN_STOP}{{3,120}})",
    ),
    (
        "I would like",
        rf"\b(?:i|we)(?:'d|\s+would)\s+(?:really\s+)?like\s+(?:to\s+)?"
        rf"(?P<need>{_EN_STOP}{{3,120}})",
    ),
    ("I want", rf"\b(?:i|we)\s+(?:just\s+)?want\s+(?:to\s+)?(?P<need>{_EN_STOP}{{3,120}})"),
    ("please", rf"\b(?:please|pls|plz|kindly)\s+(?P<need>(?!help\b)[a-z]{_EN_STOP}{{2,120}})"),
    (
        "can you",
        rf"\b(?:can|could|would|will)\s+(?:you|u|someone|somebody)\s+(?:please\s+)?"
        rf"(?P<need>{_EN_STOP}{{3,120}})",
    ),
    (
        "can I get",
        rf"\b(?:can|could|may)\s+i\s+(?:please\s+)?(?:get|have|receive)\s+"
        rf"(?P<need>{_EN_STOP}{{3,120}})",
    ),
    (
        "do you",
        rf"\bdo\s+(?:you|u)\s+(?:guys\s+)?(?:have\s+|do\s+|offer\s+|sell\s+|carry\s+)?"
        rf"(?P<need>{_EN_STOP}{{3,80}})",
    ),
    ("how do I", rf"\bhow\s+(?:do|can|should)\s+(?:i|we)\s+(?P<need>{_EN_STOP}{{3,80}})"),
    (
        "is it possible",
        rf"\bis\s+it\s+possible\s+to\s+(?:have\s+|get\s+)?"
        rf"(?P<need>{_EN_STOP}{{3,80}})",
    ),
    (
        "requests",
        rf"\b(?:requesting|requests|request|wants|asking for|asks for|looking for|"
        rf"hoping for)\s+(?P<need>{_EN_STOP}{{3,120}})",
    ),
    (
        "imperative",
        rf"(?:^|[.!?]\s+)(?P<need>(?:fix|sort|cancel|refund|send|reset|change|update|"
        rf"check|replace|delete|remove|stop|resend)\b{_EN_STOP}{{2,80}})",
    ),
]
_NEED_PATTERNS = [
    (cue, re.compile(pattern, re.IGNORECASE | re.MULTILINE)) for cue, pattern in _NEED_ZH + _NEED_EN
]
_STRONG_NEED_CUES = ("需要", "希望", "要求", "I need", "I would like", "I want")
_TRAILING_ZH = re.compile(r"(?:一下|一下子|好吗|可以吗|行吗|吧|啊|呀|哦|呢|吗|么|了)+$")
_TRAILING_EN = re.compile(
    r"[\s,]*(?:please|pls|asap|thanks?|thank you|thx|as well|too|yet)?[\s,.!]*$", re.I
)


def _clean_need(cue: str, need: str) -> str:
    need = need.strip(" \t，,。.！!？?：:；;~～\"'“”「」")
    if cue.isascii():
        need = need.split(" and thank")[0].split(", thank")[0]
        need = _TRAILING_EN.sub("", need).strip()
        if len(need) > 80 and "," in need:
            need = need.split(",")[0].strip()
    else:
        need = _TRAILING_ZH.sub("", need).strip()
    return need


def extract_need(text: str) -> tuple[str | None, Explanation]:
    """The customer's own words for what they want, cut to the clause; None if none is stated.

    Of every request form found, the first in the text wins: customers lead with their ask.
    """
    candidates = []
    for cue, pattern in _NEED_PATTERNS:
        match = pattern.search(text)
        if match:
            need = _clean_need(cue, match.group("need"))
            if len(need) >= 2:
                candidates.append((match.start(), cue, need))
    if not candidates:
        return None, _explain(0.7, ["no request stated"])
    _, cue, need = min(candidates)
    return need, _explain(0.8 if cue in _STRONG_NEED_CUES else 0.6, [f"rule: after '{cue}'"])


# ---------------------------------------------------------------- satisfaction statements

_SATISFACTION = re.compile(
    r"满意度\s*(?:为|是|:|：)|satisfaction(?:\s+level)?\s*(?:is|was|:|=)|\b[0-9](?:\.5)?\s*/\s*(?:5|10)\b"
    r"|\b[1-5]\s*stars?\b|[1-5一二三四五]\s*(?:星|颗星|分)(?!钟)|给(?:个|你们)?(?:好评|差评|中评)"
    r"|\b(?:rate|rating)\b.{0,20}\b\d+\b",
    re.IGNORECASE,
)


def states_satisfaction(text: str) -> str | None:
    match = _SATISFACTION.search(text)
    return match.group(0) if match else None


# ---------------------------------------------------------------- intent


@dataclass(frozen=True)
class IntentResult:
    intent: Intent
    secondary: Intent | None
    explanation: Explanation
    problem_cues: list[str]
    cued: bool = True


def classify_intent(
    text: str, lowered: str, statement: str | None, is_question: bool
) -> IntentResult:
    scores: dict[Intent, float] = {}
    evidence: dict[Intent, list[str]] = {}
    for intent, (zh, en) in lexicon.INTENT_CUES.items():
        found = _find(text, lowered, zh) + _find(lowered, lowered, en)
        if found:
            scores[intent] = sum(zh.get(cue, en.get(cue, 0)) for cue in found)
            evidence[intent] = found
    problem = _find(text, lowered, lexicon.PROBLEM_ZH) + _find(lowered, lowered, lexicon.PROBLEM_EN)
    if statement:
        scores["feedback"] = scores.get("feedback", 0) + 4
        evidence.setdefault("feedback", []).insert(0, f"statement '{statement}'")
    if "inquiry" in scores and is_question and not problem:
        # A question about a topic ("how do I reset my password?") stays a question.
        topic = max((s for i, s in scores.items() if i != "inquiry"), default=0)
        scores["inquiry"] += min(topic, 3)
    elif "inquiry" in scores and problem:
        scores["inquiry"] *= 0.5
    if not scores:
        return IntentResult("other", None, _explain(0.4, ["no intent cue"]), problem, cued=False)
    ranked = sorted(scores, key=lambda i: (-scores[i], lexicon.INTENT_PRIORITY.index(i)))
    top = ranked[0]
    second = ranked[1] if len(ranked) > 1 else None
    second_score = scores[second] if second else 0.0
    margin = (scores[top] - second_score) / scores[top]
    confidence = (0.5 + 0.5 * margin) * (1 - math.exp(-scores[top] / 2))
    secondary = (
        second if second and second_score >= 2 and second_score >= 0.5 * scores[top] else None
    )
    return IntentResult(top, secondary, _explain(confidence, evidence[top]), problem)


# ---------------------------------------------------------------- sentiment


def _chinese_lexicon_score(text: str) -> tuple[float, list[str]]:
    score, evidence = 0.0, []
    consumed: list[tuple[int, int]] = []
    for cues, sign in ((lexicon.NEGATIVE_ZH, -1), (lexicon.POSITIVE_ZH, 1)):
        for cue in sorted(cues, key=len, reverse=True):
            start = text.find(cue)
            while start != -1:
                end = start + len(cue)
                if not any(s < end and start < e for s, e in consumed):
                    consumed.append((start, end))
                    negated = any(
                        text[max(0, start - len(n)) : start] == n for n in lexicon.NEGATORS_ZH
                    )
                    value = cues[cue] * sign * (-0.8 if negated else 1)
                    score += value
                    evidence.append(("不" if negated else "") + cue)
                start = text.find(cue, end)
    return score, evidence


def _english_lexicon_score(lowered: str) -> tuple[float, list[str]]:
    found = _find(lowered, lowered, lexicon.NEGATIVE_EN)
    return -sum(lexicon.NEGATIVE_EN[cue] for cue in found), found


def score_sentiment(
    text: str,
    lowered: str,
    language: str,
    words: list[str],
    models: LanguageModels,
    *,
    statement_verdict: SentimentLabel | None,
    problem: bool,
    is_question: bool,
) -> tuple[Sentiment, Explanation]:
    evidence: list[str] = []
    if statement_verdict is not None:
        value = {"positive": 0.6, "neutral": 0.0, "negative": -0.6}[statement_verdict]
        return Sentiment(label=statement_verdict, score=value), _explain(
            0.85, ["satisfaction statement"]
        )
    zh_score, zh_evidence = _chinese_lexicon_score(text)
    en_score, en_evidence = _english_lexicon_score(lowered)
    cue_score = zh_score + en_score
    evidence += zh_evidence + en_evidence
    if language == "zh":
        content = [w for w in words if w.strip() and not models.is_stopword(w)]
        model = 2 * models.chinese_positive_probability(content) - 1 if content else 0.0
        evidence.append(f"bayes {model:+.2f}")
        # The review-trained model leans hard either way on short texts: trust it less.
        model *= 0.35
    else:
        model = models.english_polarity(text)
        evidence.append(f"vader {model:+.2f}")
        negated = _find(lowered, lowered, lexicon.NEGATED_POSITIVE_EN)
        if negated and model > 0:
            model = -model
            evidence += negated
    score = math.tanh(cue_score / 2) * 0.7 + model * 0.5 if cue_score else model
    if problem and score > -0.3 and cue_score <= 0:
        score = min(score, 0.0) - 0.35
        evidence.append("problem stated")
    if is_question and not problem and cue_score == 0:
        score *= 0.3  # a plain question is neutral whatever the models say
        evidence.append("plain question")
    score = max(-1.0, min(1.0, round(score, 3)))
    label: SentimentLabel = (
        "positive" if score >= 0.25 else "negative" if score <= -0.25 else "neutral"
    )
    return Sentiment(label=label, score=score), _explain(min(1.0, 0.5 + abs(score) / 2), evidence)


def _statement_label(statement: str | None, text: str) -> SentimentLabel | None:
    if statement is None:
        return None
    negative = (
        "差",
        "不满",
        "低",
        "1/5",
        "2/5",
        "1 star",
        "2 star",
        "1星",
        "2星",
        "一星",
        "二星",
        "两星",
        "1分",
        "2分",
        "poor",
        "bad",
        "low",
        "unsatisfied",
        "dissatisfied",
    )
    positive = (
        "非常满意",
        "很满意",
        "满意度为满意",
        "满意度：满意",
        "满意度:满意",
        "高",
        "好评",
        "5/5",
        "4/5",
        "5 star",
        "4 star",
        "五星",
        "四星",
        "5星",
        "4星",
        "5分",
        "high",
        "excellent",
        "great",
        "good",
        "satisfied",
    )
    window = text[text.find(statement) : text.find(statement) + len(statement) + 8].lower()
    if any(cue in window for cue in negative):
        return "negative"
    if any(cue in window for cue in positive):
        return "positive"
    return "neutral"


# ---------------------------------------------------------------- urgency


def rate_urgency(
    text: str, lowered: str, intent: Intent, problem: bool, sentiment: Sentiment
) -> tuple[Urgency, Explanation]:
    urgent = _find(text, lowered, lexicon.URGENT)
    if urgent:
        return "urgent", _explain(0.8, urgent)
    if intent in ("praise", "feedback") and sentiment.label == "positive":
        return "low", _explain(0.7, [f"intent {intent}, positive"])
    high = _find(text, lowered, lexicon.HIGH)
    if high:
        return "high", _explain(0.7, high)
    if intent in ("praise", "feedback") and not problem and sentiment.label != "negative":
        return "low", _explain(0.7, [f"intent {intent}, no problem stated"])
    if intent in ("inquiry", "other") and not problem:
        return "low", _explain(0.6, [f"intent {intent}, no problem stated"])
    return "normal", _explain(0.6, ["no urgency cue"])


# ---------------------------------------------------------------- keywords


_MAX_KEYWORD = 40  # longer tokens are URLs and codes, not topics


def extract_keywords(
    words: list[str], models: LanguageModels, limit: int = 5
) -> tuple[list[str], Explanation]:
    """TF-IDF over the segmented text, without stop words, numbers or punctuation."""
    counts: Counter[str] = Counter()
    for word in words:
        token = word.strip().lower()
        if not token or len(token) > _MAX_KEYWORD or models.is_stopword(token) or token.isdigit():
            continue
        if _HAN.search(token):
            if len(token) < 2:
                continue
        elif not (token.isascii() and token[0].isalpha() and len(token) >= 3):
            continue
        counts[token] += 1
    total = sum(counts.values()) or 1
    weights = {word: n / total * models.idf(word) for word, n in counts.items()}
    ranked = sorted(weights, key=lambda w: -weights[w])[:limit]
    return ranked, _explain(0.6 if ranked else 1.0, ["tf-idf (jieba idf)"])


# ---------------------------------------------------------------- the analyzer


@dataclass(frozen=True)
class RuleAnalyzer:
    models: LanguageModels
    version: str = ANALYZER_VERSION

    def analyze(self, text: str) -> Analysis:
        lowered = text.lower()
        language, language_why = detect_language(text, self.models)
        words = self.models.segment(text) if text.strip() else []
        statement = states_satisfaction(text)
        is_question = bool(_QUESTION.search(text.strip()))
        intent = classify_intent(text, lowered, statement, is_question)
        problem = bool(intent.problem_cues) or (
            intent.intent in lexicon.PROBLEM_INTENTS
            and intent.intent != "complaint"
            and not is_question
        )
        sentiment, sentiment_why = score_sentiment(
            text,
            lowered,
            language,
            words,
            self.models,
            statement_verdict=_statement_label(statement, text),
            problem=problem and intent.intent not in ("praise", "feedback", "inquiry"),
            is_question=is_question,
        )
        if not intent.cued and abs(sentiment.score) >= 0.5:
            # No topic at all: the feeling is the message ("best service ever", "never again").
            fallback: Intent = "praise" if sentiment.label == "positive" else "complaint"
            intent = IntentResult(
                fallback,
                None,
                _explain(0.4, [f"sentiment {sentiment.label}"]),
                intent.problem_cues,
                cued=False,
            )
        need, need_why = extract_need(text)
        urgency, urgency_why = rate_urgency(text, lowered, intent.intent, problem, sentiment)
        keywords, keywords_why = extract_keywords(words, self.models)
        return Analysis(
            language=language,
            need=need,
            intent=intent.intent,
            secondary=intent.secondary,
            sentiment=sentiment,
            urgency=urgency,
            keywords=keywords,
            explanations={
                "language": language_why,
                "need": need_why,
                "intent": intent.explanation,
                "sentiment": sentiment_why,
                "urgency": urgency_why,
                "keywords": keywords_why,
            },
        )
