"""Extend: continue any finished piece, a single one or a jam's, with one more picture or mood.

The earlier piece's MIDI (the store keeps it when the piece finishes) and its parts become a
`JamScore` whose `continues` holds that MIDI: the engine composes only the new part, after the
earlier piece's end, and the reply is the whole longer piece with the new section marked
(`aria_engine.jam`). Every extension is a jam record (`bot.jam_store`), so the longer piece can be
extended again, varied (same parts, a new seed) and credited:

- the latest piece of a jam, extended: that jam grows (what `/aria-jam extend` in its thread does);
- any other piece (a single piece, or an older piece of a jam): a new jam record, finished once
  the piece is delivered, holds the earlier parts and the new one.

How many parts the earlier piece holds is read from its MIDI (one marker per section; a single
piece has none and is one part, its requester's). Extending costs the member one use (kind
"extend") and goes through the same policy as a new piece.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from aria_engine.emotion import Emotion
from aria_engine.jam import (JAM_MODES, MAX_CONTRIBUTIONS, SECONDS_RANGE, TOKENS_RANGE, Continuation, JamScore, Part,
                             markers_of)
from aria_engine.options import GenerationOptions
from aria_engine.pipeline import Origin, Request
from bot.jam_store import COMPOSING, DONE, Jam, JamBook
from bot.jams import CAPTION_CHARS, JamRefused
from bot.outcomes import Refusal, Ticket
from bot.policy import Actor
from bot.texts import mention


class ExtendRefused(JamRefused):
    """Why a piece was not extended, in words for the member who asked (privately)."""


@dataclass(frozen=True)
class Extension:
    """An extension under way: the jam record that holds it, the new part's readout, the job."""

    jam: Jam
    readout: str
    ticket: Ticket


