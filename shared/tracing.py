"""Traces across the broker: OpenTelemetry, off unless an OTLP endpoint is configured.

A trace starts at an HTTP request (continuing the caller's ``traceparent`` header when there
is one). Each event a request or a handler emits carries the W3C ``traceparent`` of the span
that emitted it, as the CloudEvents distributed-tracing extension, so it rides through the
outbox and the broker; each consumer handles each event in a span that is its child. One issue
is so one trace, from its POST to improvement's ``followup_required``.

Off (no endpoint), nothing here runs but an ``is None`` test: no SDK, no spans, and no
``traceparent`` in events (see README, "Traces").
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import context, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.asgi import ResponseStatus
from shared.contracts import CloudEvent

if TYPE_CHECKING:  # the SDK is imported only when tracing is turned on
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

_PROPAGATOR = TraceContextTextMapPropagator()
# Set by configure_tracing when an endpoint is configured; None means off.
_tracer: trace.Tracer | None = None
_provider: TracerProvider | None = None


def otlp_endpoint(configured: str | None) -> str | None:
    """KEFU_OTLP_ENDPOINT, else OpenTelemetry's own variables; None: tracing is off."""
    return (
        configured
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or None
    )


def configure_tracing(
    service: str, endpoint: str | None, processor: SpanProcessor | None = None
) -> bool:
    """Turn tracing on for this process when an endpoint (or a processor, in tests) is given.

    ``endpoint`` is a base URL, as OTEL_EXPORTER_OTLP_ENDPOINT is: spans go to its
    ``/v1/traces`` over OTLP/HTTP, batched in the background."""
    global _tracer, _provider
    if endpoint is None and processor is None:
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"kefu-{service}"}))
    if endpoint is not None:
        traces = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        url = traces or endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    if processor is not None:
        provider.add_span_processor(processor)
    _provider = provider
    _tracer = provider.get_tracer("kefu")
    return True


def shutdown_tracing() -> None:
    """Export what is left and turn tracing off."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


def enabled() -> bool:
    return _tracer is not None


def traceparent_of(span: Span) -> str:
    ids = span.get_span_context()
    return f"00-{ids.trace_id:032x}-{ids.span_id:016x}-{int(ids.trace_flags):02x}"


def current_traceparent() -> str | None:
    """The traceparent an event emitted now carries: the current span's; None when off."""
    if _tracer is None:
        return None
    span = trace.get_current_span()
    return traceparent_of(span) if span.get_span_context().is_valid else None


def add_trace_ids(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: a line logged inside a span carries its trace and span ids."""
    if _tracer is None or "trace_id" in event_dict:
        return event_dict
    ids = trace.get_current_span().get_span_context()
    if ids.is_valid:
        event_dict["trace_id"] = f"{ids.trace_id:032x}"
        event_dict["span_id"] = f"{ids.span_id:016x}"
    return event_dict


class TraceRequests:
    """One SERVER span per HTTP request, the caller's ``traceparent`` header as its parent.
    Installed only when tracing is on."""

    def __init__(self, app: ASGIApp, excluded: frozenset[str]) -> None:
        self.app = app
        self.excluded = excluded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracer = _tracer
        if tracer is None or scope["type"] != "http" or scope["path"] in self.excluded:
            await self.app(scope, receive, send)
            return
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in (b"traceparent", b"tracestate")
        }
        method = scope["method"]
        with tracer.start_as_current_span(
            method, context=_PROPAGATOR.extract(carrier), kind=SpanKind.SERVER
        ) as span:
            status = ResponseStatus(send)
            try:
                await self.app(scope, receive, status)
            finally:
                route = getattr(scope.get("route"), "path", None)
                span.update_name(f"{method} {route or scope['path']}")
                span.set_attribute("http.request.method", method)
                span.set_attribute("http.route", route or "")
                span.set_attribute("http.response.status_code", status.code)
                if status.code >= 500:
                    span.set_status(Status(StatusCode.ERROR))


class ConsumerSpans:
    """A CONSUMER span per event of a batch, each the child of its event's traceparent; the
    events a handler emits carry the span of the event about the same subject (their issue)."""

    def __init__(self, tracer: trace.Tracer, service: str, events: Sequence[CloudEvent]) -> None:
        self.spans: dict[Any, Span] = {}
        self.parents: dict[str, str] = {}
        for event in events:
            parent = _PROPAGATOR.extract({"traceparent": event.traceparent or ""})
            span = tracer.start_span(
                f"{event.type} process",
                context=parent,
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "rabbitmq",
                    "messaging.operation.type": "process",
                    "messaging.destination.name": f"kefu.{service}",
                    "messaging.message.id": str(event.id),
                    "cloudevents.event_type": event.type,
                    "cloudevents.event_subject": event.subject or "",
                },
            )
            self.spans[event.id] = span
            if event.subject is not None:
                self.parents[event.subject] = traceparent_of(span)

    @contextmanager
    def current(self, event_id: Any) -> Iterator[None]:
        """While one event is handled alone (its log lines carry its trace id)."""
        span = self.spans.get(event_id)
        if span is None:
            yield
            return
        token = context.attach(trace.set_span_in_context(span))
        try:
            yield
        finally:
            context.detach(token)

    def fail(self, event_id: Any, error: BaseException) -> None:
        span = self.spans.get(event_id)
        if span is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))

    def end(self) -> None:
        for span in self.spans.values():
            span.end()


def consumer_spans(service: str, events: Sequence[CloudEvent]) -> ConsumerSpans | None:
    return None if _tracer is None else ConsumerSpans(_tracer, service, events)


def parent_for(subject: str | None, parents: Mapping[str, str] | None) -> str | None:
    """The traceparent of an event being emitted: its subject's consumer span within a
    batch, else the current span (an HTTP request's); None when off."""
    if _tracer is None:
        return None
    if parents and subject is not None and subject in parents:
        return parents[subject]
    return current_traceparent()
