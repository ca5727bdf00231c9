"""Pictures people attach: checked from what Discord says about them, then downloaded.

Everything a check can see without downloading (content type, size, origin) is checked first, so
a 40 MB video or a file on a stranger's server is refused without a byte fetched. The origin is
scheme, host and port, and `bot.downloads.fetch` checks it again at every redirect hop, so a URL
on Discord's CDN that redirects elsewhere is not followed. What the bytes really are is the
engine's business (`aria_engine.images` sniffs and decodes safely).
"""

from __future__ import annotations

import aiohttp
import discord

from bot.downloads import AllowedOrigins, DownloadRefused, fetch
from bot.texts import ACCEPTED_PICTURES as ACCEPTED
from bot.texts import PICTURE_SUFFIXES as IMAGE_SUFFIXES

IMAGE_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WebP", "image/gif": "GIF", "image/bmp": "BMP"}
DOWNLOAD_TIMEOUT_S = 30.0


class AttachmentRefused(Exception):
    """A file we will not use; the message is fit to show the person who attached it."""


def _megabytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"


def check_attachment(attachment: discord.Attachment, *, max_bytes: int, origins: AllowedOrigins) -> None:
    """Refuse, before downloading, a file that cannot be a picture we read."""
    name = attachment.filename
    content_type = (attachment.content_type or "").split(";")[0].strip().lower()
    if content_type:
        if not content_type.startswith("image/"):
            raise AttachmentRefused(
                f"`{name}` is not a picture (Discord says it is {content_type}). Please attach a {ACCEPTED} image.")
        if content_type not in IMAGE_TYPES:
            kind = content_type.split("/", 1)[1].upper()
            raise AttachmentRefused(f"`{name}` is a {kind} image, which I can't read. Please attach a {ACCEPTED} image.")
    elif not name.lower().endswith(IMAGE_SUFFIXES):
        raise AttachmentRefused(f"`{name}` doesn't look like a picture. Please attach a {ACCEPTED} image.")
    if attachment.size <= 0:
        raise AttachmentRefused(f"`{name}` is empty. Please attach the picture again.")
    if attachment.size > max_bytes:
        raise AttachmentRefused(
            f"`{name}` is {_megabytes(attachment.size)}; pictures up to {_megabytes(max_bytes)} are accepted.")
    if not origins.allows(attachment.url):
        raise AttachmentRefused("That attachment isn't stored on Discord, so I won't fetch it.")


def first_image(attachments: list[discord.Attachment]) -> discord.Attachment | None:
    """The first attachment that claims to be a picture (by type, or by name when untyped)."""
    for attachment in attachments:
        content_type = (attachment.content_type or "").lower()
        if content_type.startswith("image/") or (not content_type and attachment.filename.lower().endswith(IMAGE_SUFFIXES)):
            return attachment
    return None


async def download(session: aiohttp.ClientSession, attachment: discord.Attachment, *, max_bytes: int,
                   origins: AllowedOrigins) -> bytes:
    """The attachment's bytes, never more than `max_bytes` (a size that lied is caught here)."""
    name = attachment.filename
    try:
        return (await fetch(session, attachment.url, allowed=origins, max_bytes=max_bytes,
                            timeout_s=DOWNLOAD_TIMEOUT_S)).data
    except DownloadRefused as refused:
        if refused.reason == "origin":
            raise AttachmentRefused("That attachment isn't stored on Discord, so I won't fetch it.") from None
        if refused.reason in ("redirect", "redirects"):
            raise AttachmentRefused(f"Discord's link to `{name}` sent me somewhere other than Discord, so I "
                                    "didn't follow it. Please upload the picture again.") from None
        if refused.reason == "status":
            raise AttachmentRefused(f"I couldn't fetch `{name}` from Discord (HTTP {refused.status}). "
                                    "Please upload it again.") from None
        if refused.reason == "too_big":
            raise AttachmentRefused(f"`{name}` is bigger than the {_megabytes(max_bytes)} accepted.") from None
        raise AttachmentRefused(f"I couldn't fetch `{name}` from Discord just now. Please try again.") from None
