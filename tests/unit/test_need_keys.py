"""Need keys: the closed lists, and an implied need's words for every key."""

from __future__ import annotations

import json

import pytest

from services.need_analyzer.domain.need_keys import ACTIONS, NO_NEED, OBJECTS, implied_need, is_key
from services.need_analyzer.evaluation import TUNING


def test_the_lists_are_the_guides() -> None:
    assert len(ACTIONS) == 23 and len(OBJECTS) == 23
    assert is_key("speed_up:response") and is_key("refund:charge")
    assert not is_key("refund") and not is_key("speed:response") and not is_key(NO_NEED)


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_every_key_has_words_in_both_languages(action: str) -> None:
    for thing in OBJECTS:
        key = f"{action}:{thing}"
        chinese, english = implied_need(key, "zh"), implied_need(key, "en")
        assert chinese and english and chinese != english


def test_implied_needs_read_like_the_guides() -> None:
    assert implied_need("deliver:package", "zh") == "尽快送达包裹"
    assert implied_need("deliver:package", "en") == "deliver the package"
    assert implied_need("refund:charge", "en") == "refund the wrong charge"


def test_every_tuning_key_is_in_the_lists() -> None:
    """A key outside the lists would be learnt and predicted."""
    for line in TUNING.read_text("utf-8").splitlines():
        key = json.loads(line)["need_key"]
        assert key is None or is_key(key), key
