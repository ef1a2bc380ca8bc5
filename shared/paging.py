"""Cursor paging for every list: ``limit``, ``cursor`` in; ``items``, ``next_cursor`` out.

A page is read by its sort key (keyset): ``WHERE (sort, id) < (cursor's sort, cursor's id)
ORDER BY sort DESC, id DESC LIMIT limit + 1``. The extra row tells whether there is a next
page, so no page counts the whole list, and a row inserted meanwhile never shifts a page. The
cursor is opaque to clients: the last row's key, as base64url JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import ColumnElement, and_, or_, tuple_

from shared.errors import InvalidInput

T = TypeVar("T")
Row = TypeVar("Row")

Limit = Annotated[int, Query(ge=1, le=200, description="items per page")]
Cursor = Annotated[
    str | None,
    Query(max_length=400, description="next_cursor of the previous page; omit for the first"),
]

KeyPart = type[datetime] | type[uuid.UUID] | type[float] | type[str] | type[int]


class Page(BaseModel, Generic[T]):
    items: list[T]
    # Pass it as ``cursor`` for the next page; null on the last page.
    next_cursor: str | None = None


# Lists that paged by offset before cursors keep answering their old parameters.
Offset = Annotated[int | None, Query(ge=0, le=1_000_000, description="deprecated: use cursor")]
WithTotal = Annotated[
    bool, Query(description="also count every matching item (one COUNT; costly on big lists)")
]


class CountedPage(Page[T], Generic[T]):
    """A page of a list that paged by offset before: ``total`` only when asked for, ``offset``
    echoed when the deprecated offset was sent."""

    total: int | None = None
    offset: int | None = None


@dataclass(frozen=True)
class PageRequest:
    """What a list route asks of its repository: ``limit + 1`` rows after ``key``."""

    limit: int
    key: tuple[Any, ...] | None = None
    offset: int | None = None
    with_total: bool = False

    @classmethod
    def of(
        cls,
        limit: int,
        cursor: str | None,
        kinds: Sequence[KeyPart],
        *,
        offset: int | None = None,
        with_total: bool = False,
    ) -> PageRequest:
        if cursor is not None and offset is not None:
            raise InvalidInput("send cursor or offset, not both", field="offset")
        key = decode_cursor(cursor, kinds) if cursor else None
        return cls(limit, key, offset, with_total)


def encode_cursor(values: Sequence[Any]) -> str:
    plain = [
        value.isoformat()
        if isinstance(value, datetime)
        else str(value)
        if isinstance(value, uuid.UUID)
        else value
        for value in values
    ]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, kinds: Sequence[KeyPart]) -> tuple[Any, ...]:
    """The key a cursor holds, typed; a 422 naming ``cursor`` when it is not one of ours."""
    try:
        plain = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(plain, list) or len(plain) != len(kinds):
            raise ValueError("wrong shape")
        values = tuple(
            _typed(kind, value) if value is not None else None
            for kind, value in zip(kinds, plain, strict=True)
        )
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidInput("not a cursor this list returned", field="cursor") from exc
    return values


def _typed(kind: KeyPart, value: Any) -> Any:
    if kind is datetime:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("naive time")
        return parsed
    if kind is uuid.UUID:
        return uuid.UUID(value)
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and not isinstance(value, bool):
        return value
    raise ValueError(f"expected {kind.__name__}")


def after(
    columns: Sequence[ColumnElement[Any]],
    key: Sequence[Any],
    *,
    descending: bool | Sequence[bool] = True,
) -> ColumnElement[bool]:
    """Rows that come after ``key`` in the order of ``columns`` (each descending or not; the
    last column must make the order total, e.g. the id)."""
    directions = [descending] * len(columns) if isinstance(descending, bool) else descending
    if len(set(directions)) == 1:  # one row comparison, which a composite index serves
        left, right = tuple_(*columns), tuple_(*key)
        return left < right if directions[0] else left > right
    # Mixed directions: (a after) or (a equal and b after) or ...
    alternatives = []
    for index, (column, value, down) in enumerate(zip(columns, key, directions, strict=True)):
        equal_before = [c == v for c, v in zip(columns[:index], key[:index], strict=True)]
        alternatives.append(and_(*equal_before, column < value if down else column > value))
    return or_(*alternatives)


def page_of(
    rows: Sequence[Row], limit: int, key: Callable[[Row], Sequence[Any]]
) -> tuple[list[Row], str | None]:
    """Given up to ``limit + 1`` rows, the page and the cursor of the next one."""
    items = list(rows[:limit])
    next_cursor = encode_cursor(key(items[-1])) if len(rows) > limit and items else None
    return items, next_cursor
