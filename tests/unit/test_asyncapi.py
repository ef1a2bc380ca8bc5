"""The AsyncAPI document: generated from shared/contracts.py, committed in docs/, valid against
the AsyncAPI 3.0 JSON schema (vendored in docs/asyncapi-schema/), and served by intake."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from fastapi.testclient import TestClient

from shared import asyncapi
from shared.contracts import EVENT_TYPES, routing_key
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
