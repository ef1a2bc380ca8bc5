"""One issue is one trace: with tracing on (an OTLP/HTTP endpoint configured), the trace id of
the POST is on every event of the issue's chain, issue.received to followup_required, and the
spans the services export link each hop to the one before it."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from deploy.launcher import ServiceProcesses
from shared.settings import Settings
from tests.support import (
    BOOTSTRAP_KEY,
    WebhookReceiver,
    event_tap,
    free_port,
    isolated_stack,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
AUTH = {"Authorization": f"Bearer {BOOTSTRAP_KEY}"}
CHAIN = (
    "kefu.issue.received",
    "kefu.issue.analyzed",
    "kefu.satisfaction.evaluated",
    "kefu.improvement.followup_required",
)


@dataclass(frozen=True)
class ExportedSpan:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str


def exported(collector: WebhookReceiver) -> list[ExportedSpan]:
    spans = []
    for request in collector.at("/v1/traces"):
        export = ExportTraceServiceRequest.FromString(request.body)
        for resource_spans in export.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        ExportedSpan(
                            service=attributes["service.name"],
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                        )
                    )
    return spans


@pytest.fixture(scope="module")
def stack() -> Iterator[Settings]:
    """Its own database and vhost: only traced services handle this test's events."""
    with isolated_stack() as settings:
        yield settings


@pytest_asyncio.fixture(loop_scope="session")
async def collector() -> AsyncIterator[WebhookReceiver]:
    """A tiny OTLP/HTTP receiver: records each export request (protobuf)."""
    async with WebhookReceiver() as receiver:
        yield receiver


@pytest_asyncio.fixture(loop_scope="session")
async def traced(stack: Settings, collector: WebhookReceiver) -> AsyncIterator[ServiceProcesses]:
    services = ("intake", "need_analyzer", "feedback", "improvement")
    group = ServiceProcesses(
        stack,
        env={
            "KEFU_BOOTSTRAP_API_KEY": BOOTSTRAP_KEY,
            "KEFU_OUTBOX_POLL_SECONDS": "0.5",
            "KEFU_LOG_JSON": "false",
            "KEFU_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.port}",
            "OTEL_BSP_SCHEDULE_DELAY": "200",  # export within 0.2 s, not 5 s
        },
        ports={service: free_port() for service in services},
        services=services,
    )
    group.start_all()
    try:
        group.wait_ready(timeout=60)
        yield group
    finally:
        group.stop_all()


async def test_one_issue_is_one_trace_from_post_to_followup(
    traced: ServiceProcesses, stack: Settings, collector: WebhookReceiver
) -> None:
    # The caller's own trace: Kefu continues it.
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
    body = {
        "channel": "chat",
        "external_id": f"trace-{uuid.uuid4()}",
        "customer": {"name": "李四", "phone": "13900139000"},
        "text": "满意度为中",
    }
    async with event_tap(stack) as tap:
        async with httpx.AsyncClient(base_url=traced.url("intake"), headers=AUTH) as client:
            answer = await client.post(
                "/v1/issues",
                json=body,
                headers={"traceparent": f"00-{trace_id}-{caller_span}-01"},
            )
        assert answer.status_code == 202
        issue_id = answer.json()["issue_id"]
        for event_type in CHAIN:
            await tap.wait_for(event_type, lambda d: d.get("issue_id") == issue_id, timeout=40)
        events = [e for e in tap.events if e["subject"] == issue_id]

    # The trace id rides on every event of the chain.
    assert {e["type"] for e in events} >= set(CHAIN)
    for event in events:
        assert event["traceparent"] is not None, event["type"]
        assert event["traceparent"].split("-")[1] == trace_id, event["type"]
    emitters = {e["traceparent"].split("-")[2]: e["type"] for e in events}

    # Each event was emitted by an exported span of that trace: intake's request span (the
    # child of the caller's), or a consumer's span, the child of an earlier event's emitter.
    def all_exported() -> dict[str, ExportedSpan] | None:
        spans = {s.span_id: s for s in exported(collector) if s.trace_id == trace_id}
        return spans if set(emitters) <= set(spans) else None

    spans: dict[str, ExportedSpan] = await wait_until(all_exported, what="the exported spans")
    received = next(e for e in events if e["type"] == "kefu.issue.received")
    request = spans[received["traceparent"].split("-")[2]]
    assert request.service == "kefu-intake"
    assert request.name == "POST /v1/issues"
    assert request.parent_span_id == caller_span
    for span_id, event_type in emitters.items():
        if event_type == "kefu.issue.received":
            continue
        span = spans[span_id]
        assert span.parent_span_id in emitters, (event_type, span)
        assert span.name.endswith(" process")
    followup = next(e for e in events if e["type"] == "kefu.improvement.followup_required")
    assert spans[followup["traceparent"].split("-")[2]].service == "kefu-improvement"
