"""An event type is accepted only from its owner, and never stamped in the future."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.contracts import CustomerRef, IssueReceived, SatisfactionEvaluated, new_event
from shared.messaging.provenance import Provenance, Untrusted, amqp_user

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def verdict() -> SatisfactionEvaluated:
    return SatisfactionEvaluated(
        issue_id=uuid.uuid4(),
        customer=CustomerRef(customer_id=uuid.uuid4(), name="FORGED"),
        score=0.0,
        verdict="dissatisfied",
        source="explicit",
        basis="rating csat5 1",
        evaluated_at=NOW,
    )


def received(at: datetime) -> IssueReceived:
    return IssueReceived(
        issue_id=uuid.uuid4(),
        channel="web",
        external_id="x",
        customer=CustomerRef(customer_id=uuid.uuid4()),
        text="我要退款",
        received_at=at,
    )


def refusal(provenance: Provenance, source: str, data: object, user_id: str | None) -> str:
    event = new_event(source, data)  # type: ignore[arg-type]
    event = event.model_copy(update={"time": NOW})
    with pytest.raises(Untrusted) as caught:
        provenance.check(event, data, user_id, now=NOW)  # type: ignore[arg-type]
    return caught.value.reason


def test_an_event_from_its_owner_is_accepted() -> None:
    data = verdict()
    event = new_event("/kefu/feedback", data).model_copy(update={"time": NOW})
    Provenance("improvement", None).check(event, data, "guest", now=NOW)
    Provenance("improvement", "kefu_").check(event, data, "kefu_feedback", now=NOW)


def test_an_event_with_another_services_source_is_refused() -> None:
    for source in ("/kefu/intake", "/kefu/improvement", "/anything"):
        assert refusal(Provenance("improvement", None), source, verdict(), "guest") == (
            "wrong_source"
        )


def test_with_broker_users_only_the_owners_user_may_publish() -> None:
    provenance = Provenance("improvement", "kefu_")
    for user in ("kefu_intake", "kefu_need_analyzer", "guest", None):
        assert refusal(provenance, "/kefu/feedback", verdict(), user) == "wrong_publisher"
    data = verdict()
    event = new_event("/kefu/feedback", data).model_copy(update={"time": NOW})
    # Its own copies (released during an outage) and the CLI's replays keep their source.
    provenance.check(event, data, "kefu_improvement", now=NOW)
    provenance.check(event, data, "kefu_cli", now=NOW)


def test_a_time_beyond_the_clock_skew_is_refused() -> None:
    provenance = Provenance("improvement", None)
    late = datetime(9999, 1, 1, tzinfo=UTC)
    assert refusal(provenance, "/kefu/intake", received(late), None) == "time_in_future"
    almost = NOW + timedelta(minutes=4)
    data = received(almost)
    event = new_event("/kefu/intake", data).model_copy(update={"time": NOW})
    provenance.check(event, data, None, now=NOW)
    future_envelope = event.model_copy(update={"time": NOW + timedelta(hours=1)})
    with pytest.raises(Untrusted, match="time"):
        provenance.check(future_envelope, data, None, now=NOW)
    naive = event.model_copy(update={"time": datetime(9999, 1, 1)})
    with pytest.raises(Untrusted):
        provenance.check(naive, data, None, now=NOW)


def test_the_user_of_an_amqp_url() -> None:
    assert amqp_user("amqp://kefu_intake:secret@mq:5672/kefu") == "kefu_intake"
    assert amqp_user("amqps://a%40b:x@mq/") == "a@b"
    assert amqp_user("amqp://mq/") is None
