"""The console's one way to Kefu's data: an httpx client of the other services' HTTP APIs.

Every call carries the signed-in key, so each service enforces its own scopes. Lists are read
tolerantly: a page may come with ``total`` and ``offset`` (offset paging) or with a
``next_cursor`` (cursor paging); the console gets an opaque ``next`` either way.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from services.console.domain.errors import Forbidden, SignedOut, Unavailable
from services.console.domain.models import (
    Followup,
    Issue,
    IssueSatisfaction,
    Page,
    Proposal,
    StoredAnalysis,
    Summary,
    TopNeeds,
)
from shared.errors import Conflict, DomainError, InvalidInput, NotFound

SERVICES = ("intake", "need_analyzer", "feedback", "improvement")
M = TypeVar("M", bound=BaseModel)
Params = Mapping[str, str | int | bool | None]


def _problem_detail(response: httpx.Response) -> tuple[str, str | None]:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200], None
    if not isinstance(body, dict):
        return str(body)[:200], None
    return str(body.get("detail") or body.get("title") or response.status_code), body.get("field")


def _next_page(body: Mapping[str, Any], offset: int) -> str | None:
    cursor = body.get("next_cursor")
    if isinstance(cursor, str) and cursor:
        return f"c:{cursor}"
    total, items = body.get("total"), body.get("items") or []
    if isinstance(total, int) and "next_cursor" not in body and offset + len(items) < total:
        return f"o:{offset + len(items)}"
    return None


def _page_params(page: str | None) -> tuple[dict[str, str | int], int]:
    """The query of an opaque page token, and the offset it stands for (0 for a cursor)."""
    if page and page.startswith("c:"):
        return {"cursor": page[2:]}, 0
    if page and page.startswith("o:") and page[2:].isdigit():
        offset = int(page[2:])
        return {"offset": offset}, offset
    return {}, 0


class KefuServices:
    def __init__(self, urls: Mapping[str, str], http: httpx.AsyncClient) -> None:
        self.urls = dict(urls)
        self.http = http

    async def _call(
        self,
        service: str,
        method: str,
        path: str,
        key: str,
        *,
        params: Params | None = None,
        json: Any = None,
    ) -> Any:
        query = {name: value for name, value in (params or {}).items() if value is not None}
        try:
            response = await self.http.request(
                method,
                f"{self.urls[service]}{path}",
                params=query,
                json=json,
                headers={"Authorization": f"Bearer {key}"},
            )
        except httpx.HTTPError as exc:
            raise Unavailable(service) from exc
        if response.status_code < 300:
            return response.json()
        detail, field = _problem_detail(response)
        errors: dict[int, type[DomainError]] = {
            403: Forbidden,
            404: NotFound,
            409: Conflict,
            422: InvalidInput,
        }
        if response.status_code == 401:
            raise SignedOut(detail)
        if response.status_code in errors:
            raise errors[response.status_code](detail, field=field)
        raise Unavailable(service)

    async def _get(
        self, model: type[M], service: str, path: str, key: str, params: Params | None = None
    ) -> M:
        return model.model_validate(await self._call(service, "GET", path, key, params=params))

    # ---------------------------------------------------------------- keys and health

    async def scopes(self, key: str) -> tuple[str | None, frozenset[str]]:
        """The key's name and the union of the scopes the services grant it; (None, {}) when
        no service knows it. Unavailable only when no service answered at all."""

        async def one(service: str) -> tuple[str | None, list[str]] | None:
            try:
                body = await self._call(service, "GET", "/v1/me", key)
            except SignedOut:
                return None, []
            except Unavailable:
                return None
            return str(body["name"]), list(body["scopes"])

        answers = await asyncio.gather(*(one(service) for service in SERVICES))
        answered = [answer for answer in answers if answer is not None]
        if not answered:
            raise Unavailable(", ".join(SERVICES))
        names = [name for name, _ in answered if name]
        return (names[0] if names else None), frozenset(s for _, ss in answered for s in ss)

    async def healthy(self) -> dict[str, bool]:
        async def one(service: str) -> bool:
            try:
                response = await self.http.get(f"{self.urls[service]}/healthz", timeout=1.0)
            except httpx.HTTPError:
                return False
            return response.status_code == 200

        results = await asyncio.gather(*(one(service) for service in SERVICES))
        return dict(zip(SERVICES, results, strict=True))

    # ---------------------------------------------------------------- reads

    async def summary(
        self,
        key: str,
        *,
        since: datetime,
        until: datetime,
        group_by: str = "none",
        tz: str = "UTC",
        channel: str | None = None,
        intent: str | None = None,
    ) -> Summary:
        params: Params = {
            "since": since.isoformat(),
            "until": until.isoformat(),
            "group_by": group_by,
            "tz": tz,
            "channel": channel,
            "intent": intent,
        }
        return await self._get(Summary, "feedback", "/v1/satisfaction/summary", key, params)

    async def top_needs(
        self, key: str, *, since: datetime, until: datetime, limit: int, examples: int
    ) -> TopNeeds:
        params: Params = {
            "since": since.isoformat(),
            "until": until.isoformat(),
            "limit": limit,
            "examples": examples,
            "previous": "true",
        }
        return await self._get(TopNeeds, "need_analyzer", "/v1/needs/top", key, params)

    async def _page(
        self, model: type[M], service: str, path: str, key: str, params: Params, page: str | None
    ) -> Page[M]:
        paging, offset = _page_params(page)
        body = await self._call(service, "GET", path, key, params={**params, **paging})
        return Page[model](  # type: ignore[valid-type]
            items=[model.model_validate(item) for item in body.get("items", [])],
            total=body.get("total"),
            next=_next_page(body, offset),
        )

    async def followups(
        self,
        key: str,
        *,
        status: str | None = None,
        channel: str | None = None,
        intent: str | None = None,
        issue_id: uuid.UUID | None = None,
        created_before: datetime | None = None,
        limit: int = 50,
        page: str | None = None,
    ) -> Page[Followup]:
        params: Params = {
            "status": status,
            "channel": channel,
            "intent": intent,
            "issue_id": str(issue_id) if issue_id else None,
            "created_before": created_before.isoformat() if created_before else None,
            "limit": limit,
            "total": "true",  # the queue's size is worth its one count
        }
        return await self._page(Followup, "improvement", "/v1/followups", key, params, page)

    async def proposals(
        self, key: str, *, status: str | None = None, limit: int = 50, page: str | None = None
    ) -> Page[Proposal]:
        params: Params = {"status": status, "limit": limit}
        return await self._page(Proposal, "improvement", "/v1/improvements", key, params, page)

    async def issue(self, key: str, issue_id: uuid.UUID) -> Issue:
        return await self._get(Issue, "intake", f"/v1/issues/{issue_id}", key)

    async def analysis(self, key: str, issue_id: uuid.UUID) -> StoredAnalysis | None:
        try:
            return await self._get(StoredAnalysis, "need_analyzer", f"/v1/analyses/{issue_id}", key)
        except NotFound:
            return None

    async def issue_satisfaction(self, key: str, issue_id: uuid.UUID) -> IssueSatisfaction:
        path = f"/v1/satisfaction/issues/{issue_id}"
        return await self._get(IssueSatisfaction, "feedback", path, key)

    # ---------------------------------------------------------------- moves

    async def _move(self, model: type[M], path: str, key: str, status: str, by: str) -> M:
        body = {"status": status, "by": by}
        return model.model_validate(await self._call("improvement", "PATCH", path, key, json=body))

    async def move_followup(
        self, key: str, followup_id: uuid.UUID, *, status: str, by: str
    ) -> Followup:
        return await self._move(Followup, f"/v1/followups/{followup_id}", key, status, by)

    async def move_proposal(
        self, key: str, proposal_id: uuid.UUID, *, status: str, by: str
    ) -> Proposal:
        return await self._move(Proposal, f"/v1/improvements/{proposal_id}", key, status, by)
