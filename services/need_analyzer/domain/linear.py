"""A linear model over character n-grams and the rules' findings, one head per output.

The features are the text's character 1- to 4-grams (lower-cased, digits folded to 0, runs of
space folded to one), weighted by TF-IDF (sublinear term frequency, L2-normalised), plus one
feature per rule finding ("rule_intent=refund", "question", "stated=请", "action=refund"…).
Each head (intent, sentiment, urgency, need key) is a linear classifier (one-vs-rest linear
SVM) over the same features, trained by ``services/need_analyzer/training.py`` on the tuning
set only and shipped as a file. Scoring is a sum of weight rows, microseconds per message; a
softmax of the scores, sharpened by each head's own factor, gives each label's share, which
stands for the confidence: the factor is the one under which the shares best match how often
the label is right on held-back folds of the tuning set (training.py, ``calibrate``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

MAX_N = 4
_SPACES = re.compile(r"\s+")
_DIGITS = str.maketrans("123456789", "000000000")

Floats = npt.NDArray[np.float32]


def char_ngrams(text: str) -> Counter[str]:
    """The character 1- to 4-grams of a text (call it with the model window)."""
    folded = " " + _SPACES.sub(" ", text.lower().translate(_DIGITS)).strip() + " "
    grams: Counter[str] = Counter()
    for n in range(1, MAX_N + 1):
        grams.update(folded[i : i + n] for i in range(len(folded) - n + 1))
    return grams


@dataclass(frozen=True)
class Head:
    labels: tuple[str, ...]
    weights: Floats  # (features, labels)
    bias: Floats  # (labels,)
    # SVM scores are margins, about -1..1: this factor turns them into shares (a softmax).
    sharpness: float


@dataclass(frozen=True)
class Prediction:
    label: str
    probability: float
    ranked: list[tuple[str, float]]  # every label, most probable first


@dataclass(frozen=True)
class LinearModel:
    ngrams: Mapping[str, int]  # n-gram -> feature index
    idf: Floats
    rules: Mapping[str, int]  # rule finding -> feature index (after the n-grams)
    heads: Mapping[str, Head]
    rule_weight: float  # the value of a rule finding that is present
    # Every head's weights side by side: one product scores them all.
    _weights: Floats = field(init=False, repr=False)
    _bias: Floats = field(init=False, repr=False)
    _columns: dict[str, slice] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        columns, start = {}, 0
        for name, head in self.heads.items():
            columns[name] = slice(start, start + len(head.labels))
            start += len(head.labels)
        object.__setattr__(self, "_columns", columns)
        object.__setattr__(self, "_weights", np.hstack([h.weights for h in self.heads.values()]))
        object.__setattr__(self, "_bias", np.concatenate([h.bias for h in self.heads.values()]))

    def vector(self, grams: Counter[str], findings: Iterable[str]) -> tuple[list[int], Floats]:
        """Sparse features: the indices and their values."""
        lookup = self.ngrams.get
        known = [
            (position, count)
            for gram, count in grams.items()
            if (position := lookup(gram)) is not None
        ]
        index = [position for position, _ in known]
        values = np.asarray([count for _, count in known], dtype=np.float32)
        if index:
            values = (1 + np.log(values)) * self.idf[index]
            values /= np.linalg.norm(values)
        present = sorted({self.rules[f] for f in findings if f in self.rules})
        rules = np.full(len(present), self.rule_weight, dtype=np.float32)
        return index + present, np.concatenate([values, rules])

    def predict(self, grams: Counter[str], findings: Iterable[str]) -> dict[str, Prediction]:
        index, values = self.vector(grams, findings)
        scores = values @ self._weights[index] + self._bias
        predictions = {}
        for name, head in self.heads.items():
            own = scores[self._columns[name]]
            shares = np.exp(head.sharpness * (own - own.max()))
            shares /= shares.sum()
            ranked = sorted(
                zip(head.labels, shares.tolist(), strict=True), key=_share, reverse=True
            )
            predictions[name] = Prediction(ranked[0][0], ranked[0][1], ranked)
        return predictions


def _share(labelled: tuple[str, float]) -> float:
    return labelled[1]
