"""`python -m services.need_analyzer.training [--cv]`: train the linear model's heads on the
TUNING set (``evaluation/messages.jsonl``) and write ``adapters/linear-model.npz``.

The held-out set is never read here. ``--cv`` first prints the whole analyzer's 5-fold
cross-validated accuracy per field on the tuning set: the only estimate used to choose the
features, the rules of presence and the regularisation.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.model_selection import KFold
from sklearn.svm import LinearSVC

from services.need_analyzer.adapters.models import LINEAR_MODEL, OfflineModels, save_linear_model
from services.need_analyzer.domain.analyzer import MODEL_WINDOW, NO_SECONDARY, TextAnalyzer
from services.need_analyzer.domain.linear import Head, LinearModel, char_ngrams
from services.need_analyzer.domain.need_keys import NO_NEED
from services.need_analyzer.evaluation import FIELDS, TUNING, evaluate, load

# Inverse regularisation strength of each head, and the value of a rule finding beside the
# L2-normalised n-grams: chosen by --cv on the tuning set (the secondary head, added later,
# takes the others' strength untuned).
STRENGTH = {"intent": 2.0, "secondary": 2.0, "sentiment": 2.0, "urgency": 2.0, "need_key": 2.0}
RULE_WEIGHT = 0.35
MIN_DOCUMENTS = 2  # an n-gram seen in one message only is noise


def labels(message: dict[str, Any]) -> dict[str, str]:
    return {
        "intent": message["intent"],
        "secondary": message["secondary"] or NO_SECONDARY,
        "sentiment": message["sentiment"],
        "urgency": message["urgency"],
        "need_key": message["need_key"] or NO_NEED,
    }


def featurize(
    analyzer: TextAnalyzer, messages: list[dict[str, Any]]
) -> tuple[csr_matrix, list[str], Any, list[str]]:
    grams = [char_ngrams(m["text"][:MODEL_WINDOW]) for m in messages]
    findings = [analyzer.find(m["text"]).features() for m in messages]
    documents = Counter(gram for counts in grams for gram in counts)
    vocabulary = sorted(gram for gram, n in documents.items() if n >= MIN_DOCUMENTS)
    index = {gram: i for i, gram in enumerate(vocabulary)}
    total = len(messages)
    idf = np.asarray(
        [math.log((1 + total) / (1 + documents[gram])) + 1 for gram in vocabulary],
        dtype=np.float32,
    )
    rules = sorted({finding for found in findings for finding in found})
    rule_index = {rule: len(vocabulary) + i for i, rule in enumerate(rules)}
    rows, columns, values = [], [], []
    for row, (counts, found) in enumerate(zip(grams, findings, strict=True)):
        known = [(index[g], c) for g, c in counts.items() if g in index]
        weights = np.asarray([(1 + math.log(c)) * idf[i] for i, c in known], dtype=np.float32)
        norm = float(np.linalg.norm(weights)) or 1.0
        for (i, _), weight in zip(known, weights, strict=True):
            rows.append(row)
            columns.append(i)
            values.append(weight / norm)
        for finding in set(found):
            rows.append(row)
            columns.append(rule_index[finding])
            values.append(RULE_WEIGHT)
    matrix = csr_matrix(
        (values, (rows, columns)), shape=(total, len(vocabulary) + len(rules)), dtype=np.float32
    )
    return matrix, vocabulary, idf, rules


def cross_validate(
    analyzer: TextAnalyzer,
    messages: list[dict[str, Any]],
    features: tuple[csr_matrix, list[str], Any, list[str]],
    targets: dict[str, list[str]],
    sharpness: dict[str, float],
) -> None:
    """The whole analyzer, 5-fold on the tuning set: heads trained on four fifths, every field
    scored on the fifth left out, as `make evaluate` scores it."""
    matrix, vocabulary, idf, rules = features
    ngrams = {gram: i for i, gram in enumerate(vocabulary)}
    rule_index = {rule: len(vocabulary) + i for i, rule in enumerate(rules)}
    correct: Counter[str] = Counter()
    for kept, left_out in KFold(n_splits=5, shuffle=True, random_state=0).split(matrix):
        heads = {
            name: train(matrix[kept], [y[i] for i in kept], STRENGTH[name], sharpness[name])
            for name, y in targets.items()
        }
        model = LinearModel(ngrams, idf, rule_index, heads, RULE_WEIGHT)
        report = evaluate(replace(analyzer, model=model), [messages[i] for i in left_out])
        correct.update(report.correct)
    for name in FIELDS:
        print(f"  {name:<20} {correct[name] / len(messages):6.1%}  (5-fold, tuning set)")


def fit(matrix: csr_matrix, y: list[str], strength: float) -> tuple[list[str], Any, Any]:
    """A head's labels, weights (features, labels) and bias."""
    model = LinearSVC(C=strength).fit(matrix, y)
    if len(model.classes_) == 2:  # one column for two labels: make it two
        weights = np.hstack([-model.coef_.T, model.coef_.T])
        bias = np.asarray([-model.intercept_[0], model.intercept_[0]])
    else:
        weights, bias = model.coef_.T, model.intercept_
    return [str(label) for label in model.classes_], weights, bias


