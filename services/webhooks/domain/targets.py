"""Where a webhook may point: http(s) only, and not at the service's own network
(server-side request forgery) unless the operator allows private targets."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from shared.errors import InvalidInput

MAX_URL_LENGTH = 2000


def check_url(url: str) -> tuple[str, str, int]:
    """The URL's scheme, host and port; a 422 naming ``url`` when it cannot be a target."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidInput(f"at most {MAX_URL_LENGTH} characters", field="url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"not a URL: {exc}", field="url") from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidInput("only http and https targets are allowed", field="url")
    if not parts.hostname:
        raise InvalidInput("the URL names no host", field="url")
    if parts.username or parts.password:
        raise InvalidInput("credentials in the URL are not allowed", field="url")
    if parts.fragment:
        raise InvalidInput("a fragment is never sent; remove it", field="url")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def refused_address(address: str) -> str | None:
    """Why a resolved address may not be called (None: it may): private, loopback,
    link-local (cloud metadata lives there), multicast, reserved or unspecified."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind, flagged in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("private", ip.is_private),
        ("multicast", ip.is_multicast),
        ("reserved", ip.is_reserved),
        ("unspecified", ip.is_unspecified),
    ):
        if flagged:
            return f"{address} is a {kind} address"
    if not ip.is_global:  # shared address space (100.64/10) and the like
        return f"{address} is not a public address"
    return None
