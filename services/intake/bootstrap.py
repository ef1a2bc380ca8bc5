"""Composition root of intake."""

from services.intake.adapters import tables
from services.intake.entrypoints.http import contract, router
from shared.service import ServiceDefinition

definition = ServiceDefinition(
    name="intake",
    outbox=tables.outbox,
    inbox=tables.inbox,
    api_keys=tables.api_keys,
    routers=[router, contract],
)
