"""The AsyncAPI document: generated from shared/contracts.py, committed in docs/, valid against
the AsyncAPI 3.0 JSON schema (vendored in docs/asyncapi-schema/), and served by intake."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
from fastapi.testclient import TestClient

from shared import asyncapi
from shared.contracts import EVENT_TYPES, CustomerErased, new_event, routing_key
from shared.messaging.topology import CONSUMES, service_queue_name

SCHEMA = Path(asyncapi.DOCUMENT).parent / "asyncapi-schema" / "asyncapi-3.0.0.schema.json"


def test_the_committed_document_is_the_generated_one() -> None:
    committed = asyncapi.DOCUMENT.read_text(encoding="utf-8")
    assert committed == asyncapi.render(), (
        "docs/asyncapi.json is stale: run `python -m shared.asyncapi --write` and commit it"
    )


def test_the_document_is_valid_asyncapi_3() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(asyncapi.document()))
    assert not errors, [f"{list(e.absolute_path)}: {e.message[:200]}" for e in errors[:5]]


def test_the_schema_catches_a_broken_document() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    broken = asyncapi.document()
    broken["channels"]["issue_received"]["messages"] = "not a map"
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def test_every_type_queue_and_producer_is_described() -> None:
    document = asyncapi.document()
    assert set(asyncapi.PRODUCERS) == set(EVENT_TYPES)
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert {routing_key(t) for t in EVENT_TYPES} <= addresses
    assert {service_queue_name(s) for s, types in CONSUMES.items() if types} <= addresses
    assert {m["name"] for m in document["components"]["messages"].values()} == set(EVENT_TYPES)
    # The data schema of each type is the model's: required fields included.
    received = document["components"]["schemas"]["IssueReceived"]
    assert {"issue_id", "channel", "text", "received_at"} <= set(received["required"])


def test_intake_serves_it() -> None:
    from fastapi import FastAPI

    from services.intake.entrypoints.http import contract

    app = FastAPI()
    app.include_router(contract)
    answer = TestClient(app).get("/asyncapi.json")
    assert answer.status_code == 200 and answer.json() == json.loads(asyncapi.render())


def test_the_envelope_takes_the_optional_traceparent_extension() -> None:
    """An event as Kefu emits it while tracing (traceparent set), and as it emits it otherwise
    (null), fits its envelope's schema; a traceparent that is not W3C trace context does not."""
    document = asyncapi.document()
    schemas = document["components"]["schemas"]
    envelope = {**schemas["CustomerErasedEvent"], "components": {"schemas": schemas}}
    validator = jsonschema.Draft202012Validator(envelope)
    data = CustomerErased(customer_id=uuid.uuid4(), erased_at=datetime.now(UTC))
    traced = new_event("/kefu/intake", data, f"00-{'a' * 32}-{'b' * 16}-01")
    untraced = new_event("/kefu/intake", data)
    for event in (traced, untraced):
        assert not list(validator.iter_errors(event.model_dump(mode="json")))
    broken = {**traced.model_dump(mode="json"), "traceparent": "not a trace context"}
    assert list(validator.iter_errors(broken))
