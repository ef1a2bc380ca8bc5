"""Loads the offline language models once, at start-up. Nothing is downloaded: every file ships
inside an installed package (jieba's dictionary and IDF table, VADER's lexicon, snownlp's
trained sentiment data and stop words)."""

from __future__ import annotations

import gzip
import importlib.util
import logging
import marshal
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jieba
import numpy as np
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from services.need_analyzer.domain.lexicon import CHINESE_STOPWORDS, ENGLISH_STOPWORDS
from services.need_analyzer.domain.linear import Head, LinearModel

# Text jieba segments with its dictionary (its own range of Chinese characters)...
_JIEBA_HAN = re.compile("[\u4e00-\u9fd5]")
# ...and how it splits any other text: runs of letters and digits (with a decimal part and a
# percent sign), runs of + # & . _ % -, and single other characters.
_NON_CHINESE_TOKEN = re.compile(r"[a-zA-Z0-9]+(?:\.\d+)?%?|[+#&._%\-]+|\S")

# Trained by `python -m services.need_analyzer.training` on the tuning set, shipped in the repo.
LINEAR_MODEL = Path(__file__).resolve().parent / "linear-model.npz"


def _package_dir(name: str) -> Path:
    """A package's folder, without importing it (`import snownlp` costs seconds and memory)."""
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, f"{name} is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass
class NaiveBayes:
    """snownlp's sentiment classifier, scored from its trained counts (add-one smoothing)."""

    counts: dict[str, dict[str, float]]
    totals: dict[str, float]
    unseen: dict[str, float]
    log_prior: dict[str, float]

    @classmethod
    def load(cls, path: Path) -> NaiveBayes:
        with gzip.open(path, "rb") as f:
            data: dict[str, Any] = marshal.loads(f.read())
        grand_total = data["total"]
        labels = data["d"]
        return cls(
            counts={label: dict(v["d"]) for label, v in labels.items()},
            totals={label: float(v["total"]) for label, v in labels.items()},
            unseen={label: float(v["none"]) for label, v in labels.items()},
            log_prior={
                label: math.log(v["total"]) - math.log(grand_total) for label, v in labels.items()
            },
        )

    def positive_probability(self, words: list[str]) -> float:
        logp = {}
        for label in self.counts:
            counts, total, unseen = self.counts[label], self.totals[label], self.unseen[label]
            logp[label] = self.log_prior[label] + sum(
                math.log(counts.get(word, unseen) / total) for word in words
            )
        difference = max(-700.0, min(700.0, logp["neg"] - logp["pos"]))
        return 1 / (1 + math.exp(difference))