class Extender:
    def __init__(self, service, book: JamBook, read_picture, clock):
        """`read_picture` is `JamService.read_picture`: the image-safety gate, then the emotion."""
        self.service = service  # bot.service.AriaService
        self.book = book
        self.read_picture = read_picture  # async (actor, bytes) -> (Emotion, encoder); raises a refusal
        self.clock = clock

    def earlier(self, result_id: str) -> tuple[object, bytes, list[Part], Jam | None]:
        """The piece to continue: its record, MIDI, parts in order, and its jam (None for a single piece)."""
        record = self.service.result(result_id)
        if record is None:
            raise ExtendRefused("That piece is gone (deleted, or older than this server keeps results).")
        if record.status != "done" or record.valence is None:
            raise ExtendRefused("That piece isn't finished yet; extend it once it is.")
        midi = self.service.store.midi_of(result_id)
        if midi is None:
            raise ExtendRefused("That piece can't be extended: its MIDI was not kept.")
        sections = max(1, len(markers_of(midi)))
        jam = self.book.get(record.extra["jam_id"]) if record.extra.get("jam_id") else None
        if jam is not None:
            if len(jam.entries) < sections:
                raise ExtendRefused("That jam's contributions are gone, so its piece can't be extended.")
            parts = [Part(e.user_name, e.emotion, e.caption, e.encoder) for e in jam.entries[:sections]]
        else:
            parts = [Part(mention(record.user_id), Emotion.clamped(record.valence, record.arousal), "",
                          record.encoder or "explicit")]
        if len(parts) >= MAX_CONTRIBUTIONS:
            raise ExtendRefused(f"That piece already has {MAX_CONTRIBUTIONS} sections, the most a piece takes.")
        return record, midi, parts, jam

    async def extend(self, actor: Actor, name: str, result_id: str, *, image: bytes | None = None,
                     emotion: Emotion | None = None, caption: str = "",
                     upload_limit: int | None = None, extra: dict | None = None) -> Extension:
        """`extra`: what the adapter keeps on the job's record (where it is delivered, `private`)."""
        record, midi, parts, jam = self.earlier(result_id)
        if image is not None:
            emotion, encoder = await self.read_picture(actor, image)
        elif emotion is not None:
            encoder = "explicit"
        else:
            raise ExtendRefused("Extend with a picture or a mood.")
        caption = caption.strip()[:CAPTION_CHARS]
        composer = record.composer or record.generation_options().composer
        options = record.generation_options().replace(seed=None, composer=composer)
        if composer == "transformer" and options.mode not in JAM_MODES:
            raise ExtendRefused(f"That piece was made in the {options.mode} mode, which takes one emotion per piece, "
                                f"so it can't be continued into another.")
        seconds = section_seconds(jam, options, len(parts))
        if composer != "transformer":  # within the longest piece here
            longest = self.service.settings.get("jam_longest_piece_s", server=actor.server_key,
                                                channel=actor.channel_id)
            seconds = min(seconds, longest - piece_seconds(midi))
            if seconds < SECONDS_RANGE[0]:
                raise ExtendRefused(f"That piece is already as long as pieces get here ({longest // 60} min "
                                    f"{longest % 60:02d} s), so it can't be extended.")
        whole = JamScore.of(parts + [Part(name, emotion, caption, encoder)], seconds)
        score = JamScore(whole.keyframes, whole.parts, whole.seconds, Continuation(midi, len(parts), composer))
        options = fit_extension(options, score, record.extra.get("composed", len(parts)))
        # Admitted as a jam is finished: its length is the jam's rules' (jam_longest_piece_s above),
        # not a single piece's max_duration_s, so the lengths are set after the policy fitted them.
        admission = self.service.admit(actor, options, explicit={"seed"}, kind="extend")
        if isinstance(admission, Refusal):
            raise ExtendRefused(admission.message)
        composing = admission.options.replace(duration_s=options.duration_s, length=options.length)
        request = Request(emotion=score, options=composing,
                          origin=Origin(actor.platform, actor.server_id, actor.channel_id, actor.user_id),
                          max_upload_bytes=upload_limit)
        holder = self._holder(actor, name, record, jam, parts, options, seconds)
        ticket = await self.service.submit_request(admission, request, extra={**(extra or {}), "jam_id": holder.jam_id,
                                                                             "extends": result_id, "composed": 1})
        if isinstance(ticket, Refusal):
            if holder is not jam:
                self.book.set_outcome(holder.jam_id, "cancelled", self.clock())
            raise ExtendRefused(ticket.message)
        now = self.clock()
        self.book.add(holder.jam_id, actor.user_id, name, "picture" if image is not None else "mood", emotion,
                      encoder, caption, now)
        self.book.set_outcome(holder.jam_id, COMPOSING, now, ticket.record.result_id)
        holder = self.book.get(holder.jam_id)
        return Extension(holder, f"{len(holder.entries)}. {name}  {emotion.readout()}", ticket)

    def _holder(self, actor: Actor, name: str, record, jam: Jam | None, parts: list[Part],
                options: GenerationOptions, seconds: float) -> Jam:
        """The jam record the longer piece belongs to: the jam itself when its latest piece is the
        one extended, else a new record holding the earlier parts."""
        if jam is not None and jam.status == DONE and jam.result_id == record.result_id:
            return jam
        now = self.clock()
        title = f"{jam.title} (extended)" if jam is not None else "Extended piece"
        holder = Jam(uuid.uuid4().hex[:12], actor.platform, actor.server_id, actor.channel_id, actor.user_id, name,
                     title[:80], COMPOSING, now, MAX_CONTRIBUTIONS, options.as_dict(), seconds, created_at=now)
        self.book.create(holder, now)
        sources = jam.entries[: len(parts)] if jam is not None else None
        for i, part in enumerate(parts):
            user_id = sources[i].user_id if sources else record.user_id
            kind = sources[i].kind if sources else record.source_kind.replace("image", "picture")
            self.book.add(holder.jam_id, user_id, part.contributor, kind, part.emotion, part.encoder, part.caption, now)
        return holder


def section_seconds(jam: Jam | None, options: GenerationOptions, sections: int) -> float:
    """The new section's length (procedural): the jam's per-section length, or a single piece's own."""
    if jam is not None and jam.seconds:
        return float(jam.seconds)
    low, high = SECONDS_RANGE
    return float(min(high, max(low, options.duration_s / max(1, sections))))


def piece_seconds(midi: bytes) -> float:
    """How long a stored piece lasts (its MIDI's end)."""
    import io

    import pretty_midi

    return float(pretty_midi.PrettyMIDI(io.BytesIO(midi)).get_end_time())


def fit_extension(options: GenerationOptions, score: JamScore, composed: int) -> GenerationOptions:
    """What the engine composes, in the options: the new parts' length (a continuation composes
    only those). A transformer section gets as many tokens as each section the earlier piece's
    own job composed (`composed` of them in its `length`)."""
    new = len(score.parts) - score.continues.sections
    if score.continues.composer == "transformer":
        low, high = TOKENS_RANGE
        per_section = min(high, max(low, options.length // max(1, composed)))
        return options.replace(length=per_section * new)
    return options.replace(duration_s=score.seconds * new)
