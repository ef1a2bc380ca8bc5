"""The seed's rules, done right: the first analyzer, to be replaced by the full one (issue 3).

Every field comes from a rule that can be read here; nothing is guessed: ``need`` is ``None``
when the text states none, and ``language`` is ``und`` when there is nothing to tell.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from shared.contracts import Analysis, Intent, Sentiment, Urgency

ANALYZER_VERSION = "seed-rules-1"

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
_NEED_ZH = re.compile(r"(?<![不无])需要(?P<need>[^，。！？!?；;,\n]+)")
_NEED_EN = re.compile(
    r"\b(?:I|we)\s+(?:really\s+|just\s+)?(?:need|want|would like)\s+(?:to\s+)?"
    r"(?P<need>[^.!?;\n]+)",
    re.IGNORECASE,
)
_MAX_NEED_CHARS = 120


class Analyzer(Protocol):
    version: str

    def analyze(self, text: str) -> Analysis: ...


def detect_language(text: str) -> str:
    """``zh`` or ``en`` by script: Chinese characters weigh as words, Latin letters as letters."""
    cjk = len(_CJK.findall(text))
    latin = len(_LATIN.findall(text))
    if cjk == 0 and latin == 0:
        return "und"
    # A Chinese character carries about as much as an English word of ~4 letters.
    return "zh" if cjk * 4 >= latin else "en"


def extract_need(text: str) -> str | None:
    """What follows 需要 / "I need": the seed's rule, cut at the end of the clause."""
    match = _NEED_ZH.search(text) or _NEED_EN.search(text)
    if not match:
        return None
    need = match.group("need").strip(" \t。.，,！!？?：:；;~～")
    return need[:_MAX_NEED_CHARS] or None


# Cue words per intent, in the order that breaks ties. English cues match whole words.
INTENT_CUES: dict[Intent, tuple[str, ...]] = {
    "refund": ("退款", "退钱", "退货", "refund", "money back", "reimburse"),
    "cancellation": ("取消", "退订", "注销", "cancel", "unsubscribe", "terminate"),
    "delivery": (
        "物流",
        "快递",
        "发货",
        "配送",
        "没收到",
        "还没到",
        "delivery",
        "shipping",
        "shipment",
        "package",
        "parcel",
        "tracking",
        "courier",
    ),
    "billing": (
        "扣费",
        "扣款",
        "账单",
        "发票",
        "付款",
        "支付",
        "收费",
        "charged",
        "charge",
        "invoice",
        "billing",
        "payment",
        "bill",
    ),
    "account": (
        "登录",
        "登陆",
        "密码",
        "账号",
        "账户",
        "注册",
        "login",
        "log in",
        "password",
        "account",
        "sign in",
        "username",
    ),
    "product_quality": (
        "坏了",
        "破损",
        "质量",
        "损坏",
        "瑕疵",
        "发错",
        "broken",
        "defective",
        "damaged",
        "faulty",
        "wrong item",
        "quality",
    ),
    "technical": (
        "崩溃",
        "报错",
        "闪退",
        "打不开",
        "故障",
        "bug",
        "error",
        "crash",
        "crashes",
        "not working",
        "doesn't work",
        "won't load",
    ),
    "response_speed": (
        "响应",
        "速度",
        "太慢",
        "回复慢",
        "等了",
        "没人回",
        "slow",
        "waiting",
        "response time",
        "faster",
        "no reply",
        "no response",
    ),
    "complaint": (
        "投诉",
        "态度",
        "差劲",
        "太差",
        "complain",
        "complaint",
        "rude",
        "unacceptable",
        "terrible",
        "worst",
    ),
    "praise": (
        "感谢",
        "谢谢",
        "非常好",
        "很棒",
        "点赞",
        "thank",
        "thanks",
        "great job",
        "excellent",
        "awesome",
        "love it",
    ),
    "feedback": ("满意度", "评价", "satisfaction", "feedback", "rating"),
    "inquiry": (
        "请问",
        "怎么",
        "如何",
        "是否",
        "能否",
        "吗",
        "how",
        "what",
        "when",
        "where",
        "can i",
        "could you",
        "is it possible",
    ),
}

