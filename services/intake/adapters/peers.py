"""What the other services hold about a customer, asked over their HTTP APIs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

import httpx

from shared.errors import DomainError


class PeerUnavailable(DomainError):
    """A service did not answer: an export without its part would be incomplete (503)."""

    status = 503
    title = "Service unavailable"


async def customer_data(
    urls: Mapping[str, str], customer_id: uuid.UUID, authorization: str
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Each service's records about the customer, asked with the caller's own key."""
    async with httpx.AsyncClient(timeout=10, headers={"Authorization": authorization}) as client:

        async def ask(service: str, url: str) -> dict[str, list[dict[str, Any]]]:
            try:
                answer = await client.get(f"{url}/v1/customers/{customer_id}/data")
            except httpx.HTTPError as exc:
                raise PeerUnavailable(f"{service} did not answer: {type(exc).__name__}") from exc
            if answer.status_code != 200:
                raise PeerUnavailable(f"{service} answered {answer.status_code}")
            records: dict[str, list[dict[str, Any]]] = answer.json()["records"]
            return records

        answers = await asyncio.gather(*(ask(service, url) for service, url in urls.items()))
    return dict(zip(urls, answers, strict=True))
