"""The linear model's scoring, on a model small enough to check by hand, and the shipped one."""

from __future__ import annotations

import numpy as np

from services.need_analyzer.adapters.models import load_linear_model
from services.need_analyzer.domain.linear import Head, LinearModel, char_ngrams


def test_ngrams_fold_case_digits_and_spaces() -> None:
    assert char_ngrams("Ab  1") == char_ngrams("aB 7")
    grams = char_ngrams("退款")
    assert grams["退"] == 1 and grams["退款"] == 1 and grams[" 退款 "] == 1


def test_scores_are_the_sum_of_the_weights_of_what_is_present() -> None:
    head = Head(
        labels=("refund", "delivery"),
        # rows: n-gram "退", n-gram "快", rule "question"
        weights=np.asarray([[2.0, 0.0], [0.0, 2.0], [0.0, 1.0]], dtype=np.float32),
        bias=np.zeros(2, dtype=np.float32),
        sharpness=4.0,
    )
    idf = np.ones(2, dtype=np.float32)
    model = LinearModel({"退": 0, "快": 1}, idf, {"question": 2}, {"intent": head}, 1.0)
    assert model.predict("退", [])["intent"].label == "refund"
    # Equal n-grams, and the rule finding tips it.
    tied = model.predict("退快", ["question", "unknown finding"])["intent"]
    assert tied.label == "delivery"
    assert [label for label, _ in tied.ranked] == ["delivery", "refund"]
    assert abs(sum(p for _, p in tied.ranked) - 1) < 1e-6
    # Nothing known: the bias decides, evenly.
    assert model.predict("xyz", [])["intent"].probability == 0.5


def test_the_shipped_model_has_every_head() -> None:
    model = load_linear_model()
    assert set(model.heads) == {"intent", "secondary", "sentiment", "urgency", "need_key"}
    assert "none" in model.heads["need_key"].labels
    assert "none" in model.heads["secondary"].labels
    assert len(model.heads["intent"].labels) == 13
    assert all(
        h.weights.shape[0] == len(model.ngrams) + len(model.rules) for h in model.heads.values()
    )


def test_each_head_has_its_own_shares() -> None:
    def head(labels: tuple[str, ...], sharpness: float) -> Head:
        weights = np.zeros((1, len(labels)), dtype=np.float32)
        weights[0, 0] = 1.0
        return Head(labels, weights, np.zeros(len(labels), dtype=np.float32), sharpness)

    model = LinearModel(
        {"退": 0},
        np.ones(1, dtype=np.float32),
        {},
        {"two": head(("a", "b"), 2.0), "three": head(("x", "y", "z"), 4.0)},
        1.0,
    )
    found = model.predict("退", [])
    for name, labels in (("two", ("a", "b")), ("three", ("x", "y", "z"))):
        assert found[name].label == labels[0]
        assert abs(sum(share for _, share in found[name].ranked) - 1) < 1e-6
    # The feature "退" has weight 1 after L2 normalisation: shares are softmax(sharpness * score).
    assert abs(found["two"].probability - np.exp(2.0) / (np.exp(2.0) + 1)) < 1e-5
    assert abs(found["three"].probability - np.exp(4.0) / (np.exp(4.0) + 2)) < 1e-5
    assert [label for label, _ in found["three"].ranked[1:]] == ["y", "z"]  # ties: label order
