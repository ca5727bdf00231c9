"""How ARIA's messages look in Slack: Block Kit for status, results, the modal and help.

Buttons carry the result id (a button's `value`, the select's `block_id`), so a click needs
nothing but the store to act on, and keeps working after a restart.
"""

from __future__ import annotations

import json
from typing import Any

from aria_engine.option_schema import MODE_LABELS, NUMBER, number, typed_forms
from aria_engine.options import MODES, GenerationOptions
from adapters.slack.groups import mention as group_mention
from bot.reply import Reply
from bot.texts import ACCEPTED_PICTURES, setting_value

COMPOSE_VIEW = "aria_compose"  # the modal's callback_id
SHORTCUT = "compose_music"  # the message shortcut's callback_id
VARIATION, ANOTHER_MODE, CANCEL = "aria_variation", "aria_another_mode", "aria_cancel"
EXTEND, EXTEND_VIEW = "aria_extend", "aria_extend_form"  # the button under a piece, and its form's callback_id

# Modal inputs. Block ids name the field errors go to; a number's block id is its typed name.
PICTURE, MODE, PRIVATE = "picture", "mode", "private"
SEED = "seed"
ONLY_ME = {"text": {"type": "plain_text", "text": "Only me (in my direct messages with ARIA)", "emoji": True},
           "value": "private"}
NUMBER_INPUTS = {
    # block id: (options field, label, hint, decimals allowed, low, high)
    option.typed_name: (option.field, option.label, f"{option.help}.", option.kind is float, *option.chat_bounds)
    for option in (NUMBER[f] for f in ("duration_s", "length", "seed", "note_temperature", "rest_temperature",
                                       "top_p", "min_instruments"))
}


def _text(text: str, kind: str = "mrkdwn") -> dict:
    return {"type": kind, "text": text} if kind == "mrkdwn" else {"type": kind, "text": text, "emoji": True}


