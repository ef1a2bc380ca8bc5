"""Composition root of need_analyzer."""

from services.need_analyzer.adapters import tables
from services.need_analyzer.handlers import handlers
from shared.service import ServiceDefinition

definition = ServiceDefinition(
    name="need_analyzer",
    outbox=tables.outbox,
    inbox=tables.inbox,
    api_keys=tables.api_keys,
    handlers=handlers,
)
