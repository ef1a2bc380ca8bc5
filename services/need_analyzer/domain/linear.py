"""A linear model over character n-grams and the rules' findings, one head per output.

The features are the text's character 1- to 4-grams (lower-cased, digits folded to 0, runs of
space folded to one), weighted by TF-IDF (sublinear term frequency, L2-normalised), plus one
feature per rule finding ("rule_intent=refund", "question", "stated=请", "action=refund"…).
Each head (intent, secondary intent, sentiment, urgency, need key) is a linear classifier
(one-vs-rest linear SVM) over the same features, trained by
``services/need_analyzer/training.py`` on the tuning set only and shipped as a file. Scoring
is a sum of weight rows, microseconds per message; a softmax of the scores, sharpened by each
head's own factor, gives each label's share, which stands for the confidence: the factor is
the one under which the shares best match how often the label is right on held-back folds of
the tuning set (training.py, ``calibrate``).
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


def gram_list(text: str) -> list[str]:
    """The character 1- to 4-grams of a text, each as often as it occurs (call it with the
    model window)."""
    folded = " " + _SPACES.sub(" ", text.lower().translate(_DIGITS)).strip() + " "
    return [folded[i : i + n] for n in range(1, MAX_N + 1) for i in range(len(folded) - n + 1)]


def char_ngrams(text: str) -> Counter[str]:
    """The character 1- to 4-grams of a text with their counts."""
    return Counter(gram_list(text))


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
    # Every head's weights side by side: one product scores them all, and the shares of all
    # heads come from a few whole-array operations (per-head numpy calls cost more than the
    # product itself).
    _weights: Floats = field(init=False, repr=False)
    _bias: Floats = field(init=False, repr=False)
    _sharpness: Floats = field(init=False, repr=False)  # each column's head's factor
    _starts: npt.NDArray[np.intp] = field(init=False, repr=False)  # each head's first column
    _sizes: npt.NDArray[np.intp] = field(init=False, repr=False)
    _head_of_column: npt.NDArray[np.intp] = field(init=False, repr=False)
    _labels: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        heads = list(self.heads.values())
        sizes = np.asarray([len(head.labels) for head in heads], dtype=np.intp)
        fields = {
            "_weights": np.hstack([head.weights for head in heads]),
            "_bias": np.concatenate([head.bias for head in heads]),
            "_sharpness": np.repeat(
                np.asarray([head.sharpness for head in heads], dtype=np.float32), sizes
            ),
            "_starts": np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp),
            "_sizes": sizes,
            "_head_of_column": np.repeat(np.arange(len(heads), dtype=np.intp), sizes),
            "_labels": tuple(label for head in heads for label in head.labels),
        }
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def vector(self, text: str, findings: Iterable[str]) -> tuple[npt.NDArray[np.intp], Floats]:
        """Sparse features of a text (the model window) and its rule findings: the indices and
        their values."""
        found = map(self.ngrams.get, gram_list(text))
        known = [position for position in found if position is not None]
        index, counts = np.unique(np.asarray(known, dtype=np.intp), return_counts=True)
        values = (1 + np.log(counts, dtype=np.float32)) * self.idf[index]
        if len(index):
            values /= np.linalg.norm(values)
        present = sorted({self.rules[f] for f in findings if f in self.rules})
        rules = np.full(len(present), self.rule_weight, dtype=np.float32)
        return np.concatenate([index, np.asarray(present, dtype=np.intp)]), np.concatenate(
            [values, rules]
        )

    def predict(self, text: str, findings: Iterable[str]) -> dict[str, Prediction]:
        index, values = self.vector(text, findings)
        scores = values @ self._weights[index] + self._bias
        # Per head: a softmax of (score - the head's best) times the head's factor.
        best = np.repeat(np.maximum.reduceat(scores, self._starts), self._sizes)
        shares = np.exp(self._sharpness * (scores - best))
        shares /= np.repeat(np.add.reduceat(shares, self._starts), self._sizes)
        # Each head's columns, most probable first (a stable sort: ties keep the label order).
        order = np.lexsort((-shares, self._head_of_column)).tolist()
        share_of = shares.tolist()
        labels = self._labels
        predictions = {}
        for name, start, size in zip(
            self.heads, self._starts.tolist(), self._sizes.tolist(), strict=True
        ):
            ranked = [(labels[i], share_of[i]) for i in order[start : start + size]]
            predictions[name] = Prediction(ranked[0][0], ranked[0][1], ranked)
        return predictions