def _clip(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def section(text: str) -> dict:
    return {"type": "section", "text": _text(_clip(text, 3000))}


def context(text: str) -> dict:
    return {"type": "context", "elements": [_text(_clip(text, 3000))]}


def button(label: str, action_id: str, value: str, style: str | None = None) -> dict:
    element = {"type": "button", "text": _text(label, "plain_text"), "action_id": action_id, "value": value}
    if style:
        element["style"] = style
    return element


def mode_select(result_id: str, current: str | None, allowed: list[str] | None = None) -> dict:
    choices = [m for m in (allowed or MODES) if m != current] or list(MODES)
    return {"type": "static_select", "action_id": ANOTHER_MODE,
            "placeholder": _text("Another mode", "plain_text"),
            "options": [{"text": _text(MODE_LABELS[m], "plain_text"), "value": m} for m in choices]}


# -- messages --------------------------------------------------------------------------------------


def status_blocks(text: str, result_id: str | None, *, requester: str | None = None) -> list[dict]:
    """The status message while a piece is queued or being made: the line and a Cancel button."""
    blocks = [section(f":hourglass_flowing_sand: {text}")]
    if requester:
        blocks.append(context(f"for <@{requester}>"))
    if result_id:
        blocks.append({"type": "actions", "block_id": f"status:{result_id}",
                       "elements": [button("Cancel", CANCEL, result_id)]})
    return blocks


def result_blocks(reply: Reply, result_id: str, *, requester: str, mode: str | None,
                  chart_file_id: str | None) -> list[dict]:
    """The readout, the emotion chart and the buttons; the files are in the thread below.
    Another mode only where the composer has modes (`reply.offers_modes`)."""
    fields = [_text(f"*made by*\n{reply.backend}"), _text(f"*seed*\n{reply.seed}")]
    fields += [_text(f"*{name}*\n{_clip(value, 1900)}") for name, value in reply.details if name != "seed"]
    blocks: list[dict] = [
        {"type": "header", "text": _text(_clip(f"♪ {reply.headline}", 150), "plain_text")},
        section(f"*{reply.valence_line}*\n*{reply.arousal_line}*"),
        {"type": "section", "fields": fields[:10]},
    ]
    if chart_file_id:
        blocks.append({"type": "image", "slack_file": {"id": chart_file_id},
                       "alt_text": f"Emotion chart: {reply.valence_line}, {reply.arousal_line}",
                       "title": _text("Where the piece sits on the valence-arousal plane", "plain_text")})
    notes = "\n".join(f"• {n}" for n in reply.notes)
    blocks.append(context(f"for <@{requester}> · the MIDI and the audio are in the thread"
                          + (f"\n{notes}" if notes else "")))
    elements = [button("Variation", VARIATION, result_id, "primary"), button("Extend", EXTEND, result_id)]
    if reply.offers_modes:
        elements.append(mode_select(result_id, mode))
    blocks.append({"type": "actions", "block_id": f"result:{result_id}", "elements": elements})
    return blocks


def without_images(blocks: list[dict]) -> list[dict]:
    return [b for b in blocks if b["type"] != "image"]


def result_id_of(action: dict) -> str | None:
    """A click's result id: the button's value, or the id after "result:" in the select's block."""
    if action.get("value"):
        return action["value"]
    block_id = action.get("block_id", "")
    return block_id.split(":", 1)[1] if ":" in block_id else None


# -- the modal --------------------------------------------------------------------------------------


def compose_modal(channel_id: str, options: GenerationOptions, explicit: frozenset[str],
                  allowed_modes: list[str], *, private: bool = False) -> dict:
    """`/aria`: a picture, the mode, the settings (pre-filled with what was typed) and who sees
    the result (ticked when `private` was typed or results are private by default here)."""
    modes = [m for m in MODES if m in allowed_modes] or list(MODES)
    mode_options = [{"text": _text(MODE_LABELS[m], "plain_text"), "value": m} for m in modes]
    initial_mode = next((o for o in mode_options if o["value"] == options.mode), mode_options[0])
    blocks: list[dict] = [
        {"type": "input", "block_id": PICTURE, "label": _text("Picture", "plain_text"),
         "hint": _text(f"A {ACCEPTED_PICTURES} image. I read its mood and compose music for it.",
                       "plain_text"),
         "element": {"type": "file_input", "action_id": PICTURE, "max_files": 1,
                     "filetypes": ["png", "jpg", "jpeg", "gif", "webp", "bmp"]}},
        {"type": "input", "block_id": MODE, "label": _text("Mode", "plain_text"),
         "hint": _text("How the mood steers the model (transformer composer).", "plain_text"),
         "element": {"type": "static_select", "action_id": MODE, "options": mode_options,
                     "initial_option": initial_mode}},
    ]
    for block_id, (name, label, hint, decimals, low, high) in NUMBER_INPUTS.items():
        element: dict[str, Any] = {"type": "number_input", "action_id": block_id,
                                   "is_decimal_allowed": decimals, "min_value": _num(low), "max_value": _num(high)}
        value = getattr(options, name)
        if value is not None and (block_id != SEED or name in explicit):
            element["initial_value"] = _num(value)
        blocks.append({"type": "input", "block_id": block_id, "optional": True, "label": _text(label, "plain_text"),
                       "hint": _text(hint, "plain_text"), "element": element})
    only_me: dict[str, Any] = {"type": "checkboxes", "action_id": PRIVATE, "options": [ONLY_ME]}
    if private:
        only_me["initial_options"] = [ONLY_ME]
    blocks.append({"type": "input", "block_id": PRIVATE, "optional": True, "label": _text("Who sees it", "plain_text"),
                   "hint": _text("Unticked, the result is posted in the channel.", "plain_text"), "element": only_me})
    return {"type": "modal", "callback_id": COMPOSE_VIEW, "title": _text("Compose music", "plain_text"),
            "submit": _text("Compose", "plain_text"), "close": _text("Cancel", "plain_text"),
            "private_metadata": json.dumps({"channel": channel_id, "explicit": sorted(explicit)}),
            "blocks": blocks}


def notice_modal(title: str, text: str) -> dict:
    """What a submitted modal turns into when the request is refused: the reason, privately."""
    return {"type": "modal", "title": _text(_clip(title, 24), "plain_text"), "close": _text("Close", "plain_text"),
            "blocks": [section(text)]}


def read_modal(view: dict) -> tuple[dict | None, dict[str, Any], dict[str, str]]:
    """(the picture's file object, GenerationOptions fields given, errors by block id)."""
    values = view.get("state", {}).get("values", {})

    def entry(block_id: str) -> dict:
        return values.get(block_id, {}).get(block_id, {}) or {}

    files = entry(PICTURE).get("files") or []
    chosen: dict[str, Any] = {}
    errors: dict[str, str] = {}
    mode = (entry(MODE).get("selected_option") or {}).get("value")
    if mode:
        chosen["mode"] = mode
    for block_id, (name, label, _hint, decimals, low, high) in NUMBER_INPUTS.items():
        raw = entry(block_id).get("value")
        if raw in (None, ""):
            continue
        try:
            number = float(raw)
        except ValueError:
            errors[block_id] = f"{label} must be a number."
            continue
        if not decimals and not number.is_integer():
            errors[block_id] = f"{label} must be a whole number."
        elif not low <= number <= high:
            errors[block_id] = f"{label} must be between {_num(low)} and {_num(high)}."
        else:
            chosen[name] = number if decimals else int(number)
    if not files:
        errors[PICTURE] = "Add a picture to compose from."
    return (files[0] if files else None), chosen, errors


VALENCE, AROUSAL, CAPTION = "valence", "arousal", "caption"
PICTURE_TYPES = ["png", "jpg", "jpeg", "gif", "webp", "bmp"]
NEEDS = "Add a picture, or both a valence and an arousal."


def extend_modal(result_id: str, meta: dict) -> dict:
    """The Extend button's form: a mood (two numbers) or a picture, and a caption. `meta` (the
    clicked piece's channel and thread) travels in private_metadata with the result id."""
    def axis(block_id: str, label: str, hint: str) -> dict:
        return {"type": "input", "block_id": block_id, "optional": True, "label": _text(label, "plain_text"),
                "hint": _text(hint, "plain_text"),
                "element": {"type": "number_input", "action_id": block_id, "is_decimal_allowed": True,
                            "min_value": "-1", "max_value": "1"}}

    blocks = [
        section("One more section for this piece: the reply is the whole longer piece, the new section marked. "
                "A picture wins over the numbers."),
        axis(VALENCE, "Valence", "-1 unpleasant ... +1 pleasant"),
        axis(AROUSAL, "Arousal", "-1 calm ... +1 energetic"),
        {"type": "input", "block_id": CAPTION, "optional": True, "label": _text("Caption", "plain_text"),
         "element": {"type": "plain_text_input", "action_id": CAPTION, "max_length": 120}},
        {"type": "input", "block_id": PICTURE, "optional": True, "label": _text("Picture", "plain_text"),
         "hint": _text(f"A {ACCEPTED_PICTURES} image, instead of a mood.", "plain_text"),
         "element": {"type": "file_input", "action_id": PICTURE, "max_files": 1, "filetypes": PICTURE_TYPES}},
    ]
    return {"type": "modal", "callback_id": EXTEND_VIEW, "title": _text("Extend this piece", "plain_text"),
            "submit": _text("Extend", "plain_text"), "close": _text("Cancel", "plain_text"),
            "private_metadata": json.dumps({**meta, "result": result_id}), "blocks": blocks}


def read_extend_modal(view: dict) -> tuple[dict | None, tuple[float, float] | None, str, dict[str, str]]:
    """(the picture's file object, the mood (valence, arousal), the caption, errors by block id).
    A picture wins; without one both numbers are needed, each from -1 to 1."""
    values = view.get("state", {}).get("values", {})

    def entry(block_id: str) -> dict:
        return values.get(block_id, {}).get(block_id, {}) or {}

    files = entry(PICTURE).get("files") or []
    caption = (entry(CAPTION).get("value") or "").strip()
    if files:
        return files[0], None, caption, {}
    errors: dict[str, str] = {}
    numbers: dict[str, float] = {}
    for block_id, label in ((VALENCE, "Valence"), (AROUSAL, "Arousal")):
        raw = entry(block_id).get("value")
        if raw in (None, ""):
            continue
        try:
            numbers[block_id] = float(raw)
        except ValueError:
            errors[block_id] = f"{label} must be a number."
            continue
        if not -1.0 <= numbers[block_id] <= 1.0:
            errors[block_id] = f"{label} must be between -1 and 1."
    if not errors and len(numbers) < 2:
        if not numbers:
            errors[PICTURE] = NEEDS
        else:
            missing = AROUSAL if VALENCE in numbers else VALENCE
            errors[missing] = f"{missing.capitalize()} too, for a mood (or add a picture instead)."
    if errors:
        return None, None, caption, errors
    return None, (numbers[VALENCE], numbers[AROUSAL]), caption, {}


def read_private(view: dict) -> bool:
    """Whether the modal's "Only me" box was ticked."""
    entry = view.get("state", {}).get("values", {}).get(PRIVATE, {}).get(PRIVATE, {}) or {}
    return any(o.get("value") == "private" for o in entry.get("selected_options") or ())


_num = number


# -- help and settings --------------------------------------------------------------------------------


def help_text(bot_user_id: str | None) -> str:
    me = f"<@{bot_user_id}>" if bot_user_id else "@ARIA"
    return "\n".join([
        "*ARIA* reads a picture's mood (valence: unpleasant to pleasant; arousal: calm to energetic) "
        "and composes music to match: a MIDI file, an audio clip and an emotion chart.",
        f"• Mention {me} in a message with a picture, or in a thread under one.",
        "• Or use *Compose music* in a message's ⋯ menu.",
        "• `/aria [mode] [length] [seed]`: a form to upload a picture and pick the settings.",
        "• `/aria last`: the newest picture you posted in this channel in the last 10 minutes.",
        "• `/aria mood VALENCE AROUSAL`: no picture, just a mood, each from -1 to 1 (e.g. `/aria mood 0.6 -0.3`).",
        "• `/aria queue`: your pieces in line, and what is left of today's quota.",
        "• `/aria forget-me`: delete everything I keep about you in this workspace, and my messages with your pieces.",
        "• Add `private` (to `/aria` or a mention) to get the result in your direct messages with me only; "
        "`public` to have it in the channel where results are private by default.",
        "• `/aria admin show | set NAME VALUE [#channel] | reset NAME [#channel]`: settings (workspace admins).",
        "• `/aria admin groups allow @GROUP [#channel]` (or `remove @GROUP`, `everyone`): only members of these "
        "user groups (and admins) may use ARIA.",
        "Options anywhere: a mode (" + ", ".join(MODES) + "), "
        + ", ".join(f"`{form}`" for form in typed_forms().split(", ")) + ".",
        "Under each piece: *Variation* (same mood, new seed), *Extend* (one more section from a picture or a "
        "mood: the whole longer piece, the new section marked), and *Another mode* for pieces by the neural "
        "models (the built-in composer has no modes).",
    ])


def settings_text(views) -> str:
    lines = ["*ARIA settings here* (value, and where it comes from):"]
    for view in views:
        lines.append(f"• `{view.name}` = {setting_value(view.name, view.value, group=group_mention)} "
                     f"_({view.source_label})_: "
                     f"{view.description}")
    return "\n".join(lines)
