"""The console's pure parts: language, locale formatting, periods, grants, the timeline, paging
tokens, sessions."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import get_args
from zoneinfo import ZoneInfo

import pytest

from services.console.adapters.services import _next_page, _page_params
from services.console.adapters.sessions import SessionStore
from services.console.domain.access import Grants
from services.console.domain.formatting import Formatter, pick_locale, pick_zone
from services.console.domain.i18n import MESSAGES, Translator, negotiate
from services.console.domain.models import (
    Feedback,
    Followup,
    Issue,
    IssueSatisfaction,
    Verdict,
)
from services.console.domain.periods import Period, change, direction
from services.console.domain.timeline import timeline
from shared.contracts import CustomerRef, Intent

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "chosen", "expected"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", None, "zh"),
        ("en-GB,en;q=0.9,zh;q=0.5", None, "en"),
        ("fr-FR,en;q=0.3,zh;q=0.7", None, "zh"),  # by q-value, not order
        ("fr-FR", None, "zh"),
        ("", None, "zh"),
        ("zh-CN", "en", "en"),  # the switch wins
        ("en", "klingon", "en"),
        ("en;q=0, zh;q=bad", None, "zh"),
    ],
)
def test_language_negotiation(header: str, chosen: str | None, expected: str) -> None:
    assert negotiate(header, chosen) == expected


def test_every_message_and_intent_speaks_both_languages() -> None:
    for key, (zh, en) in MESSAGES.items():
        assert zh.strip() and en.strip(), key
        assert zh.count("{") == en.count("{"), key
    for intent in get_args(Intent):
        assert Translator("zh").label("intent", intent) != intent or intent == "other"
    assert Translator("en").label("intent", "teleportation") == "teleportation"
    assert Translator("zh")("period.days", n=7) == "最近 7 天"


def test_numbers_and_dates_follow_the_reader() -> None:
    zh = Formatter(pick_locale("zh", "zh-CN,zh;q=0.9"), pick_zone("Asia/Shanghai", "UTC"))
    en = Formatter(pick_locale("en", "en-GB,en;q=0.9"), pick_zone(None, "UTC"))
    de_reading_english = Formatter(pick_locale("en", "de-DE,en;q=0.5"), pick_zone("x", "UTC"))
    assert zh.moment(NOW) == "2026年12月1日 10:00:00"  # Beijing time
    assert en.moment(NOW) == "1 Dec 2026, 02:00:00"
    assert de_reading_english.tag == "en"  # the tag of the English the reader asked for
    assert en.number(1234567.891, 1) == "1,234,567.9"
    assert zh.percent(66.666) == "66.7%" and zh.percent(None) == "–"
    assert en.signed(-2.04) == "−2.0" and en.signed(0.01) == "±0.0" and en.signed(3, 0) == "+3"
    assert zh.age(NOW - timedelta(days=3, hours=2), NOW) == "3天"
    assert en.day(date(2026, 11, 24)) == "24 Nov 2026"
    assert pick_zone("Mars/Base", "Asia/Shanghai") == ZoneInfo("Asia/Shanghai")


def test_periods_and_changes() -> None:
    week = Period.last(7, NOW)
    assert week.until - week.since == timedelta(days=7)
    assert week.previous.until == week.since
    assert week.previous.since == NOW - timedelta(days=14)
    assert change(80.0, 75.5) == 4.5 and change(80.0, None) is None
    assert direction(4.5) == "better" and direction(-1) == "worse" and direction(0.01) == "flat"
    assert direction(3, higher_is_better=False) == "worse"


def test_grants_decide_pages_moves_and_contacts() -> None:
    everything = Grants(
        "bootstrap",
        frozenset(
            {
                "issues:read",
                "analyses:read",
                "satisfaction:read",
                "improvements:read",
                "improvements:write",
                "customers:read",
            }
        ),
    )
    assert everything.pages == ["overview", "needs", "followups", "improvements", "issue"]
    assert everything.may_move and everything.sees_contacts and everything.home == "/"
    reader = Grants("ops", frozenset({"improvements:read"}))
    assert reader.pages == ["followups", "improvements"] and not reader.may_move
    assert reader.home == "/followups"
    assert not reader.sees_contacts  # contacts need customers:read, now that it exists
    assert not Grants("csat", frozenset({"satisfaction:read"})).sees_contacts


def _followup(**changes: object) -> Followup:
    base = {
        "followup_id": uuid.uuid4(),
        "issue_id": uuid.uuid4(),
        "customer": CustomerRef(customer_id=uuid.uuid4(), name="李四"),
        "verdict": "neutral",
        "reason": "neutral",
        "summary": "改进企业产品和服务，满足李四的需求",
        "status": "open",
        "created_at": NOW,
        "updated_at": NOW,
    }
    return Followup.model_validate({**base, **changes})


def test_timeline_is_in_time_order_and_the_loops_order_at_one_instant() -> None:
    issue = Issue(
        issue_id=uuid.uuid4(),
        channel="chat",
        customer=CustomerRef(customer_id=uuid.uuid4(), name="李四"),
        text="满意度为中",
        received_at=NOW,
        status="resolved",
        resolved_at=NOW + timedelta(hours=2),
        resolution={"summary": "called back"},
    )
    satisfaction = IssueSatisfaction(
        verdict=Verdict(
            verdict="neutral", score=0.5, source="implicit", basis="text", decided_at=NOW
        ),
        feedback=[
            Feedback(
                feedback_id=uuid.uuid4(), comment="还行", submitted_at=NOW + timedelta(minutes=5)
            )
        ],
    )
    moved = _followup(updated_at=NOW + timedelta(hours=1), status="contacted")
    kinds = [step.kind for step in timeline(issue, None, satisfaction, [moved])]
    assert kinds == [
        "received",
        "verdict",
        "followup_opened",
        "feedback",
        "followup_updated",
        "resolved",
    ]
    assert [s.kind for s in timeline(None, None, None, [_followup()])] == ["followup_opened"]


def test_paging_tokens_tolerate_offsets_and_cursors() -> None:
    assert _next_page({"total": 120, "offset": 50, "items": [1] * 50}, 50) == "o:100"
    assert _next_page({"total": 100, "items": [1] * 50}, 50) is None
    assert _next_page({"items": [1], "next_cursor": "abc"}, 0) == "c:abc"
    assert _next_page({"items": [1], "next_cursor": None, "total": 9}, 0) is None
    assert _page_params("o:100") == ({"offset": 100}, 100)
    assert _page_params("c:abc") == ({"cursor": "abc"}, 0)
    assert _page_params("o:-1") == ({}, 0) and _page_params(None) == ({}, 0)


def test_sessions_expire_and_close(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr("services.console.adapters.sessions.time.monotonic", lambda: clock[0])
    store = SessionStore(idle_seconds=60, max_seconds=600, capacity=2)
    grants = Grants("a", frozenset())
    first, _ = store.open("key-1", grants)
    assert store.get(first) is not None and store.get("forged") is None
    clock[0] += 61
    assert store.get(first) is None  # idle too long
    second, _ = store.open("key-2", grants)
    for _ in range(10):
        clock[0] += 59
        assert store.get(second) is not None
    clock[0] += 59
    assert store.get(second) is None  # past the longest life
    kept, _ = store.open("k", grants)
    store.open("k", grants)
    store.open("k", grants)
    assert store.get(kept) is None  # the least recently used went first
    last, _ = store.open("k", grants)
    store.close(last)
    assert store.get(last) is None
