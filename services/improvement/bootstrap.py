"""Composition root of improvement."""

from services.improvement.adapters import tables
from services.improvement.handlers import handlers
from shared.service import ServiceDefinition

definition = ServiceDefinition(
    name="improvement",
    outbox=tables.outbox,
    inbox=tables.inbox,
    api_keys=tables.api_keys,
    handlers=handlers,
)
