"""Pictures people share in Slack: pick one, check it, download it with the bot token.

Slack's `url_private` needs the bot token in an Authorization header; without it (or with a
token that may not see the file) Slack answers 200 with its HTML sign-in page. So the response's
content type and first bytes are checked too: a web page is an error, never a picture. Sizes are
checked twice: the file object's `size` before downloading, the bytes while reading them.
"""

from __future__ import annotations

import aiohttp

from aria_engine.images import sniff_format

IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/x-ms-bmp"}
IMAGE_FILETYPES = {"png", "jpg", "jpeg", "gif", "webp", "bmp"}
ACCEPTED = "JPEG, PNG, WebP, GIF or BMP"


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


def check_file(file: dict, max_bytes: int) -> None:
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
    if not (file.get("url_private_download") or file.get("url_private")):
        raise FileRefused("Slack didn't give me a link to that picture; try sharing it again.")


async def download(session: aiohttp.ClientSession, file: dict, *, token: str, max_bytes: int,
                   timeout_s: float = 30.0) -> bytes:
    """The file's bytes, fetched with the bot token; FileRefused with a reason otherwise."""
    url = file.get("url_private_download") or file.get("url_private")
    try:
        async with session.get(url, headers={"Authorization": f"Bearer {token}"},
                               timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
            if response.status != 200:
                raise FileRefused(f"Slack wouldn't hand me that picture (HTTP {response.status}); "
                                  "check that I'm in this channel and try again.")
            content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if content_type == "text/html":
                raise FileRefused("Slack sent me a sign-in page instead of the picture, so I may not "
                                  "see this file. Invite me to the channel, or share the picture again.")
            data = await _read_at_most(response, max_bytes)
    except aiohttp.ClientError as error:
        raise FileRefused(f"I couldn't download that picture ({type(error).__name__}); please try again.") from None
    except TimeoutError:
        raise FileRefused("Downloading that picture took too long; please try again.") from None
    if sniff_format(data) == "html":
        raise FileRefused("Slack sent me a web page instead of the picture; invite me to the channel and "
                          "share it again.")
    return data


async def _read_at_most(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    chunks, total = [], 0
    async for chunk in response.content.iter_chunked(64 * 1024):
        total += len(chunk)
        if total > max_bytes:
            raise FileRefused(f"That picture is larger than the {_mb(max_bytes)} I take. Share a smaller version.")
        chunks.append(chunk)
    return b"".join(chunks)


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB"
