"""ASGI helpers the HTTP middlewares share."""

from __future__ import annotations

from starlette.types import Message, Send


class ResponseStatus:
    """A ``send`` that remembers the status the app answered with: 500 until a response
    starts, which is what the client sees when the app fails before answering."""

    def __init__(self, send: Send) -> None:
        self.code = 500
        self._send = send

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.code = message["status"]
        await self._send(message)
