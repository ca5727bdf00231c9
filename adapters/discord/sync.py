"""Command sync only when the command set changed: Discord limits command creates per day.

The hash of what would be sent is kept in the data directory's store (meta table), per
application and scope (global, or the test guild). A fresh data directory has no hash, so it
always syncs.
"""

from __future__ import annotations

import hashlib
import json
import logging

import discord
from discord import app_commands

log = logging.getLogger(__name__)


def command_payload(tree: app_commands.CommandTree, guild: discord.abc.Snowflake | None) -> list[dict]:
    """What `tree.sync(guild=...)` would send, in a stable order."""
    payload = [command.to_dict(tree) for command in tree.get_commands(guild=guild)]
    return sorted(payload, key=lambda c: (c.get("type", 1), c["name"]))


def command_hash(payload: list[dict]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _meta_key(application_id: int | None, guild: discord.abc.Snowflake | None) -> str:
    return f"discord.commands.{application_id}.{guild.id if guild else 'global'}"


async def sync_if_changed(tree: app_commands.CommandTree, store, *, application_id: int | None,
                          test_guild: int | None = None) -> bool:
    """Sync the tree (to `test_guild` only, if given) unless the stored hash matches; True if synced.

    A sync Discord refuses is logged, not raised: the bot still starts (a refused sync must not
    take the whole bot down), and since no hash is stored the next start tries again."""
    guild = discord.Object(id=test_guild) if test_guild else None
    if guild is not None:
        tree.copy_global_to(guild=guild)
    digest = command_hash(command_payload(tree, guild))
    key = _meta_key(application_id, guild)
    if store.get_meta(key) == digest:
        log.info("application commands unchanged (%s); not syncing", digest[:12])
        return False
    try:
        synced = await tree.sync(guild=guild)
    except discord.HTTPException as error:  # e.g. a test guild the bot is not in, or rate limits
        log.error("could not sync application commands (%s %s: %s); running with the commands Discord "
                  "already has, and trying again at the next start", error.status, error.code, error.text)
        return False
    store.set_meta(key, digest)
    log.info("synced %d application commands %s", len(synced), f"to guild {test_guild}" if guild else "globally")
    return True
