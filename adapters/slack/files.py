"""Pictures people share in Slack: pick one, check it, download it with the bot token.

Slack's `url_private` needs the bot token in an Authorization header; without it (or with a
token that may not see the file) Slack answers 200 with its HTML sign-in page. So the response's
content type and first bytes are checked too: a web page is an error, never a picture. Sizes are
checked twice: the file object's `size` before downloading, the bytes while reading them.

The token goes only to Slack's file hosts (and the origin of `ARIA_SLACK_API_BASE`, another
Slack deployment or the tests' double), matched by scheme, host and port: the URL is checked
before anything is admitted, and `bot.downloads.fetch` checks it again with every redirect hop.
"""

from __future__ import annotations

import aiohttp

from aria_engine.images import sniff_format
from bot.downloads import AllowedOrigins, DownloadRefused, Origin, fetch, origin_of_base
from bot.texts import ACCEPTED_PICTURES as ACCEPTED
from bot.texts import PICTURE_SUFFIXES

IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/x-ms-bmp"}
IMAGE_FILETYPES = {suffix.lstrip(".") for suffix in PICTURE_SUFFIXES}
# Where Slack serves url_private(_download): files.slack.com (older file objects: slack.com/files-pri).
SLACK_FILE_ORIGINS = ("https://files.slack.com", "https://slack.com")


def file_origins(api_base: str | None = None) -> AllowedOrigins:
    """The origins the bot token may be sent to for a file: Slack's, and the configured API base's."""
    return AllowedOrigins([*SLACK_FILE_ORIGINS, *origin_of_base(api_base)])


def file_url(file: dict) -> str:
    return file.get("url_private_download") or file.get("url_private") or ""


class FileRefused(Exception):
    """A file we will not use; the message is fit to show the person who shared it."""


def is_image(file: dict) -> bool:
    return file.get("mimetype", "") in IMAGE_TYPES or file.get("filetype", "") in IMAGE_FILETYPES


def first_image(files: list[dict] | None) -> dict | None:
    return next((f for f in files or () if is_image(f)), None)


def no_image_message(files: list[dict] | None, where: str = "That message") -> str:
    if not files:
        return f"{where} has no picture. Share a {ACCEPTED} image and mention me in the same message."
    names = ", ".join(f"`{f.get('name', 'a file')}`" for f in files[:3])
    return f"{where} has {names}, but no picture I can read: I take {ACCEPTED} images."


def check_file(file: dict, max_bytes: int, allowed: AllowedOrigins) -> None:
    """Refuse before downloading: not a picture, too big, or not something we can fetch."""
    if file.get("mode") == "tombstone" or file.get("file_access") == "file_not_found":
        raise FileRefused("That picture was deleted, so I can't read it.")
    if file.get("is_external"):
        raise FileRefused("That picture lives outside Slack (an external file); upload it to Slack itself.")
    if not is_image(file):
        raise FileRefused(f"`{file.get('name', 'That file')}` isn't a {ACCEPTED} picture.")
    size = int(file.get("size") or 0)
    if size > max_bytes:
        raise FileRefused(f"That picture is {_mb(size)}; the most I take is {_mb(max_bytes)}. "
                          "Share a smaller version.")
    if not file_url(file):
        raise FileRefused("Slack didn't give me a link to that picture; try sharing it again.")
    if not allowed.allows(file_url(file)):
        raise FileRefused(_elsewhere(file_url(file)))


def _elsewhere(url: str) -> str:
    origin = Origin.of(url)
    where = f" ({origin})" if origin else ""
    return (f"The link to that picture points outside Slack's file servers{where}, so I won't fetch it: "
            "I send my Slack credentials only to Slack. Upload the picture to Slack and try again.")


async def download(session: aiohttp.ClientSession, file: dict, *, token: str, max_bytes: int,
                   allowed: AllowedOrigins, timeout_s: float = 30.0) -> bytes:
    """The file's bytes, fetched with the bot token; FileRefused with a reason otherwise."""
    try:
        fetched = await fetch(session, file_url(file), allowed=allowed, max_bytes=max_bytes,
                              headers={"Authorization": f"Bearer {token}"}, timeout_s=timeout_s)
    except DownloadRefused as refused:
        raise FileRefused(_refusal(refused, max_bytes)) from None
    if fetched.content_type == "text/html" or sniff_format(fetched.data) == "html":
        raise FileRefused("Slack sent me a sign-in page instead of the picture, so I may not "
                          "see this file. Invite me to the channel, or share the picture again.")
    return fetched.data


def _refusal(refused: DownloadRefused, max_bytes: int) -> str:
    if refused.reason == "origin":
        return _elsewhere(refused.url)
    if refused.reason == "redirect":
        origin = Origin.of(refused.url)
        return (f"Slack's link to that picture sent me on to another site ({origin or 'somewhere else'}), "
                "so I stopped there and sent nothing. Share the picture again.")
    if refused.reason == "status":
        return (f"Slack wouldn't hand me that picture (HTTP {refused.status}); "
                "check that I'm in this channel and try again.")
    if refused.reason == "too_big":
        return f"That picture is larger than the {_mb(max_bytes)} I take. Share a smaller version."
    if refused.reason == "timeout":
        return "Downloading that picture took too long; please try again."
    if refused.reason == "redirects":
        return "Slack's link to that picture kept redirecting me, so I gave up. Share the picture again."
    return "I couldn't download that picture just now; please try again."


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"
