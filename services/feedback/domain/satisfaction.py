"""Satisfaction: explicit ratings on the common scales, and satisfaction stated in text.

Every verdict has a score 0..1 and the basis that decided it. Text that states no
satisfaction gives no verdict, never a guess: a complaint about a late parcel is a problem,
not a satisfaction statement; "服务太差了" or "would not recommend" is one.

Scales (raw value kept, normalised score, verdict):

| scale | satisfied | neutral | dissatisfied | score |
|---|---|---|---|---|
| csat5 (1-5) | 4-5 | 3 | 1-2 | (v-1)/4 |
| nps10 (0-10) | 9-10 promoter | 7-8 passive | 0-6 detractor | v/10 |
| ces7 (1-7, 7 = very easy) | 5-7 | 4 | 1-3 | (v-1)/6 |
| thumbs | up | | down | 1 / 0 |
| faces3 | great | okay | not_good | 1 / 0.5 / 0 |
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shared.contracts import Ces7, Csat5, Faces3, Nps10, Rating, Thumbs, Verdict

Source = Literal["explicit", "implicit"]


@dataclass(frozen=True)
class Assessment:
    verdict: Verdict
    score: float
    source: Source
    basis: str


def verdict_for(score: float) -> Verdict:
    """The verdict of a 0..1 score: the bands of csat5 (4-5 satisfied, 3 neutral)."""
    if score >= 0.625:
        return "satisfied"
    if score > 0.375:
        return "neutral"
    return "dissatisfied"


def _band(value: int, satisfied_from: int, neutral_from: int) -> Verdict:
    if value >= satisfied_from:
        return "satisfied"
    if value >= neutral_from:
        return "neutral"
    return "dissatisfied"


def assess_rating(rating: Rating) -> Assessment:
    basis = f"rating {rating.scale}={rating.value}"
    match rating:
        case Csat5(value=value):
            return Assessment(_band(value, 4, 3), (value - 1) / 4, "explicit", basis)
        case Nps10(value=value):
            return Assessment(_band(value, 9, 7), value / 10, "explicit", basis)
        case Ces7(value=value):
            return Assessment(_band(value, 5, 4), (value - 1) / 6, "explicit", basis)
        case Thumbs(value=value):
            up = value == "up"
            return Assessment("satisfied" if up else "dissatisfied", float(up), "explicit", basis)
        case Faces3(value=value):
            score = {"great": 1.0, "okay": 0.5, "not_good": 0.0}[value]
            return Assessment(verdict_for(score), score, "explicit", basis)
    raise ValueError(f"unknown scale {rating.scale}")


# ------------------------------------------------------------------ ratings written in text

_NUMBER_WORDS = {
    "一": 1,
    "二": 2,
    "两": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
    "十": 10,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
}
_NUM = r"(\d+(?:\.\d+)?|[一二两三四五六七八九十]|one|two|three|four|five)"
_RATINGS = [
    # 4/5, 8/10, 4 out of 5
    re.compile(rf"(?<![\d/]){_NUM}\s*(?:/|out of|分之)\s*(5|10|五|十)(?![\d/])", re.I),
    # 3 stars, 3星, 三颗星, five stars
    re.compile(rf"(?<!\d){_NUM}\s*(?:颗)?(?:stars?|星)(?!期)", re.I),
    # 打5分 / 给8分 / 5分 (not 5分钟)
    re.compile(rf"(?:打|给|评)?(?:个|了)?(?<!\d){_NUM}\s*分(?![钟之])"),
    # I'd give you a 9 / would rate it 7
    re.compile(
        r"\b(?:give|rate|rating|score|nps)\b[^.!?\d]{0,15}?(?<!\d)(\d+)(?!\s*(?:%|days?|"
        r"hours?|minutes?|items?|times))\b",
        re.I,
    ),
]
_STARS = re.compile(r"([★⭐]+)(☆*)")


def _number(token: str) -> float:
    return float(_NUMBER_WORDS.get(token.lower(), 0) or token)


def _rating_in_text(text: str) -> tuple[float, Verdict, str] | None:
    """A rating written in the text: its 0..1 score, its verdict and the words that state it.

    Out of 10 it reads as nps10 (9-10 satisfied, 7-8 neutral); out of 5 as csat5."""
    stars = _STARS.search(text)
    if stars:
        full, empty = len(stars.group(1)), len(stars.group(2))
        out_of = full + empty if empty else 5
        if full <= out_of:
            score = (full - 1) / (out_of - 1)
            return score, verdict_for(score), stars.group(0)
    for pattern in _RATINGS:
        match = pattern.search(text)
        if not match:
            continue
        value = _number(match.group(1))
        if match.lastindex and match.lastindex >= 2 and pattern is _RATINGS[0]:
            scale = _number(match.group(2))
        else:
            scale = 5.0 if value <= 5 else 10.0
        if not 0 <= value <= scale:
            continue
        if scale == 5:
            score = max(0.0, (value - 1) / 4)
            return score, verdict_for(score), match.group(0).strip()
        verdict = _band(int(value), 9, 7)
        return value / 10, verdict, match.group(0).strip()
    return None


# ------------------------------------------------------------------ statements in words

# Each entry: pattern, score. Checked in order; the negated and degree forms come before the
# plain ones, so "不太满意" is never read as "满意". Chinese patterns match anywhere; English
# ones on word boundaries.
_LEVEL = {"satisfied": 0.85, "mild": 0.7, "neutral": 0.5, "dissatisfied": 0.15, "strong_neg": 0.0}
_ZH: list[tuple[str, float]] = [
    (r"(?:没有|并没有|没|并不)不满意?", _LEVEL["mild"]),
    (r"(?:非常|很|十分|特别|极其|极|超级?)不满意?", _LEVEL["strong_neg"]),
    (r"(?:不太|不是很|不怎么|不大|有点|有些|有一点|略)(?:满意|满足)", _LEVEL["dissatisfied"]),
    (r"不(?:满意|满)", _LEVEL["dissatisfied"]),
    (r"(?:非常|很|十分|特别|超级?|相当|太)满意", 1.0),
    (r"(?:比较|还算|挺|蛮|基本|还比较|总体|整体)(?:上)?(?:还算|还)?满意", _LEVEL["mild"]),
    (r"满意(?![度的])", _LEVEL["satisfied"]),
    (r"五星好评|好评(?:如潮)?", _LEVEL["satisfied"]),
    (r"中评", _LEVEL["neutral"]),
    (r"差评", _LEVEL["strong_neg"]),
    (
        r"不好不坏|中规中矩|一般般|马马虎虎|凑合|so\s?so|还行吧?|还可以吧?|就那样|不算太差|(?<!不)一般(?!来说|情况)",
        _LEVEL["neutral"],
    ),
    (
        r"(?:再也不|不会再)会?(?:买|来|用)|不推荐|别买|失望|太差|很差|最差|最烂|差劲|糟糕透?|垃圾|坑人",
        _LEVEL["strong_neg"],
    ),
    (
        r"(?:强烈)?推荐|点个?赞|(?:非常|很|太|超|真)棒|(?:服务|客服|体验|态度)(?:真|很|非常|特别|挺|超)?(?:好|棒|赞|不错|专业|贴心|周到)",
        _LEVEL["satisfied"],
    ),
]
_EN: list[tuple[str, float]] = [
    (r"\bcould(?:n'?t| not)\s+be\s+(?:happier|more\s+satisfied|better)\b", 1.0),
    (r"\bnot\s+(?:\w+\s+)?(?:disappointed|unhappy|dissatisfied)\b", _LEVEL["mild"]),
    (
        r"\b(?:not|n't|never|hardly)\s+(?:\w+\s+){0,2}?(?:happy|satisfied|pleased|impressed|good|"
        r"great)\b",
        _LEVEL["dissatisfied"],
    ),
    (r"\b(?:not|n't)\s+(?:that\s+|too\s+)?(?:bad|terrible|awful)\b", _LEVEL["neutral"]),
    (r"\b(?:would|will|could)\s*(?:not|n't)\s+recommend\b|\bdon'?t\s+recommend\b", 0.0),
    (r"\b(?:very|really|extremely|so|super|totally|completely)\s+(?:dis|un)satisfied\b", 0.0),
    (
        r"\b(?:dissatisfied|unsatisfied|unhappy|disap+oint(?:ed|ing)|poor|expected better)\b",
        _LEVEL["dissatisfied"],
    ),
    (r"\b(?:terrible|awful|horrible|worst|appalling|useless|rubbish|never again)\b", 0.0),
    (
        r"\b(?:very|really|extremely|so|super|totally|completely|absolutely)\s+(?:happy|satisfied|"
        r"pleased)\b",
        1.0,
    ),
    (r"\b(?:happy|satisf(?:i)?ed|pleased)\b", _LEVEL["satisfied"]),
    (
        r"\b(?:would|will|highly|definitely)\s+recommend\b|\blove\s+(?:it|this|you|the)\b",
        _LEVEL["satisfied"],
    ),
    (
        r"\b(?:excellent|amazing|fantastic|outstanding|superb|brilliant|perfect)\b",
        _LEVEL["satisfied"],
    ),
    (r"\bgreat\s+(?:service|support|job|experience|help|product)\b", _LEVEL["satisfied"]),
    (
        r"\b(?:so-?so|meh|mediocre|average|alright|could be better|(?:fine|ok|okay) i guess|"
        r"it'?s fine|"
        r"(?:was|is|it'?s|pretty|just)\s+(?:ok|okay))\b|^\s*(?:ok|okay)\b",
        _LEVEL["neutral"],
    ),
]
_STATEMENTS = [(re.compile(p), s) for p, s in _ZH] + [(re.compile(p, re.I), s) for p, s in _EN]
_LEVEL_STATEMENT = re.compile(
    r"(?:满意度|评分|评价|打分)\s*(?:为|是|:|：)\s*"
    r"|(?:satisfaction(?:\s+level)?|rating|score)\s*(?:is|was|:|=|-)\s*",
    re.I,
)
_LEVEL_WORDS: dict[str, float] = {
    "非常满意": 1.0,
    "很满意": 1.0,
    "满意": 0.75,
    "高": 0.75,
    "很高": 1.0,
    "好": 0.75,
    "中": 0.5,
    "中等": 0.5,
    "一般": 0.5,
    "还行": 0.5,
    "不满意": 0.25,
    "低": 0.25,
    "差": 0.25,
    "很低": 0.0,
    "很差": 0.0,
    "非常不满意": 0.0,
    "very high": 1.0,
    "high": 0.75,
    "good": 0.75,
    "satisfied": 0.75,
    "medium": 0.5,
    "average": 0.5,
    "neutral": 0.5,
    "ok": 0.5,
    "okay": 0.5,
    "low": 0.25,
    "poor": 0.25,
    "bad": 0.25,
    "dissatisfied": 0.25,
    "very low": 0.0,
}
_LEVEL_AFTER = re.compile(
    "|".join(re.escape(w) for w in sorted(_LEVEL_WORDS, key=len, reverse=True)), re.I
)
_SENTENCE = re.compile(r"[^。！？!?\n]+[。！？!?]?")
_QUESTION_END = re.compile(r"[?？]\s*$|[吗么]\s*[?？]?\s*$")


def assess_text(text: str) -> Assessment | None:
    """The satisfaction a text states, or None when it states none."""
    scores: list[tuple[float, str]] = []
    for sentence in _SENTENCE.findall(text):
        level = _LEVEL_STATEMENT.search(sentence)
        if level:
            word = _LEVEL_AFTER.match(sentence, level.end())
            if word:
                statement = sentence[level.start() : word.end()].strip()
                score = _LEVEL_WORDS[word.group(0).lower()]
                return Assessment(verdict_for(score), score, "implicit", f"text '{statement}'")
        if _QUESTION_END.search(sentence):
            continue  # "满意度调查怎么填？", "are you satisfied?": asked, not stated
        rating = _rating_in_text(sentence)
        if rating:
            score, verdict, words = rating
            return Assessment(verdict, round(score, 3), "implicit", f"text '{words}'")
        remaining = sentence
        for pattern, score in _STATEMENTS:
            for match in pattern.finditer(remaining):
                scores.append((score, match.group(0).strip()))
            remaining = pattern.sub(" ", remaining)
    if not scores:
        return None
    score = round(sum(s for s, _ in scores) / len(scores), 3)
    words = ", ".join(f"'{w}'" for _, w in scores[:3])
    return Assessment(verdict_for(score), score, "implicit", f"text {words}")


def supersedes(
    new: Assessment, new_at: datetime, current: Assessment | None, current_at: datetime | None
) -> bool:
    """An explicit rating beats text; between two of a kind, the later statement wins."""
    if current is None or current_at is None:
        return True
    if new.source != current.source:
        return new.source == "explicit"
    return new_at >= current_at and new != current
