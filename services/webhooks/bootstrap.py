"""Composition root of webhooks."""

from services.webhooks.adapters import tables
from services.webhooks.adapters.bindings import keep_reconciled
from services.webhooks.entrypoints.deliveries import Deliveries
from services.webhooks.entrypoints.http import router
from services.webhooks.handlers import make_subscriptions
from shared.service import ServiceDefinition
from shared.settings import get_settings, get_webhook_settings

definition = ServiceDefinition(
    name="webhooks",
    outbox=tables.outbox,
    inbox=tables.inbox,
    api_keys=tables.api_keys,
    erasures=tables.erasures,
    customer_tables=[
        (tables.deliveries, tables.deliveries.c.event["data"]["customer"]["customer_id"].astext)
    ],
    routers=[router],
    subscriptions=make_subscriptions(),
    broker_workers=[
        Deliveries(get_webhook_settings(), db_connections=get_settings().db_pool_size).run,
        keep_reconciled,
    ],
)
