"""Composition root of feedback."""

from services.feedback.adapters import tables
from services.feedback.entrypoints.http import router
from services.feedback.handlers import subscriptions
from shared.service import ServiceDefinition

definition = ServiceDefinition(
    name="feedback",
    outbox=tables.outbox,
    inbox=tables.inbox,
    api_keys=tables.api_keys,
    erasures=tables.erasures,
    customer_tables=[tables.issues, tables.feedback, tables.verdicts],
    routers=[router],
    subscriptions=subscriptions,
)
