"""webhooks' delivery log about erased customers: each stored event keeps only what an erased
customer's event may keep (a delivery still pending goes out that way)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.webhooks.adapters.tables import deliveries
from shared.contracts import CloudEvent, decode_event, without_personal_data


async def erase_customers(session: AsyncSession, customers: Sequence[uuid.UUID]) -> None:
    ids = [str(customer) for customer in customers]
    rows = await session.execute(
        select(deliveries.c.id, deliveries.c.event).where(
            deliveries.c.event["data"]["customer"]["customer_id"].astext.in_(ids)
        )
    )
    for row in rows:
        event, data = decode_event(CloudEvent.model_validate(row.event).model_dump_json().encode())
        stripped = event.model_copy(
            update={"data": without_personal_data(data).model_dump(mode="json")}
        )
        await session.execute(
            update(deliveries)
            .where(deliveries.c.id == row.id)
            .values(event=stripped.model_dump(mode="json"), last_response=None)
        )
