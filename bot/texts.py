"""Text helpers both chat adapters use: errors as sentences, setting values, accepted pictures."""

from __future__ import annotations

from typing import Any, Callable

SORRY = "Sorry, something went wrong on my side. Please try again."
ACCEPTED_PICTURES = "JPEG, PNG, WebP, GIF or BMP"  # what aria_engine.images decodes, in words
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")


def sentence(error: Exception | str) -> str:
    """An error's message as a sentence: capital first letter, full stop. A message that starts
    with a setting's name (`cooldown_s must...`) keeps the name as it is written."""
    text = str(error).strip()
    if not text:
        return SORRY
    if "_" not in text.split(maxsplit=1)[0]:
        text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?", "`")) else text + "."


def setting_value(name: str, value: Any, *, group: Callable[[str], str] | None = None) -> str:
    """A setting's value as people read it. `group` writes a role or user-group id as the
    platform mentions it (Discord `<@&id>`, Slack `<!subteam^id>`); without it ids stay ids."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if name == "allowed_roles":
        return ", ".join(map(group or str, value or ())) or "everyone"
    if name == "moderator_roles":
        return ", ".join(map(group or str, value or ())) or "none"
    if name in ("admin_user_ids", "blocked_user_ids"):
        return ", ".join(f"<@{u}>" for u in value or ()) or "none"
    if name == "age_restricted_channels":
        return ", ".join(f"<#{c}>" for c in value or ()) or "none"
    if name == "role_quotas":
        return ", ".join(f"{(group or str)(r)}: {n or 'unlimited'}" for r, n in (value or {}).items()) or "none"
    if name == "audit_channel":
        return f"<#{value}>" if value else "off"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "none"
    if value is None:
        return "none"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def mention(user_id: str) -> str:
    """A member as both platforms write a mention in text: `<@123>` on Discord, `<@U123>` on Slack."""
    return f"<@{user_id}>"