_POSITIVE = (
    "满意",
    "很好",
    "非常好",
    "不错",
    "感谢",
    "谢谢",
    "棒",
    "开心",
    "happy",
    "great",
    "good",
    "thanks",
    "thank",
    "excellent",
    "love",
    "satisfied",
    "awesome",
)
_NEGATIVE = (
    "不满",
    "差",
    "太慢",
    "糟糕",
    "失望",
    "投诉",
    "生气",
    "愤怒",
    "坏了",
    "垃圾",
    "bad",
    "slow",
    "terrible",
    "angry",
    "disappointed",
    "broken",
    "awful",
    "worst",
    "unacceptable",
    "useless",
    "annoyed",
)
_NEGATORS_ZH = ("不", "没", "没有", "不太", "不是很")
_NEGATORS_EN = ("not", "never", "no", "isn't", "wasn't", "don't", "didn't", "aren't")

_URGENT = (
    "紧急",
    "十万火急",
    "宕机",
    "服务中断",
    "全部无法",
    "律师",
    "起诉",
    "报警",
    "被盗",
    "urgent",
    "emergency",
    "outage",
    "lawyer",
    "lawsuit",
    "legal action",
    "hacked",
    "security breach",
    "fraud",
)
_HIGH = (
    "尽快",
    "马上",
    "立刻",
    "今天之内",
    "再次",
    "又一次",
    "第三次",
    "一直没",
    "asap",
    "immediately",
    "as soon as possible",
    "today",
    "deadline",
    "again",
    "still not",
    "third time",
    "second time",
)


def _count(text: str, cues: Iterable[str]) -> list[str]:
    lowered = text.lower()
    found = []
    for cue in cues:
        if _CJK.search(cue):
            if cue in text:
                found.append(cue)
        elif re.search(rf"(?<![a-z]){re.escape(cue)}(?![a-z])", lowered):
            found.append(cue)
    return found


def _negated(text: str, cue: str) -> bool:
    lowered = text.lower()
    index = lowered.find(cue)
    if _CJK.search(cue):
        before = text[max(0, index - 3) : index]
        return any(before.endswith(neg) for neg in _NEGATORS_ZH)
    words = re.findall(r"[a-z']+", lowered[:index])[-3:]
    return any(word in _NEGATORS_EN for word in words)


def classify_intent(text: str) -> tuple[Intent, list[str]]:
    best: tuple[Intent, list[str]] = ("other", [])
    for intent, cues in INTENT_CUES.items():
        found = _count(text, cues)
        if len(found) > len(best[1]):
            best = (intent, found)
    return best


def score_sentiment(text: str) -> Sentiment:
    text = text.replace("满意度", "")  # "satisfaction level" names a scale, not a feeling
    positive = negative = 0
    for cue in _count(text, _POSITIVE):
        if _negated(text, cue):
            negative += 1
        else:
            positive += 1
    negative += len(_count(text, _NEGATIVE))
    total = positive + negative
    if total == 0:
        return Sentiment(label="neutral", score=0.0)
    score = round((positive - negative) / total, 3)
    label = "positive" if score > 0 else "negative" if score < 0 else "neutral"
    return Sentiment(label=label, score=score)


def rate_urgency(text: str) -> Urgency:
    if _count(text, _URGENT):
        return "urgent"
    if _count(text, _HIGH):
        return "high"
    return "normal"


@dataclass(frozen=True)
class SeedRulesAnalyzer:
    version: str = ANALYZER_VERSION

    def analyze(self, text: str) -> Analysis:
        intent, cues = classify_intent(text)
        return Analysis(
            language=detect_language(text),
            need=extract_need(text),
            intent=intent,
            sentiment=score_sentiment(text),
            urgency=rate_urgency(text),
            keywords=cues[:10],
        )
