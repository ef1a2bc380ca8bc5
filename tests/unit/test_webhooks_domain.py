"""webhooks' pure rules: which events an endpoint wants, which targets it may have, what
follows an attempt; and the shared cursor."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest

from services.webhooks.adapters.sender import TargetRefused, resolve
from services.webhooks.domain.attempts import Attempt, decide
from services.webhooks.domain.subscriptions import Selector, check_patterns, pattern_regex
from services.webhooks.domain.targets import check_url, refused_address
from shared.errors import InvalidInput
from shared.paging import decode_cursor, encode_cursor, page_of


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("improvement.*", "improvement.proposed", True),
        ("improvement.*", "improvement.a.b", False),
        ("improvement.*", "issue.received", False),
        ("#", "issue.received", True),
        ("issue.#", "issue.received", True),
        ("#.analyzed", "issue.analyzed", True),
        ("a.#.b", "a.b", True),
        ("a.#.b", "a.x.y.b", True),
        ("a.#.b", "a.xb", False),
        ("*.received", "issue.received", True),
    ],
)
def test_patterns_follow_amqp_topic_rules(pattern: str, key: str, matches: bool) -> None:
    assert bool(pattern_regex(pattern).match(key)) is matches


def test_patterns_are_checked_and_kept_without_the_prefix() -> None:
    assert check_patterns(["kefu.improvement.*", "issue.#", "issue.#"]) == [
        "improvement.*",
        "issue.#",
    ]
    for bad in (["Issue!"], ["nothing.matches"], []):
        with pytest.raises(InvalidInput) as refused:
            check_patterns(bad)
        assert refused.value.field in ("events", "events[0]")


def test_filters_need_the_field_with_an_admitted_value() -> None:
    selector = Selector.of(["#"], ["chat"], ["refund"])
    assert selector.wants(
        "kefu.issue.analyzed", {"channel": "chat", "analysis": {"intent": "refund"}}
    )
    assert selector.wants(
        "kefu.improvement.followup_required", {"channel": "chat", "intent": "refund"}
    )
    assert not selector.wants(
        "kefu.issue.analyzed", {"channel": "email", "analysis": {"intent": "refund"}}
    )
    assert not selector.wants("kefu.issue.received", {"channel": "chat"})  # no intent yet
    assert Selector.of(["improvement.*"], None, None).wants("kefu.improvement.proposed", {})
    assert not Selector.of(["improvement.*"], None, None).wants("kefu.issue.received", {})


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "172.16.0.5",
        "169.254.169.254",
        "::1",
        "fe80::1",
        "::ffff:10.0.0.1",
        "0.0.0.0",
        "100.64.0.1",
        "224.0.0.1",
        "fd00::1",
    ],
)
def test_internal_addresses_are_refused(address: str) -> None:
    assert refused_address(address) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700:4700::1111", "8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert refused_address(address) is None


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "file:///etc/passwd",
        "http:///path",
        "https://user:pw@example.com/",
        "gopher://example.com",
        "http://example.com/#frag",
        "http://example.com:99999/",
    ],
)
def test_only_plain_http_urls_are_targets(url: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_url(url)
    assert refused.value.field == "url"


def test_a_name_that_resolves_to_loopback_is_refused_unless_allowed() -> None:
    with pytest.raises(TargetRefused, match="loopback"):
        asyncio.run(resolve("localhost", 80, allow_private=False))
    assert asyncio.run(resolve("127.0.0.1", 80, allow_private=True)) == "127.0.0.1"


def test_attempts_retry_on_the_schedule_then_fail() -> None:
    schedule = [5.0, 30.0]
    failed = Attempt(500)
    common = {"schedule": schedule, "consecutive_failures": 1, "circuit_failures": 10}
    assert decide(Attempt(204), try_number=1, **common).outcome == "delivered"  # type: ignore[arg-type]
    assert decide(failed, try_number=1, **common).retry_in == 5.0  # type: ignore[arg-type]
    assert decide(failed, try_number=2, **common).retry_in == 30.0  # type: ignore[arg-type]
    assert decide(failed, try_number=3, **common).outcome == "failed"  # type: ignore[arg-type]
    assert decide(Attempt(None, "timeout"), try_number=1, **common).outcome == "retry"  # type: ignore[arg-type]


def test_the_circuit_opens_on_consecutive_failures_or_gone() -> None:
    paused = decide(
        Attempt(None, "refused"),
        try_number=1,
        schedule=[1],
        consecutive_failures=3,
        circuit_failures=3,
    )
    assert paused.outcome == "paused" and "3 consecutive" in (paused.pause_reason or "")
    gone = decide(
        Attempt(410), try_number=1, schedule=[1], consecutive_failures=1, circuit_failures=3
    )
    assert gone.outcome == "paused"


def test_a_cursor_round_trips_and_a_forged_one_is_a_422() -> None:
    key = (datetime(2026, 12, 1, tzinfo=UTC), uuid.uuid4())
    assert decode_cursor(encode_cursor(key), (datetime, uuid.UUID)) == key
    for forged in ("nonsense", encode_cursor(["x"]), encode_cursor(["2026-12-01T00:00:00", "y"])):
        with pytest.raises(InvalidInput) as refused:
            decode_cursor(forged, (datetime, uuid.UUID))
        assert refused.value.field == "cursor"


def test_a_page_has_a_cursor_only_when_more_rows_follow() -> None:
    rows = [(3, "c"), (2, "b"), (1, "a")]
    items, cursor = page_of(rows, 2, lambda row: row)
    assert items == rows[:2] and cursor == encode_cursor((2, "b"))
    assert page_of(rows[:2], 2, lambda row: row) == (rows[:2], None)
