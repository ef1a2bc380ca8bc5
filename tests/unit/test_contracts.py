import uuid
from datetime import UTC, datetime

import pytest

from services.improvement.domain.followups import needs_followup, summary
from shared.contracts import (
    CustomerRef,
    IssueReceived,
    UndecodableEvent,
    decode_event,
    new_event,
    routing_key,
)
from shared.problems import field_path


def test_event_roundtrip_in_cloudevents_structured_mode() -> None:
    data = IssueReceived(
        issue_id=uuid.uuid4(),
        channel="email",
        external_id="m-1",
        customer=CustomerRef(customer_id=uuid.uuid4(), name="张三"),
        text="需要更快的响应速度",
        received_at=datetime.now(UTC),
    )
    event = new_event("/kefu/intake", data)
    assert event.specversion == "1.0"
    assert event.subject == str(data.issue_id)
    assert routing_key(event.type) == "issue.received"
    envelope, decoded = decode_event(event.model_dump_json().encode())
    assert envelope.id == event.id
    assert decoded == data


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        b'{"specversion":"1.0","id":"'
        + str(uuid.uuid4()).encode()
        + b'","source":"x","type":"kefu.nope","time":"2026-01-01T00:00:00Z","data":{}}',
    ],
)
def test_undecodable_events(body: bytes) -> None:
    with pytest.raises(UndecodableEvent):
        decode_event(body)


def test_followup_rule_and_summary() -> None:
    assert needs_followup("neutral") and needs_followup("dissatisfied")
    assert not needs_followup("satisfied")
    assert summary("李四", "zh") == "改进企业产品和服务，满足李四的需求"
    assert summary("李四", None) == "改进企业产品和服务，满足李四的需求"
    assert summary("Ann", "en").startswith("Improve our product and service")


def test_field_paths() -> None:
    assert field_path(("body", "customer", "email")) == "customer.email"
    assert field_path(("items", 2, "text")) == "items[2].text"
