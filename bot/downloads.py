"""Fetching a file a chat platform points at: only from allowed origins, never more than a cap.

A file URL arrives inside an event that anyone in a workspace or server can shape, and the
request for it may carry a platform token (Slack's `url_private` wants the bot token). So every
URL, and every redirect hop, is checked against an allow-list of exact origins (scheme, host and
port, as aiohttp will connect to them) before anything is sent; redirects are followed by hand,
a few at most, and credentials go only to the origin of the URL they were given for. The body
is streamed and reading stops at the cap, whatever the response says its length is.

Both adapters use `fetch`; they keep only their platform's origins and their own wording for a
`DownloadRefused` (its `reason` says which rule stopped the download).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Iterable, Mapping

import aiohttp
import yarl

DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
CHUNK_BYTES = 64 * 1024


class DownloadRefused(Exception):
    """A download that was stopped, and why. Adapters turn `reason` into words for people:

    - "origin": the URL is not on an allowed origin (nothing was sent);
    - "redirect": an allowed URL redirected to one that is not (the redirect was not followed);
    - "redirects": too many redirects, or a redirect without a usable Location;
    - "status": an answer other than 200 (`status` says which);
    - "too_big": more than `max_bytes`, by Content-Length or by the bytes read;
    - "timeout", "network": the host was slow or unreachable.
    """

    def __init__(self, reason: str, *, url: str = "", status: int | None = None) -> None:
        super().__init__(f"{reason}: {url}" + (f" (HTTP {status})" if status is not None else ""))
        self.reason = reason
        self.url = url
        self.status = status


@dataclass(frozen=True)
class Origin:
    """Where a request really goes: scheme, host (lower case, as connected to) and port."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str | yarl.URL) -> "Origin | None":
        """The origin of an absolute http(s) URL; None for anything else (or credentials in it)."""
        try:
            parsed = url if isinstance(url, yarl.URL) else yarl.URL(url)
            port = parsed.port
        except (ValueError, TypeError):
            return None
        scheme = (parsed.scheme or "").lower()
        host = (parsed.raw_host or "").lower()
        if scheme not in DEFAULT_PORTS or not host or parsed.user is not None or parsed.password is not None:
            return None
        return cls(scheme, host, port if port is not None else DEFAULT_PORTS[scheme])

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = "" if DEFAULT_PORTS[self.scheme] == self.port else f":{self.port}"
        return f"{self.scheme}://{host}{port}"


class AllowedOrigins:
    """An allow-list of exact origins: `https://files.slack.com` allows port 443 only."""

    def __init__(self, origins: Iterable[str | Origin]) -> None:
        allowed = set()
        for origin in origins:
            parsed = origin if isinstance(origin, Origin) else Origin.of(origin)
            if parsed is None:
                raise ValueError(f"not an http(s) origin: {origin!r}")
            allowed.add(parsed)
        self.origins = frozenset(allowed)

    def allows(self, url: str | yarl.URL) -> bool:
        return Origin.of(url) in self.origins

    def __repr__(self) -> str:
        return f"AllowedOrigins({sorted(map(str, self.origins))})"


def origin_of_base(url: str | None) -> list[str]:
    """A configured base URL's origin as a one-item list (none if unset), for allow-lists."""
    origin = Origin.of(url) if url else None
    return [str(origin)] if origin is not None else []


@dataclass(frozen=True)
class Fetched:
    data: bytes
    content_type: str  # lower case, without parameters
    url: str  # where the bytes came from, after any redirects


async def fetch(session: aiohttp.ClientSession, url: str, *, allowed: AllowedOrigins, max_bytes: int,
                headers: Mapping[str, str] | None = None, timeout_s: float = 30.0,
                max_redirects: int = 3) -> Fetched:
    """GET `url` from an allowed origin, at most `max_bytes`; DownloadRefused otherwise.

    `headers` (credentials) are sent only while the request stays on `url`'s own origin; a
    redirect to another allowed origin is followed without them, one to anywhere else not at all.
    The timeout covers every hop and the whole body.
    """
    try:
        current = yarl.URL(url)
    except (ValueError, TypeError):
        raise DownloadRefused("origin", url=str(url)) from None
    if not allowed.allows(current):
        raise DownloadRefused("origin", url=str(current))
    home = Origin.of(current)
    try:
        async with asyncio.timeout(timeout_s):
            for _hop in range(max_redirects + 1):
                sent = dict(headers or {}) if Origin.of(current) == home else {}
                async with session.get(current, headers=sent, allow_redirects=False) as response:
                    if response.status in REDIRECT_STATUSES:
                        current = _next_hop(current, response, allowed)
                        continue
                    if response.status != 200:
                        raise DownloadRefused("status", url=str(current), status=response.status)
                    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
                    data = await read_capped(response, max_bytes)
                    return Fetched(data, content_type, str(current))
            raise DownloadRefused("redirects", url=str(current))
    except (aiohttp.ClientError, ValueError):
        raise DownloadRefused("network", url=str(current)) from None
    except TimeoutError:
        raise DownloadRefused("timeout", url=str(current)) from None


def _next_hop(current: yarl.URL, response: aiohttp.ClientResponse, allowed: AllowedOrigins) -> yarl.URL:
    location = response.headers.get("Location", "")
    try:
        target = current.join(yarl.URL(location)) if location else None
    except (ValueError, TypeError):
        target = None
    if target is None:
        raise DownloadRefused("redirects", url=str(current), status=response.status)
    if not allowed.allows(target):
        raise DownloadRefused("redirect", url=str(target), status=response.status)
    return target


async def read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The response body, refused as "too_big" as soon as it passes `max_bytes` (or says it will)."""
    if response.content_length is not None and response.content_length > max_bytes:
        raise DownloadRefused("too_big", url=str(response.url))
    data = bytearray()
    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
        data += chunk
        if len(data) > max_bytes:
            raise DownloadRefused("too_big", url=str(response.url))
    return bytes(data)
