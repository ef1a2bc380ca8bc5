"""Customers' contacts shown only to keys with ``customers:read``; everyone else sees them masked
(``z***@example.com``, ``138****8000``, ``张*``), enough to tell customers apart on a screen."""

from __future__ import annotations

import uuid
from collections.abc import Sequence, Set
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel
from sqlalchemy import ColumnElement, Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal, require
from shared.contracts import CustomerRef
from shared.http import DatabaseDep

CUSTOMERS_READ = "customers:read"
C = TypeVar("C", bound=CustomerRef)


def mask_email(email: str) -> str:
    local, at, domain = email.rpartition("@")
    if not at:
        return mask_text(email)
    return f"{local[:1]}***@{domain}"


def mask_phone(phone: str) -> str:
    """The last four digits and what comes before the middle four: the area and carrier."""
    if len(phone) < 8:
        return "*" * (len(phone) - 2) + phone[-2:]
    return f"{phone[:-8]}****{phone[-4:]}"


def mask_text(value: str) -> str:
    return value[:1] + "*" * min(max(len(value) - 1, 1), 3)


def masked(customer: C) -> C:
    return customer.model_copy(
        update={
            "name": mask_text(customer.name) if customer.name else customer.name,
            "email": mask_email(customer.email) if customer.email else customer.email,
            "phone": mask_phone(customer.phone) if customer.phone else customer.phone,
            "external_id": (
                mask_text(customer.external_id) if customer.external_id else customer.external_id
            ),
        }
    )


def shown_to(customer: C | None, scopes: Set[str]) -> C | None:
    """The customer as a caller with ``scopes`` may see it."""
    if customer is None or CUSTOMERS_READ in scopes:
        return customer
    return masked(customer)


class CustomerData(BaseModel):
    """What one service holds about a customer, table by table."""

    service: str
    records: dict[str, list[dict[str, Any]]]


# A table and the expression that gives each row's customer id (as text).
CustomerRows = tuple[Table, ColumnElement[str]]


def by_customer_column(table: Table) -> CustomerRows:
    """A table whose ``customer`` column holds the events' CustomerRef."""
    return table, table.c.customer["customer_id"].astext


async def rows_about(
    session: AsyncSession, tables: Sequence[CustomerRows], customer_id: uuid.UUID
) -> dict[str, list[dict[str, Any]]]:
    """Every row of ``tables`` about this customer, by table name."""
    records: dict[str, list[dict[str, Any]]] = {}
    for table, customer in tables:
        rows = await session.execute(select(table).where(customer == str(customer_id)))
        records[table.name] = [jsonable_encoder(dict(row._mapping)) for row in rows]
    return records


def customer_data_router(service: str, tables: Sequence[CustomerRows]) -> APIRouter:
    """``GET /v1/customers/{id}/data`` (scope customers:read): intake's export gathers it."""
    router = APIRouter(prefix="/v1")

    @router.get("/customers/{customer_id}/data", response_model=CustomerData)
    async def customer_data(
        customer_id: uuid.UUID,
        db: DatabaseDep,
        _: Annotated[Principal, Depends(require(CUSTOMERS_READ))],
    ) -> CustomerData:
        """Everything this service holds about the customer."""
        async with db.unit_of_work() as uow:
            records = await rows_about(uow.session, tables, customer_id)
        return CustomerData(service=service, records=records)

    return router
