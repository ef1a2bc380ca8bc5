"""The AsyncAPI 3.0 document of contract v1, generated from shared/contracts.py and the topology.

Every event type with its payload schema (the CloudEvents envelope around its ``data`` model),
the exchange and the routing key it travels with, who publishes it, and every queue that set-up
declares with what it receives. intake serves it at ``/asyncapi.json``; ``docs/asyncapi.json``
is the committed copy (``python -m shared.asyncapi --write`` refreshes it; a test fails when it
is stale and validates it against the AsyncAPI 3.0 JSON schema).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from shared.contracts import (
    CLOUDEVENTS_CONTENT_TYPE,
    EVENT_TYPES,
    PUBLISHERS,
    EventData,
    routing_key,
)
from shared.messaging.topology import (
    ARCHIVE_QUEUE,
    CONSUMES,
    EVENTS_EXCHANGE,
    service_queue_name,
)

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.json"
AMQP_BINDING_VERSION = "0.3.0"

# Who publishes each type (the event's source is /kefu/<producer>).
# Who publishes each type: the contract's one list.
PRODUCERS = PUBLISHERS


def _name(model: type[EventData]) -> str:
    return model.__name__


def _channel_id(address: str) -> str:
    return address.replace(".", "_")


def _exchange() -> dict[str, Any]:
    return {
        "name": EVENTS_EXCHANGE,
        "type": "topic",
        "durable": True,
        "autoDelete": False,
        "vhost": "/",
    }


def _fit_for_asyncapi(schema: Any) -> Any:
    """pydantic writes OpenAPI's discriminator object; AsyncAPI's is the property name."""
    if isinstance(schema, dict):
        fitted = {key: _fit_for_asyncapi(value) for key, value in schema.items()}
        if isinstance(fitted.get("discriminator"), dict):
            fitted["discriminator"] = fitted["discriminator"]["propertyName"]
        return fitted
    if isinstance(schema, list):
        return [_fit_for_asyncapi(item) for item in schema]
    return schema


def _schemas() -> dict[str, Any]:
    """Every data model and what it uses, plus one envelope per type."""
    models = list(EVENT_TYPES.values())
    _, definitions = models_json_schema(
        [(model, "validation") for model in models],
        ref_template="#/components/schemas/{model}",
    )
    schemas: dict[str, Any] = _fit_for_asyncapi(definitions["$defs"])
    for model in models:
        schemas[f"{_name(model)}Event"] = {
            "type": "object",
            "title": f"{model.TYPE} (CloudEvents 1.0, structured JSON)",
            "required": ["specversion", "id", "source", "type", "time", "data"],
            "properties": {
                "specversion": {"const": "1.0"},
                "id": {
                    "type": "string",
                    "format": "uuid",
                    "description": "Unique per event; "
                    "the AMQP message_id and the webhook-id. Deduplicate on it.",
                },
                "source": {"const": f"/kefu/{PRODUCERS[model.TYPE]}"},
                "type": {"const": model.TYPE},
                "subject": {
                    "type": ["string", "null"],
                    "description": "The issue id, where there is one.",
                },
                "time": {"type": "string", "format": "date-time"},
                "datacontenttype": {"const": "application/json"},
                "data": {"$ref": f"#/components/schemas/{_name(model)}"},
                "traceparent": {
                    "type": ["string", "null"],
                    "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
                    "description": "CloudEvents distributed-tracing extension: the W3C trace "
                    "context of the span that emitted the event, when Kefu traces; null or "
                    "absent otherwise. Continue it to join the issue's trace.",
                },
            },
        }
    return dict(sorted(schemas.items()))


def _messages() -> dict[str, Any]:
    return {
        _name(model): {
            "name": event_type,
            "title": event_type,
            "summary": (model.__doc__ or event_type).strip().splitlines()[0],
            "contentType": CLOUDEVENTS_CONTENT_TYPE,
            "payload": {"$ref": f"#/components/schemas/{_name(model)}Event"},
            "bindings": {
                "amqp": {
                    "messageType": event_type,
                    "bindingVersion": AMQP_BINDING_VERSION,
                }
            },
        }
        for event_type, model in EVENT_TYPES.items()
    }


def _message_refs(event_types: list[str]) -> dict[str, Any]:
    return {
        _name(EVENT_TYPES[t]): {"$ref": f"#/components/messages/{_name(EVENT_TYPES[t])}"}
        for t in event_types
    }


def _queue_binding(name: str) -> dict[str, Any]:
    return {
        "amqp": {
            "is": "queue",
            "queue": {
                "name": name,
                "durable": True,
                "exclusive": False,
                "autoDelete": False,
                "vhost": "/",
            },
            "bindingVersion": AMQP_BINDING_VERSION,
        }
    }


def document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for event_type, model in EVENT_TYPES.items():
        key = routing_key(event_type)
        channel = _channel_id(key)
        channels[channel] = {
            "address": key,
            "title": f"{EVENTS_EXCHANGE} [{key}]",
            "description": f"Routing key `{key}` on the topic exchange `{EVENTS_EXCHANGE}`.",
            "messages": _message_refs([event_type]),
            "bindings": {
                "amqp": {
                    "is": "routingKey",
                    "exchange": _exchange(),
                    "bindingVersion": AMQP_BINDING_VERSION,
                }
            },
        }
        operations[f"{PRODUCERS[event_type]}_sends_{channel}"] = {
            "action": "send",
            "title": f"{PRODUCERS[event_type]} publishes {event_type}",
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{_name(model)}"}],
        }
    queues = {
        service_queue_name(service): sorted(types) for service, types in CONSUMES.items() if types
    }
    queues[ARCHIVE_QUEUE] = sorted(EVENT_TYPES)
    for queue, types in sorted(queues.items()):
        channel = _channel_id(queue)
        archive = queue == ARCHIVE_QUEUE
        channels[channel] = {
            "address": queue,
            "title": queue,
            "description": (
                "A stream bound to `#`: every event of the retention period, readable from any "
                "offset by a stream-capable client."
                if archive
                else f"The quorum queue of {queue.removeprefix('kefu.')}, bound to "
                + ", ".join(f"`{routing_key(t)}`" for t in types)
                + f"; dead-letters to `{queue}.dlq`."
            ),
            "messages": _message_refs(types),
            "bindings": _queue_binding(queue),
        }
        operations[f"{channel}_receives"] = {
            "action": "receive",
            "title": f"{queue} receives its events",
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [
                {"$ref": f"#/channels/{channel}/messages/{_name(EVENT_TYPES[t])}"} for t in types
            ],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Kefu events",
            "version": "1",
            "description": (
                "Contract v1 of Kefu's events: CloudEvents 1.0 in structured JSON mode on the "
                f"durable topic exchange `{EVENTS_EXCHANGE}`, persistent, with AMQP message_id = "
                "event id and routing key = the type without `kefu.`. Delivery is at least once "
                "and unordered: deduplicate on the event id. Fields are only ever added within "
                "a type (docs/contract-versioning.md). Generated from shared/contracts.py."
            ),
            "license": {
                "name": "Apache-2.0",
                "url": "https://www.apache.org/licenses/LICENSE-2.0",
            },
        },
        "defaultContentType": CLOUDEVENTS_CONTENT_TYPE,
        "servers": {
            "rabbitmq": {
                "host": "127.0.0.1:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "RabbitMQ (KEFU_AMQP_URL); a downstream system binds its own "
                "durable queue to the exchange.",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": _messages(), "schemas": _schemas()},
    }


def render() -> str:
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help=f"write {DOCUMENT}")
    args = parser.parse_args()
    if args.write:
        DOCUMENT.write_text(render(), encoding="utf-8")
    else:
        print(render(), end="")


if __name__ == "__main__":
    main()
