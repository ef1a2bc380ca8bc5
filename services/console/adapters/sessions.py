"""Signed-in sessions, kept in the console's memory: the browser holds only a random session id
(an HttpOnly cookie); the API key never leaves the server. A restart signs everyone out."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from services.console.domain.access import Grants


@dataclass
class Session:
    key: str
    grants: Grants
    started: float
    last_seen: float
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))


class SessionStore:
    def __init__(self, *, idle_seconds: float, max_seconds: float, capacity: int = 10_000) -> None:
        self.idle_seconds = idle_seconds
        self.max_seconds = max_seconds
        self.capacity = capacity
        self._sessions: OrderedDict[str, Session] = OrderedDict()

    def open(self, key: str, grants: Grants) -> tuple[str, Session]:
        session_id = secrets.token_urlsafe(32)
        now = time.monotonic()
        session = Session(key=key, grants=grants, started=now, last_seen=now)
        self._sessions[session_id] = session
        while len(self._sessions) > self.capacity:  # the least recently used goes first
            self._sessions.popitem(last=False)
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.last_seen > self.idle_seconds or now - session.started > self.max_seconds:
            del self._sessions[session_id]
            return None
        session.last_seen = now
        self._sessions.move_to_end(session_id)
        return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(session_id, None)
