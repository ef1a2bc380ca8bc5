"""Satisfaction: explicit ratings on the common scales, and satisfaction stated in text.

The one reader of satisfaction statements: feedback turns them into verdicts, need_analyzer
into the ``feedback`` intent and the sentiment, so both score "8/10", "4 out of 5", "★★★",
"满意度为中" or "给个差评" the same way.

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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from shared.contracts import Ces7, Csat5, Faces3, Nps10, Rating, Thumbs, Verdict

Source = Literal["explicit", "implicit"]


# What decided a text's verdict: a level ("满意度为中"), a rating ("8/10", "★★★", "给个差评"),
# or evaluative words ("非常满意", "not happy").
Kind = Literal["rating", "level", "words"]


@dataclass(frozen=True)
class Assessment:
    verdict: Verdict
    score: float
    source: Source
    basis: str
    # How it was stated, and what was left unread: not part of the verdict's identity.
    kind: Kind = field(default="rating", compare=False)
    partial: str | None = field(default=None, compare=False)


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
# (pattern, group of the value, group of the scale or None for "5 unless above 5")
_RATINGS: list[tuple[re.Pattern[str], int, int | None]] = [
    (re.compile(rf"(?<![\d/.]){_NUM}\s*(?:/|out of)\s*(5|10|五|十)(?![\d/])", re.I), 1, 2),
    (re.compile(rf"(5|10|五|十)\s*分之\s*{_NUM}"), 2, 1),  # 五分之四 = 4/5
    (re.compile(rf"(?<!\d){_NUM}\s*(?:颗)?(?:stars?|星)(?!期)", re.I), 1, None),
    (re.compile(rf"(?<![\d.]){_NUM}\s*分(?![钟之])"), 1, None),
    (
        re.compile(
            r"\b(?:give|rate)\s+(?:you|it|them|this|us|the \w+)(?:\s+guys)?\s+(?:an?\s+)?"
            r"(\d+)\b",
            re.I,
        ),
        1,
        None,
    ),
    (re.compile(r"\bnps\b\D{0,5}(\d+)\b", re.I), 1, 10),
]
_STARS = re.compile(r"([★⭐]+)(☆*)")
# A number is a rating only where the words say so, or when it stands (nearly) alone:
# "4/5" or "5分" is a rating; "my order of 4/5" or "扣了我5分" is not.
_RATING_CONTEXT = re.compile(
    r"rat(?:e|ing)|score|stars?|give|nps|review|recommend|likelihood|out of|评分|打分|打了?个?"
    r"|给了?个?|评价|满意度|星|推荐",
    re.I,
)


def _number(token: str) -> float:
    return float(_NUMBER_WORDS.get(token.lower(), 0) or token)


def _rating_in_text(clause: str) -> tuple[float, Verdict, str] | None:
    """A rating written in a clause: its 0..1 score, its verdict and the words that state it.

    Out of 10 it reads as nps10 (9-10 satisfied, 7-8 neutral); out of 5 as csat5."""
    stars = _STARS.search(clause)
    if stars and (len(stars.group(0)) >= 2 or _RATING_CONTEXT.search(clause)):
        full, empty = len(stars.group(1)), len(stars.group(2))
        out_of = full + empty if empty else 5
        if full <= out_of:
            score = (full - 1) / (out_of - 1)
            return score, verdict_for(score), stars.group(0)
    for pattern, value_group, scale_group in _RATINGS:
        match = pattern.search(clause)
        if not match:
            continue
        rest = (clause[: match.start()] + clause[match.end() :]).strip(" \t,.，。!！:：;；-")
        if match.start() > 0 and len(rest) > 12 and not _RATING_CONTEXT.search(clause):
            continue
        value = _number(match.group(value_group))
        if scale_group is None:
            scale = 5.0 if value <= 5 else 10.0
        elif pattern.pattern.startswith(r"\bnps"):
            scale = 10.0
        else:
            scale = _number(match.group(scale_group))
        if not 0 <= value <= scale:
            continue
        if scale == 5:
            score = max(0.0, (value - 1) / 4)
            return score, verdict_for(score), match.group(0).strip()
        return value / 10, _band(int(value), 9, 7), match.group(0).strip()
    return None


# ------------------------------------------------------------------ statements in words

# Each entry: pattern, score. Checked in order; the negated and degree forms come before the
# plain ones, so "不太满意" is never read as "满意". A word counts only in a form that evaluates
# the service: "happy with", not "happy to help"; "服务一般", not "一般几天到货".
_LEVEL = {"satisfied": 0.85, "mild": 0.7, "neutral": 0.5, "dissatisfied": 0.15, "strong_neg": 0.0}
_ZH: list[tuple[str, float]] = [
    (r"(?:没有|并没有|没|并不)不满意?", _LEVEL["mild"]),
    (r"(?:非常|很|十分|特别|极其|极|超级?)不满意?", _LEVEL["strong_neg"]),
    (r"(?:不太|不是很|不怎么|不大|有点|有些|有一点|略)(?:满意|满足)", _LEVEL["dissatisfied"]),
    (r"不(?:满意|满)", _LEVEL["dissatisfied"]),
    (r"(?:非常|很|十分|特别|超级?|相当|太)满意", 1.0),
    (r"(?:比较|还算|挺|蛮|基本|还比较|总体|整体)(?:上)?(?:还算|还)?满意", _LEVEL["mild"]),
    (r"满意(?![度的])", _LEVEL["satisfied"]),
    (
        r"不好不坏|中规中矩|一般般|马马虎虎|凑合|so\s?so|还行吧?(?=\W*$)|还可以吧?(?=\W*$)|就那样"
        r"|不算太差|(?:很|太|特别)一般|(?:服务|客服|体验|质量|态度|感觉|效果|产品|整体|总体|总的来说)"
        r"(?:也|都|还|就|比较)?一般|^一般[吧啊呀]?(?=\W*$)",
        _LEVEL["neutral"],
    ),
    (
        r"(?:再也不|不会再)会?(?:买|来|用)|不(?:会)?推荐|别买|失望|好差|真差|太差|很差|最差|最烂|差劲"
        r"|糟糕透?|垃圾|坑人",
        _LEVEL["strong_neg"],
    ),
    (
        r"强烈推荐|值得推荐|会推荐给|推荐给(?:朋友|别人|大家|家人)|点个?赞|(?:非常|很|太|超|真)棒"
        r"|(?:服务|客服|体验|态度)(?:真|很|非常|特别|挺|超)?(?:好|棒|赞|不错|专业|贴心|周到)"
        r"(?!差|一点|的话|不好|吗)",
        _LEVEL["satisfied"],
    ),
]
_EN: list[tuple[str, float]] = [
    (r"\bneither\s+satisfied\s+nor\s+dissatisfied\b", _LEVEL["neutral"]),
    (r"\bcould(?:n'?t| not)\s+be\s+(?:happier|more\s+satisfied|better)\b", 1.0),
    (r"(?:\bnot|n't)\s+(?:\w+\s+)?(?:disappointed|unhappy|dissatisfied)\b", _LEVEL["mild"]),
    (
        r"(?:\bnot|n't|\bnever|\bhardly)\s+(?:\w+\s+){0,2}?(?:happy|satisf(?:i)?ed|pleased|"
        r"impressed)\b",
        _LEVEL["dissatisfied"],
    ),
    (
        r"\b(?:was|is|were|been|are)\s*(?:not|n't)\s+(?:very\s+|that\s+|so\s+)?(?:good|great)\b",
        _LEVEL["dissatisfied"],
    ),
    (r"(?:\bnot|n't)\s+(?:that\s+|too\s+)?(?:bad|terrible|awful)\b", _LEVEL["neutral"]),
    (r"\b(?:would|will|could)\s*(?:not|n't)\s+recommend\b|\bdon'?t\s+recommend\b", 0.0),
    (r"\b(?:very|really|extremely|so|super|totally|completely)\s+(?:dis|un)satisfied\b", 0.0),
    (
        r"\b(?:dissatisfied|unsatisfied|unhappy|disap+oint(?:ed|ing)|expected better)\b|"
        r"\b(?:very|so|really)\s+poor\b|^poor$",
        _LEVEL["dissatisfied"],
    ),
    (r"\b(?:terrible|awful|horrible|worst|appalling|useless|rubbish|never again)\b", 0.0),
    (
        r"\b(?:very|really|extremely|so|super|totally|completely|absolutely)\s+(?:happy|satisf(?:i)?ed|"
        r"pleased)\b(?!\s+to\b)",
        1.0,
    ),
    (
        r"\b(?:pretty|quite|fairly|rather|mostly)\s+(?:happy|satisf(?:i)?ed|pleased)\b",
        _LEVEL["mild"],
    ),
    (
        r"(?::|：)\s*(?:very\s+)?(?:satisf(?:i)?ed|happy|excellent|great|good|amazing|perfect)\b"
        r"|\bhappy\s+customer\b|\b(?:very|really|so|super)\s+helpful\b",
        _LEVEL["satisfied"],
    ),
    (
        r"\b(?:happy|satisf(?:i)?ed|pleased)\s+(?:with|about|by)\b|\b(?:i am|i'm|im|we are|we're|"
        r"i was|we were|i feel|feeling)\s+(?:\w+\s+)?(?:happy|satisf(?:i)?ed|pleased)\b(?!\s+to\b)"
        r"|^(?:happy|satisf(?:i)?ed)$",
        _LEVEL["satisfied"],
    ),
    (
        r"\b(?:would|will|highly|definitely)\s+recommend\b|\blove\s+(?:it|this|you|the)\b",
        _LEVEL["satisfied"],
    ),
    (
        r"\b(?:excellent|amazing|fantastic|outstanding|superb|brilliant|perfect|great)\s+"
        r"(?:service|support|job|experience|help|work|product|team)\b|^(?:excellent|amazing|"
        r"fantastic|outstanding|superb|brilliant|perfect)$",
        _LEVEL["satisfied"],
    ),
    (
        r"\b(?:so-?so|meh|mediocre|could be better|(?:fine|ok|okay) i guess|it'?s fine)\b"
        r"|\b(?:was|is|just|pretty|quite|fairly|so)\s+(?:average|alright|ok|okay)\b"
        r"|\bok-?ish\b|\baverage\s+(?:experience|service|support)\b|^average$",
        _LEVEL["neutral"],
    ),
]
# A review verdict given in words is a rating: "给个差评" scores as "1/5" would.
_VERDICTS: list[tuple[str, float]] = [
    (r"五星好评|必须好评|给(?:个|你们|了)(?:五星)?好评|好评[!！]|^好评$", _LEVEL["satisfied"]),
    (r"给(?:个|你们|了)?中评|^中评$", _LEVEL["neutral"]),
    (r"给(?:个|你们|了)?差评|必须差评|差评[!！]|^差评$", _LEVEL["strong_neg"]),
]
_VERDICT_STATEMENTS = [(re.compile(p), s) for p, s in _VERDICTS]
# Each Chinese pattern needs a Chinese character, each English one a Latin letter: a clause
# without is not searched with them (a clause of digits and slashes was searched 30 times).
_CHINESE_STATEMENTS = _VERDICT_STATEMENTS + [(re.compile(p), s) for p, s in _ZH]
# The English patterns search the lower-cased clause: a third cheaper than re.IGNORECASE.
_ENGLISH_STATEMENTS = [(re.compile(p), s) for p, s in _EN]
_ENGLISH_ANY_CASE = [(re.compile(p, re.I), s) for p, s in _EN]
_LATIN_LETTER = re.compile("[a-zA-Z]")


def _statements_in(clause: str, words: bool) -> list[tuple[float, str]]:
    """The statements of the clause, each with its score and its words as written. Pattern by
    pattern, in order: what one pattern takes, the next does not see."""
    chinese = _CHINESE_STATEMENTS if words else _VERDICT_STATEMENTS
    patterns = [] if clause.isascii() else [(p, s, False) for p, s in chinese]
    folded = None  # the clause lower-cased, blanked where the original is
    if words and _LATIN_LETTER.search(clause):
        lowered = clause.lower()
        if len(lowered) == len(clause):  # true but for a few letters ("İ")
            folded = lowered
            patterns += [(p, s, True) for p, s in _ENGLISH_STATEMENTS]
        else:
            patterns += [(p, s, False) for p, s in _ENGLISH_ANY_CASE]
    found: list[tuple[float, str]] = []
    remaining = clause
    for pattern, score, on_folded in patterns:
        haystack = folded if on_folded and folded is not None else remaining
        spans = [match.span() for match in pattern.finditer(haystack)]
        if not spans:
            continue
        found += [(score, remaining[start:end].strip()) for start, end in spans]
        remaining = _blank(remaining, spans)
        if folded is not None:
            folded = _blank(folded, spans)
    return found


def _blank(text: str, spans: list[tuple[int, int]]) -> str:
    """The text with each span replaced by one space (as ``pattern.sub(" ", text)``)."""
    parts, last = [], 0
    for start, end in spans:
        parts += [text[last:start], " "]
        last = end
    parts.append(text[last:])
    return "".join(parts)


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
# Sentences end at . ! ? and their Chinese forms (not inside "4.5"); clauses also at , and ;.
_EDGES = " \t。！!？?；;，,.~～\"'“”"
_SENTENCE = re.compile(r"(?:[^。！？!?\n.]|\.(?=\d))+[。！？!?.]*")
_CLAUSE = re.compile(r"(?:[^。！？!?\n；;，,.]|\.(?=\d))+[。！？!?；;，,.]*")


def _is_question(sentence: str) -> bool:
    """Ends in ?/？ or in 吗/么, with only non-word characters after: a loop from the end, not
    the regex ``[吗么]\\s*[?？]?\\W*$``, which backtracks quadratically over a run of spaces."""
    end = len(sentence)
    while end and not (sentence[end - 1].isalnum() or sentence[end - 1] == "_"):
        end -= 1
    tail = sentence[end:]
    return "?" in tail or "？" in tail or sentence.endswith(("吗", "么"), 0, end)


_ASKING = re.compile(
    r"^\W*(?:if|what|how|why|when|where|which|who|do|does|did|is|are|can|could|would|will|should"
    r"|如果|要是|假如|万一|怎么|为什么|什么|哪|是否|能不能|可不可以|请问)\b|[吗么]\W*$",
    re.I,
)


def _stated_clauses(text: str) -> list[str]:
    """The clauses that state something: in a question ("满意度调查怎么填？", "if I'm not happy
    with it, can I return it?") only a clause that is not itself asking counts
    ("非常不满意，为什么还没退款？" still states 非常不满意)."""
    stated = []
    for sentence in _SENTENCE.findall(text):
        clauses = _CLAUSE.findall(sentence)
        if not _is_question(sentence.strip()):
            stated += clauses
            continue
        stated += [c for c in clauses[:-1] if not _ASKING.search(c.strip(_EDGES))]
    return stated


# Reading stops after this long (the rules are linear, so only a loaded machine gets there):
# what was read decides, and the assessment says it is partial.
BUDGET_SECONDS = 0.1
_RATING_WORDS = re.compile("好评|中评|差评")


def assess_text(
    text: str,
    *,
    words: bool = True,
    budget_seconds: float = BUDGET_SECONDS,
    clock: Callable[[], float] = time.perf_counter,
) -> Assessment | None:
    """The satisfaction a text states, or None when it states none; with ``words=False`` only
    levels and ratings count (the analyzer's ``feedback`` intent), not evaluative words."""
    started = clock()
    scores: list[tuple[float, str]] = []
    clauses = _stated_clauses(text)
    partial = None
    for read, raw in enumerate(clauses):
        if clock() - started > budget_seconds:
            partial = f"time budget spent after {read} of {len(clauses)} clauses"
            break
        clause = raw.strip(_EDGES)
        if not clause:
            continue
        level = _LEVEL_STATEMENT.search(clause)
        if level:
            word = _LEVEL_AFTER.match(clause, level.end())
            if word:
                statement = clause[level.start() : word.end()].strip()
                score = _LEVEL_WORDS[word.group(0).lower()]
                return Assessment(
                    verdict_for(score), score, "implicit", f"text '{statement}'", "level"
                )
        rating = _rating_in_text(clause)
        if rating:
            score, verdict, said = rating
            return Assessment(verdict, round(score, 3), "implicit", f"text '{said}'", "rating")
        scores += _statements_in(clause, words)
    if not scores:
        return None
    score = round(sum(s for s, _ in scores) / len(scores), 3)
    said = ", ".join(f"'{w}'" for _, w in scores[:3])
    kind: Kind = "rating" if any(_RATING_WORDS.search(w) for _, w in scores) else "words"
    basis = f"text {said}" + (f" (partial: {partial})" if partial else "")
    return Assessment(verdict_for(score), score, "implicit", basis, kind, partial)
