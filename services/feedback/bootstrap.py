"""Composition root of feedback."""

from services.feedback.adapters import tables
from services.feedback.entrypoints.http import router
from services.feedback.handlers import subscriptions
from shared.privacy import by_customer_column
from shared.service import ServiceDefinition

definition = ServiceDefinition(
    name="feedback",
    outbox=tables.outbox,
    inbox=tables.inbox,
    api_keys=tables.api_keys,
    erasures=tables.erasures,
    customer_tables=[
        by_customer_column(tables.issues),
        by_customer_column(tables.feedback),
        by_customer_column(tables.verdicts),
    ],
    routers=[router],
    subscriptions=subscriptions,
)
