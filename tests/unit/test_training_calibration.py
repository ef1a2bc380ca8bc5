"""The softmax factor of a head: sharper when its held-back answers are right more often."""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix

from services.need_analyzer.training import SHARPNESS_GRID, calibrate


def _data(noise: float) -> tuple[csr_matrix, list[str]]:
    """Two labels, one feature each, and a share ``noise`` of the labels flipped."""
    generator = np.random.default_rng(0)
    truth = generator.integers(0, 2, 200)
    features = np.zeros((200, 3))
    features[np.arange(200), truth] = 1.0
    features[:, 2] = generator.random(200)  # a feature that says nothing
    flipped = generator.random(200) < noise
    observed = np.where(flipped, 1 - truth, truth)
    labels = ["b" if label else "a" for label in observed]
    return csr_matrix(features), labels


def test_noisier_labels_get_a_softer_factor() -> None:
    clean = calibrate(*_data(0.0), strength=1.0)
    noisy = calibrate(*_data(0.3), strength=1.0)
    assert clean in SHARPNESS_GRID and noisy in SHARPNESS_GRID
    assert clean == max(SHARPNESS_GRID)  # always right: as sharp as allowed
    assert noisy < clean
