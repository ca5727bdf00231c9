"""Checks on what a user hands the CLI (files to read, folders to write, names), so that bad
input ends in one line and exit code 2 before any work is done, never in a traceback."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

MAX_NAME_CHARS = 200  # "<name>.pianoroll.png" must stay under the 255-byte file name limit
_MAX_NAME_BYTES = 240
_NAME = re.compile(r"[\w.+-]+")


class UserError(Exception):
    """Bad input: `aria` prints the message on one line, with no traceback, and exits 2."""


def read_capped(path: Path, limit: int, what: str = "file") -> bytes:
    """The bytes of a regular file of at most `limit` bytes; reads at most limit + 1 bytes.

    Devices, pipes and sockets are refused before reading (`/dev/zero` never ends), and a file
    that grows past the limit while being read is refused too.
    """
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise UserError(f"no such file: {path}") from None
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from None
    if stat.S_ISDIR(info.st_mode):
        raise UserError(f"{path} is a folder, not a {what}")
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"{path} is not a regular file (a device, pipe or socket); save the {what} to a file first")
    if info.st_size > limit:
        raise UserError(_too_big(path, info.st_size, limit, what))
    try:
        with path.open("rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):  # swapped since the stat
                raise UserError(f"{path} is not a regular file; save the {what} to a file first")
            data = file.read(limit + 1)
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror or error}") from None
    if len(data) > limit:
        raise UserError(_too_big(path, len(data), limit, what))
    return data


def _too_big(path: Path, size: int, limit: int, what: str) -> str:
    return f"{path} is {size / 2**20:.1f} MB; a {what} can be at most {limit / 2**20:.0f} MB"


def writable_folder(path: Path, option: str = "--out", *, create: bool = True) -> Path:
    """`path` as a folder this process can write into, else UserError. With `create` it is
    made if missing; without, only checked (its nearest existing parent must be a writable
    folder), so a run that fails later leaves nothing behind."""
    if not create:
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if existing.exists() and not existing.is_dir():
            where = "is a file" if existing == path else f"is under {existing}, a file"
            raise UserError(f"{option} {path} {where}, not a folder")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise UserError(f"{option} {path}: no permission to write there")
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UserError(f"{option} {path} is a file, not a folder") from None
    except NotADirectoryError:
        raise UserError(f"{option} {path}: part of that path is a file, not a folder") from None
    except OSError as error:
        raise UserError(f"{option} {path}: cannot make that folder ({error.strerror or error})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: no permission to write there")
    return path


def check_name(name: str, option: str = "--name") -> str:
    """A base name for output files: letters, digits, '.', '_', '+', '-'; not too long."""
    if not _NAME.fullmatch(name) or name.startswith("."):
        raise UserError(f"unsuitable file name {name[:40]!r}: use letters, digits, '.', '_', '+' or '-'")
    if len(name) > MAX_NAME_CHARS or len(name.encode()) > _MAX_NAME_BYTES:
        raise UserError(f"{option} is too long ({len(name)} characters); use at most {MAX_NAME_CHARS}")
    return name


def safe_name(stem: str, fallback: str = "aria") -> str:
    """A file's stem made fit for `check_name` (a picture called "my photo.jpg" is fine input)."""
    name = re.sub(r"[^\w.+-]", "_", stem).lstrip(".")
    while len(name) > MAX_NAME_CHARS or len(name.encode()) > _MAX_NAME_BYTES:
        name = name[:-1]
    return name or fallback
