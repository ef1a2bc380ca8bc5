"""What every consuming service does when a customer is erased (``kefu.customer.erased``).

Each service records the erased customer in its ``erasures`` table and deletes its outbox rows
about them (published or not: a pending one would carry the data out again). Its own handler
then deletes or anonymises its rows. Events about the customer that were already on their way
(published before the erasure, delivered after it) reach the handlers without the customer's
data: the consumer strips them (``shared.contracts.without_personal_data``).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime

from sqlalchemy import Column, DateTime, MetaData, Table, Uuid, text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts import CustomerErased
from shared.db import UnitOfWork
from shared.messaging.consumer import Subscription, subscribe


def erasures_table(metadata: MetaData) -> Table:
    return Table(
        "erasures",
        metadata,
        Column("customer_id", Uuid, primary_key=True),
        Column("erased_at", DateTime(timezone=True), nullable=False),
    )


async def record_erasures(
    uow: UnitOfWork, erasures: Table, erased: dict[uuid.UUID, datetime]
) -> None:
    """Remember the customers and drop this service's outbox rows about them."""
    if not erased:
        return
    await uow.session.execute(
        text(
            f"INSERT INTO {erasures.schema}.erasures (customer_id, erased_at) "
            "SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:times AS timestamptz[])) "
            "ON CONFLICT (customer_id) DO NOTHING"
        ),
        {"ids": list(erased), "times": list(erased.values())},
    )
    await delete_outbox_rows_about(uow, erased)


async def delete_outbox_rows_about(uow: UnitOfWork, customers: Iterable[uuid.UUID]) -> None:
    outbox = uow.outbox.table
    await uow.session.execute(
        text(
            f"DELETE FROM {outbox.schema}.{outbox.name} "
            "WHERE payload -> 'data' -> 'customer' ->> 'customer_id' = ANY(CAST(:ids AS text[]))"
        ),
        {"ids": [str(customer) for customer in customers]},
    )


def erasure_subscription(
    erasures: Table, erase: Callable[[AsyncSession, list[uuid.UUID]], Awaitable[None]]
) -> Subscription[CustomerErased]:
    """The handler of ``kefu.customer.erased``: the shared part, then the service's ``erase``
    (its own rows, deleted or anonymised)."""

    async def on_customers_erased(items: Sequence[CustomerErased], uow: UnitOfWork) -> None:
        erased = {item.customer_id: item.erased_at for item in items}
        await record_erasures(uow, erasures, erased)
        await erase(uow.session, list(erased))

    return subscribe(CustomerErased, on_customers_erased)
