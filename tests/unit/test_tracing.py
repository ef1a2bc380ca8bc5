"""shared/tracing.py without I/O: off it does nothing; on, a consumer's span continues each
event's trace and the events it emits carry that span; log lines carry the trace id."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import tracing
from shared.contracts import CloudEvent, CustomerErased, new_event


def erased(traceparent: str | None = None) -> tuple[str, CloudEvent]:
    data = CustomerErased(customer_id=uuid.uuid4(), erased_at=datetime.now(UTC))
    event = new_event("/kefu/intake", data, traceparent)
    assert event.subject is not None
    return event.subject, event


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure_tracing("feedback", None, SimpleSpanProcessor(exporter))
    yield exporter
    tracing.shutdown_tracing()


def test_off_without_an_endpoint() -> None:
    assert not tracing.configure_tracing("feedback", None)
    assert not tracing.enabled()
    _, event = erased()
    assert tracing.consumer_spans("feedback", [event]) is None
    assert tracing.current_traceparent() is None
    assert tracing.parent_for("anything", {"anything": "x"}) is None


def test_the_endpoint_is_kefus_or_opentelemetrys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    assert tracing.otlp_endpoint(None) is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert tracing.otlp_endpoint(None) == "http://collector:4318"
    assert tracing.otlp_endpoint("http://kefu:4318") == "http://kefu:4318"


def test_a_consumer_span_continues_the_event_and_what_it_emits_continues_the_span(
    spans: InMemorySpanExporter,
) -> None:
    trace_id, parent = "ab" * 16, "cd" * 8
    subject, event = erased(f"00-{trace_id}-{parent}-01")
    consumed = tracing.consumer_spans("feedback", [event])
    assert consumed is not None
    emitted = tracing.parent_for(subject, consumed.parents)
    assert emitted is not None and emitted.split("-")[1] == trace_id
    assert tracing.parent_for("another subject", consumed.parents) is None  # no current span
    consumed.end()
    [span] = spans.get_finished_spans()
    assert span.parent is not None and f"{span.parent.span_id:016x}" == parent
    assert f"{span.context.trace_id:032x}" == trace_id
    assert emitted.split("-")[2] == f"{span.context.span_id:016x}"
    assert span.name == "kefu.customer.erased process"


def test_an_event_without_a_trace_starts_one(spans: InMemorySpanExporter) -> None:
    _, event = erased()
    consumed = tracing.consumer_spans("feedback", [event])
    assert consumed is not None
    consumed.end()
    [span] = spans.get_finished_spans()
    assert span.parent is None and span.context.is_valid


def test_log_lines_inside_a_span_carry_its_trace_id(spans: InMemorySpanExporter) -> None:
    subject, event = erased(f"00-{'12' * 16}-{'34' * 8}-01")
    consumed = tracing.consumer_spans("feedback", [event])
    assert consumed is not None
    assert "trace_id" not in tracing.add_trace_ids(None, "info", {})
    with consumed.current(event.id):
        line = tracing.add_trace_ids(None, "error", {"event": "handler failed"})
    consumed.end()
    assert line["trace_id"] == "12" * 16
    assert consumed.parents[subject].split("-")[1] == "12" * 16
