"""`python -m services.need_analyzer.training [--cv]`: train the linear model's heads on the
TUNING set (``evaluation/messages.jsonl``) and write ``adapters/linear-model.npz``.

The held-out set is never read here. ``--cv`` first prints each head's 5-fold cross-validated
accuracy on the tuning set for a few regularisation strengths: the only estimate used to choose
them and the features.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.model_selection import KFold, cross_val_score
from sklearn.svm import LinearSVC

from services.need_analyzer.adapters.models import LINEAR_MODEL, OfflineModels, save_linear_model
from services.need_analyzer.domain.analyzer import MODEL_WINDOW, TextAnalyzer
from services.need_analyzer.domain.linear import Head, char_ngrams
from services.need_analyzer.domain.need_keys import NO_NEED
from services.need_analyzer.evaluation import TUNING, load

# Inverse regularisation strength of each head, and the value of a rule finding beside the
# L2-normalised n-grams: chosen by --cv on the tuning set.
STRENGTH = {"intent": 1.0, "sentiment": 1.0, "urgency": 1.0, "need_key": 1.0}
RULE_WEIGHT = 0.5
MIN_DOCUMENTS = 2  # an n-gram seen in one message only is noise


def labels(message: dict[str, Any]) -> dict[str, str]:
    return {
        "intent": message["intent"],
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


def cross_validate(matrix: csr_matrix, targets: dict[str, list[str]]) -> None:
    folds = KFold(n_splits=5, shuffle=True, random_state=0)
    for name, y in targets.items():
        for strength in (0.3, 1.0, 3.0):
            scores = cross_val_score(LinearSVC(C=strength), matrix, y, cv=folds)
            print(f"{name:<10} C={strength:<4} 5-fold accuracy {scores.mean():.3f}")


def train(matrix: csr_matrix, y: list[str], strength: float) -> Head:
    model = LinearSVC(C=strength).fit(matrix, y)
    if len(model.classes_) == 2:  # one column for two labels: make it two
        weights = np.hstack([-model.coef_.T, model.coef_.T])
        bias = np.asarray([-model.intercept_[0], model.intercept_[0]])
    else:
        weights, bias = model.coef_.T, model.intercept_
    return Head(
        tuple(str(label) for label in model.classes_),
        weights.astype(np.float32),
        bias.astype(np.float32),
    )


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
    if args.cv:
        cross_validate(matrix, targets)
    heads = {name: train(matrix, targets[name], STRENGTH[name]) for name in STRENGTH}
    save_linear_model(args.out, vocabulary, idf, rules, heads, RULE_WEIGHT)
    print(f"written to {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
