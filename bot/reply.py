"""What the bot says back, independent of the chat platform.

Adapters turn a `Reply` into a Discord embed + files + buttons, or Slack blocks + uploads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aria_engine.pipeline import Result

SPOILER_NOTE = "the image-safety check flagged the picture as possibly sensitive, so this reply is marked as a spoiler"


@dataclass(frozen=True)
class Attachment:
    filename: str
    data: bytes
    mime_type: str
    kind: str  # "midi", "audio", "emotion_chart", "piano_roll"


@dataclass
class Reply:
    headline: str  # the emotion's label, e.g. "serene"
    valence_line: str  # "valence +0.62 (pleasant)"
    arousal_line: str  # "arousal -0.31 (calm)"
    backend: str
    seed: int
    details: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[Attachment] = field(default_factory=list)
    offers_modes: bool = False  # made by a composer with conditioning modes, so Another mode differs
    spoiler: bool = False  # the image-safety check flagged the picture and the server asks for spoilers

    @property
    def total_bytes(self) -> int:
        return sum(len(f.data) for f in self.files)

    def file(self, kind: str) -> Attachment | None:
        return next((f for f in self.files if f.kind == kind), None)

    def text(self) -> str:
        """The whole readout as plain text (for logs, fallbacks and notifications)."""
        lines = [f"{self.headline}: {self.valence_line}, {self.arousal_line}",
                 f"made by {self.backend}, seed {self.seed}"]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def build_reply(result: Result, *, name: str = "aria", upload_limit: int | None = None) -> Reply:
    """The reply for a result, its files fitted into the platform's upload limit.

    The audio was already rendered to fit what the pictures and MIDI leave (see
    Pipeline.finish). If the whole still does not fit, the pictures go first, then the audio:
    the MIDI always stays, and every omission is said.
    """
    emotion = result.emotion
    comp = result.composition
    details = [("seed", str(result.options.seed)), ("duration", f"{result.audio.duration_s:.1f} s")]
    if comp.mode:
        details.append(("mode", comp.mode))
    if comp.instruments:
        details.append(("instruments", ", ".join(comp.instruments)))
    notes = list(result.notes) + list(comp.notes) + list(getattr(result.audio, "notes", []))
    safety = comp.stats.get("image_safety") or {}
    spoiler = bool(safety.get("flagged")) and safety.get("mode") == "spoiler"
    if spoiler:
        notes.append(SPOILER_NOTE)
    files = [
        Attachment(f"{name}.mid", result.midi, "audio/midi", "midi"),
        Attachment(f"{name}.{result.audio.format}", result.audio.data, result.audio.mime_type, "audio"),
        Attachment(f"{name}.emotion.png", result.emotion_chart, "image/png", "emotion_chart"),
        Attachment(f"{name}.pianoroll.png", result.piano_roll, "image/png", "piano_roll"),
    ]
    if upload_limit is not None:
        for kind, why in (
            ("piano_roll", "piano roll left out to fit the upload limit"),
            ("emotion_chart", "emotion chart left out to fit the upload limit"),
            ("audio", "audio left out to fit the upload limit; the MIDI is attached"),
        ):
            if sum(len(f.data) for f in files) <= upload_limit:
                break
            files = [f for f in files if f.kind != kind]
            notes.append(why)
    return Reply(
        headline=emotion.label,
        valence_line=f"valence {emotion.valence:+.2f} ({emotion.valence_word})",
        arousal_line=f"arousal {emotion.arousal:+.2f} ({emotion.arousal_word})",
        backend=result.backend,
        seed=result.options.seed,
        details=details,
        notes=notes,
        files=files,
        offers_modes=comp.mode is not None,
        spoiler=spoiler,
    )
