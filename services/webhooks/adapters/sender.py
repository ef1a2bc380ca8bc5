"""The call to a receiver: Standard Webhooks headers and signature, the CloudEvent as the body,
time-outs on everything, and the address checked against server-side request forgery."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from standardwebhooks.webhooks import Webhook

from services.webhooks.domain.attempts import Attempt
from services.webhooks.domain.targets import check_url, refused_address
from shared.errors import InvalidInput

RESPONSE_KEPT = 1000  # characters of the receiver's answer kept in the delivery log
USER_AGENT = "Kefu-Webhooks/1"


class TargetRefused(Exception):
    """The URL resolves to an address the service may not call."""


async def resolve(host: str, port: int, *, allow_private: bool) -> str:
    """One address of ``host`` that may be called (every address is checked: a name that
    resolves to a public and a private address is refused)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=5
        )
    except (OSError, TimeoutError) as exc:
        raise TargetRefused(f"{host} does not resolve: {exc}") from exc
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise TargetRefused(f"{host} does not resolve")
    if not allow_private:
        for address in addresses:
            reason = refused_address(address)
            if reason is not None:
                raise TargetRefused(f"{host}: {reason} (set KEFU_WEBHOOKS_ALLOW_PRIVATE_TARGETS)")
    return addresses[0]


async def check_target(url: str, *, allow_private: bool) -> None:
    """For the API: a 422 naming ``url`` when the target cannot be called."""
    _, host, port = check_url(url)
    try:
        await resolve(host, port, allow_private=allow_private)
    except TargetRefused as exc:
        raise InvalidInput(str(exc), field="url") from exc


@dataclass(frozen=True)
class Sent:
    attempt: Attempt
    response: str | None
    duration_ms: float
    at: datetime


class Sender:
    def __init__(
        self, *, connect_timeout: float, timeout: float, allow_private: bool, connections: int
    ) -> None:
        self.allow_private = allow_private
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            follow_redirects=False,  # a redirect could lead anywhere, past the address check
            headers={"user-agent": USER_AGENT},
        )
        self.timeout = timeout

    async def close(self) -> None:
        await self.client.aclose()

    async def send(self, url: str, secret: str, message_id: str, body: str) -> Sent:
        at = datetime.now(UTC)
        started = time.perf_counter()
        try:
            # The whole call is bounded, a receiver that trickles its answer included.
            attempt, response = await asyncio.wait_for(
                self._call(url, secret, message_id, body, at), self.timeout + 1
            )
        except TargetRefused as exc:
            attempt, response = Attempt(None, str(exc)), None
        except TimeoutError:
            attempt, response = Attempt(None, f"no answer within {self.timeout}s"), None
        except httpx.HTTPError as exc:
            attempt, response = Attempt(None, f"{type(exc).__name__}: {exc}"[:500]), None
        return Sent(attempt, response, (time.perf_counter() - started) * 1000, at)

    async def _call(
        self, url: str, secret: str, message_id: str, body: str, at: datetime
    ) -> tuple[Attempt, str | None]:
        scheme, host, port = check_url(url)
        address = await resolve(host, port, allow_private=self.allow_private)
        headers = {
            "content-type": "application/cloudevents+json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret).sign(message_id, at, body),
        }
        if scheme == "https":
            # TLS proves the server holds a certificate for the name, so a name re-pointed at
            # an internal address after the check gets no request; pooled connections stay
            # keyed by name (two names on one address never share a verified connection).
            request = self.client.build_request("POST", url, content=body.encode(), headers=headers)
        else:
            # Plain HTTP proves nothing: connect to the address that was checked, not to a
            # second lookup's answer, which a rebinding name could point elsewhere.
            request = self.client.build_request(
                "POST",
                httpx.URL(url).copy_with(host=address),
                content=body.encode(),
                headers={**headers, "host": _host_header(url)},
            )
        response = await self.client.send(request, stream=True)
        try:
            kept = b""
            async for chunk in response.aiter_bytes():
                kept += chunk
                if len(kept) >= RESPONSE_KEPT:
                    break
        finally:
            await response.aclose()
        text = kept[:RESPONSE_KEPT].decode(errors="replace") or None
        return Attempt(response.status_code), text


def _host_header(url: str) -> str:
    parsed = httpx.URL(url)
    default = 443 if parsed.scheme == "https" else 80
    host = parsed.host if ":" not in parsed.host else f"[{parsed.host}]"
    return host if parsed.port in (None, default) else f"{host}:{parsed.port}"