# The softmax factors calibrate() tries.
SHARPNESS_GRID = tuple(x / 2 for x in range(1, 25))


def calibrate(matrix: csr_matrix, y: list[str], strength: float) -> float:
    """The factor whose shares best fit the truth (least log loss) on the tuning set, each
    message scored by a head trained on the four fifths it is not in."""
    labels_seen = sorted(set(y))
    scores = np.full((len(y), len(labels_seen)), -10.0)  # a label absent from a fold: unlikely
    for kept, left_out in KFold(n_splits=5, shuffle=True, random_state=0).split(matrix):
        names, weights, bias = fit(matrix[kept], [y[i] for i in kept], strength)
        fold = matrix[left_out] @ weights + bias
        for column, name in enumerate(names):
            scores[left_out, labels_seen.index(name)] = fold[:, column]
    truth = np.asarray([labels_seen.index(label) for label in y])
    margins = scores - scores.max(axis=1, keepdims=True)

    def log_loss(sharpness: float) -> float:
        logits = sharpness * margins
        log_shares = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return float(-log_shares[np.arange(len(y)), truth].mean())

    return min(SHARPNESS_GRID, key=log_loss)


def train(matrix: csr_matrix, y: list[str], strength: float, sharpness: float) -> Head:
    names, weights, bias = fit(matrix, y, strength)
    return Head(tuple(names), weights.astype(np.float32), bias.astype(np.float32), sharpness)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--file", type=Path, default=TUNING)
    parser.add_argument("--out", type=Path, default=LINEAR_MODEL)
    parser.add_argument("--cv", action="store_true", help="cross-validate before training")
    args = parser.parse_args()
    analyzer = TextAnalyzer(OfflineModels(Path(tempfile.gettempdir()) / "kefu-eval-cache"))
    messages = load(args.file)
    matrix, vocabulary, idf, rules = featurize(analyzer, messages)
    targets: dict[str, list[str]] = {name: [] for name in STRENGTH}
    for message in messages:
        for name, label in labels(message).items():
            targets[name].append(label)
    print(f"{len(messages)} messages, {len(vocabulary)} n-grams, {len(rules)} rule findings")
    sharpness = {name: calibrate(matrix, targets[name], STRENGTH[name]) for name in STRENGTH}
    print("softmax factors: " + ", ".join(f"{n} {s:g}" for n, s in sharpness.items()))
    if args.cv:
        cross_validate(analyzer, messages, (matrix, vocabulary, idf, rules), targets, sharpness)
    heads = {
        name: train(matrix, targets[name], STRENGTH[name], sharpness[name]) for name in STRENGTH
    }
    save_linear_model(args.out, vocabulary, idf, rules, heads, RULE_WEIGHT)
    print(f"written to {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
