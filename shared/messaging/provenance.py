"""Whether an event comes from the service that owns its type, and is not stamped in the future.

The contract names one publisher per event type (``shared.contracts.PUBLISHERS``). An event is
accepted only when its CloudEvents ``source`` is that service's, and, when each service has a
broker user of its own (``KEFU_AMQP_USER_PREFIX``), when the AMQP ``user_id`` (which RabbitMQ
checks against the connection's user) is that service's user. The consuming service's own user
and the CLI's are accepted too: they republish messages unchanged (a consumer's released copies,
``kefu dlq replay``), and whoever holds them already controls that queue.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import unquote, urlsplit

from shared.contracts import PUBLISHERS, CloudEvent, EventData, service_source
from shared.validation import MAX_CLOCK_SKEW

CLI_USER = "cli"
# The reasons an event is refused here: no replay can make it acceptable.
UNTRUSTED_REASONS = frozenset(
    {"unknown_publisher", "wrong_source", "wrong_publisher", "time_in_future"}
)


class Untrusted(Exception):
    """An event that no retry can make acceptable; ``reason`` goes into the DLQ's headers."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def amqp_user(amqp_url: str) -> str | None:
    """The user name in an AMQP URL (the connection's user: what RabbitMQ checks user_id with)."""
    user = urlsplit(amqp_url).username
    return unquote(user) if user else None


def broker_user(prefix: str, service: str) -> str:
    return f"{prefix}{service}"


class Provenance:
    def __init__(self, consumer: str, user_prefix: str | None) -> None:
        self.consumer = consumer
        self.user_prefix = user_prefix

    def check(
        self, event: CloudEvent, data: EventData, user_id: str | None, now: datetime | None = None
    ) -> None:
        owner = PUBLISHERS.get(event.type)
        if owner is None:
            raise Untrusted("unknown_publisher", f"no service publishes {event.type}")
        if event.source != service_source(owner):
            raise Untrusted(
                "wrong_source",
                f"{event.type} comes from {service_source(owner)}, not {event.source!r}",
            )
        if self.user_prefix is not None:
            trusted = {
                broker_user(self.user_prefix, name) for name in (owner, self.consumer, CLI_USER)
            }
            if user_id not in trusted:
                raise Untrusted(
                    "wrong_publisher",
                    f"{event.type} is published by the broker user "
                    f"{broker_user(self.user_prefix, owner)!r}, not {user_id!r}",
                )
        latest = (now or datetime.now(UTC)) + MAX_CLOCK_SKEW
        for name, value in (("time", event.time), *vars(data).items()):
            if not isinstance(value, datetime):
                continue
            if value.tzinfo is None:  # a time without a zone is read as UTC
                value = value.replace(tzinfo=UTC)
            if value > latest:
                raise Untrusted(
                    "time_in_future",
                    f"{name} {value.isoformat()} is later than now + "
                    f"{int(MAX_CLOCK_SKEW.total_seconds())} s",
                )
