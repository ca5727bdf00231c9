"""bot.downloads, the mechanism both adapters fetch files with: exact origins, redirects checked
hop by hop, credentials only on their own origin, a capped read. Over loopback, real aiohttp."""

from __future__ import annotations

import pytest

aiohttp = pytest.importorskip("aiohttp")

from bot.downloads import AllowedOrigins, DownloadRefused, Origin, fetch  # noqa: E402
from tests.doubles.elsewhere import Elsewhere  # noqa: E402

pytestmark = pytest.mark.timeout(60)


def test_origins_are_scheme_host_and_port():
    allowed = AllowedOrigins(["https://files.slack.com", "http://127.0.0.1:8080"])
    assert allowed.allows("https://files.slack.com/files-pri/T-F/a.png")
    assert allowed.allows("HTTPS://Files.Slack.COM:443/a.png")
    assert allowed.allows("http://127.0.0.1:8080/a")
    for url in ("http://files.slack.com/a", "https://files.slack.com:8443/a", "https://files.slack.com.evil.io/a",
                "https://evil.io/files.slack.com/a", "http://127.0.0.1:8081/a", "http://localhost:8080/a",
                "https://u:p@files.slack.com/a", "file:///etc/passwd", "files.slack.com/a", "", "http://[::1/"):
        assert not allowed.allows(url), url
    assert str(Origin.of("http://127.0.0.1:8080/x")) == "http://127.0.0.1:8080"


async def test_credentials_stay_on_their_origin_and_every_hop_is_checked():
    async with Elsewhere(body=b"picture") as first, Elsewhere(body=b"moved") as second, Elsewhere() as third:
        allowed = AllowedOrigins([first.url(""), second.url("")])
        first.redirects["/a"] = first.url("b")  # same origin: the credentials go along
        first.redirects["/b"] = second.url("c")  # another allowed origin: followed, without them
        second.redirects["/c"] = third.url("d")  # not allowed: not followed
        async with aiohttp.ClientSession() as session:
            with pytest.raises(DownloadRefused) as refused:
                await fetch(session, first.url("a"), allowed=allowed, max_bytes=100,
                            headers={"Authorization": "Bearer secret"})
            assert refused.value.reason == "redirect" and Origin.of(refused.value.url) == Origin.of(third.url())
            assert [r["headers"].get("Authorization") for r in first.requests] == ["Bearer secret"] * 2
            assert [r["headers"].get("Authorization") for r in second.requests] == [None]
            assert third.requests == []

            second.redirects.clear()
            fetched = await fetch(session, first.url("a"), allowed=allowed, max_bytes=100,
                                  headers={"Authorization": "Bearer secret"})
            assert fetched.data == b"moved" and fetched.url == second.url("c")
            with pytest.raises(DownloadRefused) as refused:
                await fetch(session, first.url("a"), allowed=allowed, max_bytes=100, max_redirects=1)
            assert refused.value.reason == "redirects"
            with pytest.raises(DownloadRefused) as refused:
                await fetch(session, third.url("x"), allowed=allowed, max_bytes=100)
            assert refused.value.reason == "origin" and len(third.requests) == 0


async def test_reads_stop_at_the_cap():
    async with Elsewhere(body=b"x" * 10_000) as host:
        async with aiohttp.ClientSession() as session:
            allowed = AllowedOrigins([host.url("")])
            with pytest.raises(DownloadRefused) as refused:
                await fetch(session, host.url("big"), allowed=allowed, max_bytes=9_999)
            assert refused.value.reason == "too_big"
            assert len((await fetch(session, host.url("big"), allowed=allowed, max_bytes=10_000)).data) == 10_000