def idf_table(source: Path, cache_dir: Path) -> tuple[dict[str, float], float]:
    """jieba's IDF table and its median. Parsing its 270,000 lines is a tenth of the start-up,
    so the parsed table is kept in the cache folder (as jieba keeps its dictionary) and read
    from there while the source file is unchanged."""
    cached = cache_dir / "jieba-idf.marshal"
    stat = source.stat()
    stamp = f"{stat.st_size}:{stat.st_mtime_ns}"
    try:
        with cached.open("rb") as f:
            saved, table, median = marshal.load(f)
        if saved == stamp:
            return table, median
    except (OSError, EOFError, ValueError, TypeError):
        pass  # absent or unreadable: parse the source again
    table = {}
    for line in source.read_text("utf-8").splitlines():
        word, _, value = line.partition(" ")
        table[word] = float(value)
    median = sorted(table.values())[len(table) // 2]
    partial = cached.with_suffix(f".{os.getpid()}")
    with partial.open("wb") as f:
        marshal.dump((stamp, table, median), f)
    partial.replace(cached)  # atomic: replicas starting together never read half a file
    return table, median


def load_linear_model(path: Path = LINEAR_MODEL) -> LinearModel:
    with np.load(path, allow_pickle=False) as data:
        heads = {
            name: Head(
                labels=tuple(str(label) for label in data[f"{name}.labels"]),
                weights=data[f"{name}.weights"].astype(np.float32),
                bias=data[f"{name}.bias"].astype(np.float32),
                sharpness=float(data[f"{name}.sharpness"]),
            )
            for name in (str(name) for name in data["heads"])
        }
        ngrams = {str(gram): i for i, gram in enumerate(data["ngrams"])}
        rules = {str(rule): len(ngrams) + i for i, rule in enumerate(data["rules"])}
        weight = float(data["rule_weight"])
        return LinearModel(ngrams, data["idf"].astype(np.float32), rules, heads, weight)


def save_linear_model(
    path: Path,
    ngrams: list[str],
    idf: Any,
    rules: list[str],
    heads: dict[str, Head],
    rule_weight: float,
) -> None:
    """Weights as float16, so that the file stays at a few MB."""
    arrays: dict[str, Any] = {
        "ngrams": np.asarray(ngrams),
        "idf": np.asarray(idf, dtype=np.float16),
        "rules": np.asarray(rules),
        "heads": np.asarray(list(heads)),
        "rule_weight": np.asarray(rule_weight),
    }
    for name, head in heads.items():
        arrays[f"{name}.labels"] = np.asarray(head.labels)
        arrays[f"{name}.weights"] = head.weights.astype(np.float16)
        arrays[f"{name}.bias"] = head.bias.astype(np.float16)
        arrays[f"{name}.sharpness"] = np.asarray(head.sharpness)
    np.savez_compressed(path, **arrays)


def pinyin_syllables(path: Path) -> frozenset[str]:
    """The ~400 toneless pinyin syllables, read off snownlp's character-to-pinyin table (the
    second column on; a few surnames are capitalised)."""
    with path.open(encoding="utf-8") as table:
        return frozenset(syllable.lower() for line in table for syllable in line.split()[1:])


_MAX_PINYIN_WORD = 24  # about six syllables: a longer run of letters is no pinyin word


def is_pinyin(word: str, syllables: frozenset[str]) -> bool:
    """Whether a lower-case word splits wholly into pinyin syllables ("kuaidi" = kuai + di)."""
    if not word or len(word) > _MAX_PINYIN_WORD:
        return False
    # ends[i]: the word's first i letters split into syllables (a syllable has 1 to 6 letters).
    ends = [True] + [False] * len(word)
    for end in range(1, len(word) + 1):
        ends[end] = any(
            ends[start] and word[start:end] in syllables for start in range(max(0, end - 6), end)
        )
    return ends[-1]


class OfflineModels:
    """The ``LanguageModels`` of the analyzer: jieba, its IDF table, VADER and snownlp's data."""

    def __init__(self, cache_dir: Path) -> None:
        jieba.setLogLevel(logging.WARNING)
        cache_dir.mkdir(parents=True, exist_ok=True)
        self.tokenizer = jieba.Tokenizer()
        # jieba caches its parsed dictionary; the cache lives in a folder this service owns.
        self.tokenizer.tmp_dir = str(cache_dir)
        self.tokenizer.initialize()
        # jieba.analyse would also load its part-of-speech models; only the IDF table is needed.
        self.idf_table, self.median_idf = idf_table(
            _package_dir("jieba") / "analyse" / "idf.txt", cache_dir
        )
        snownlp_dir = _package_dir("snownlp")
        self.bayes = NaiveBayes.load(snownlp_dir / "sentiment" / "sentiment.marshal.3")
        zh_stop = (snownlp_dir / "normal" / "stopwords.txt").read_text("utf-8").split()
        self.stopwords = frozenset(zh_stop) | CHINESE_STOPWORDS | ENGLISH_STOPWORDS
        self.vader = SentimentIntensityAnalyzer()
        self.english_words = frozenset(self.vader.lexicon) | ENGLISH_STOPWORDS | _COMMON_ENGLISH
        self.pinyin_syllables = pinyin_syllables(snownlp_dir / "normal" / "pinyin.txt")

    def segment(self, text: str) -> list[str]:
        """jieba's words of a text with Chinese in it. Without, the tokens jieba would give
        (whitespace aside, and bar the few Latin words with symbols in its dictionary, such as
        "C++") from one regular expression, at a tenth of the cost: jieba walks its dictionary
        graph character by character even over Latin text."""
        if not _JIEBA_HAN.search(text):
            return _NON_CHINESE_TOKEN.findall(text)
        words: list[str] = self.tokenizer.lcut(text)
        return words

    def idf(self, word: str) -> float:
        return self.idf_table.get(word, self.median_idf)

    def is_stopword(self, word: str) -> bool:
        return word in self.stopwords

    def is_english_word(self, word: str) -> bool:
        return word in self.english_words or word.rstrip("s") in self.english_words

    def is_pinyin(self, word: str) -> bool:
        return is_pinyin(word, self.pinyin_syllables)

    def english_polarity(self, text: str) -> float:
        """VADER's compound score, in linear time.

        VADER rescans every word of its input for each sentiment word (lower-casing the whole
        list each time), so a long text costs seconds. Up to ``_VADER_CHUNK`` words (emoji
        spelt out as VADER does) it scores the text as it is; beyond, it scores chunks of that
        size, at most ``_VADER_CHUNKS`` of them, and adds their raw valences as VADER would.
        """
        words = self._spell_emoji(text).split()
        if len(words) <= _VADER_CHUNK:
            return float(self.vader.polarity_scores(" ".join(words))["compound"])
        total = 0.0
        for start in range(0, min(len(words), _VADER_CHUNK * _VADER_CHUNKS), _VADER_CHUNK):
            chunk = " ".join(words[start : start + _VADER_CHUNK])
            compound = self.vader.polarity_scores(chunk)["compound"]
            total += _VADER_ALPHA**0.5 * compound / math.sqrt(max(1e-6, 1 - compound * compound))
        return total / math.sqrt(total * total + _VADER_ALPHA)

    def _spell_emoji(self, text: str) -> str:
        """VADER's own emoji step: each emoji becomes its description's words."""
        emojis = self.vader.emojis
        return "".join(f" {emojis[char]} " if char in emojis else char for char in text)

    def chinese_positive_probability(self, words: list[str]) -> float:
        return self.bayes.positive_probability(words)


# VADER scores up to this many words at once (its cost is quadratic in the words it is given),
# and reads at most this many chunks; ALPHA is its normalisation constant.
_VADER_CHUNK = 60
_VADER_CHUNKS = 5
_VADER_ALPHA = 15.0

# Support vocabulary that VADER's lexicon (sentiment words) and the stop words do not hold.
_COMMON_ENGLISH = frozenset(
    [
        "order",
        "orders",
        "refund",
        "delivery",
        "deliver",
        "delivered",
        "shipping",
        "shipped",
        "package",
        "parcel",
        "tracking",
        "account",
        "password",
        "login",
        "email",
        "phone",
        "app",
        "website",
        "site",
        "page",
        "error",
        "crash",
        "payment",
        "invoice",
        "bill",
        "charged",
        "card",
        "price",
        "item",
        "product",
        "size",
        "color",
        "colour",
        "quality",
        "broken",
        "damaged",
        "wrong",
        "missing",
        "cancel",
        "subscription",
        "help",
        "support",
        "service",
        "customer",
        "agent",
        "time",
        "day",
        "days",
        "week",
        "weeks",
        "hour",
        "hours",
        "today",
        "tomorrow",
        "number",
        "address",
        "store",
        "shop",
        "money",
        "back",
        "return",
        "returned",
        "arrive",
        "arrived",
        "received",
        "recieved",
        "still",
        "waiting",
        "reply",
        "response",
        "answer",
        "question",
        "call",
        "called",
        "contact",
        "update",
        "issue",
        "problem",
        "work",
        "working",
        "open",
        "change",
        "reset",
        "code",
        "message",
        "chat",
        "team",
        "manager",
        "available",
        "stock",
        "box",
        "new",
        "fix",
        "fixed",
        "send",
        "sent",
    ]
)
