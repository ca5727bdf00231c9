"""A jam: ordered contributions (a picture or a mood, who gave it, an optional caption) composed
as ONE piece, one section per contribution.

The procedural composer writes the sections itself (`music/procedural/sections.py`: keys that
modulate, a tempo ramp, one motif). The transformer gets one condition per generated token: a
`Trajectory` that holds each contribution's emotion over its share of the tokens and moves
linearly to the next over the first TRANSITION_SHARE of the next share (`jam_trajectory`); its
section times are read back from the tokens (where the section's first token plays). The
`discrete_token` models take one emotion per piece and cannot follow a jam, so a jam refuses them.

Every section gets a MIDI marker meta-event (`1. @ana: serene`) at its start (`with_markers`):
pretty_midi does not write markers, so they are added to the file's bytes with mido. The reply's
pictures are the jam's trajectory chart and a piano roll with the section boundaries; `credits`
is the text that names each contributor with the section's time span. `sidecar` is what `aria
extend` needs to continue the piece: the contributions' emotions, the seed, the section length.

Extend (`JamScore.continues`, a `Continuation`): the earlier piece's MIDI, as delivered, already
holds the score's first `sections` parts; only the parts after them are composed, by the composer
that made the earlier piece, and the result is the whole longer piece with the earlier notes
verbatim. The transformer primes with the earlier piece's tokens (`Vocab.from_midi`; the model
sees their last window) and follows `composed_trajectory`: from the last earlier part's emotion to
each new part's, as between the sections of a jam. The procedural composer reads the earlier
piece's closing key, tempo and motif from the state event it writes into every MIDI
(`music/procedural/state.py`) and continues from there (`music/procedural/continuation.py`). Any
earlier piece continues this way, a single piece (sections=1, no markers) as well as a jam; the
earlier sections' times come from the earlier MIDI's markers (`earlier_section_starts`), the new
ones from the new music, so the reply's markers hold every section once.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Callable, Sequence

from aria_engine.emotion import Emotion, Trajectory
from aria_engine.options import GenerationOptions

MAX_CONTRIBUTIONS = 12
SECONDS_RANGE = (6.0, 120.0)  # per section, procedural
TOKENS_RANGE = (64, 640)  # per section, transformer: 12 sections stay within the 8192-token option
TRANSITION_SHARE = 0.25  # of a section's tokens, moving from the previous emotion
JAM_MODES = ("continuous_concat", "continuous_token")  # the modes that condition per token
SIDECAR_VERSION = 1
MAX_EARLIER_MIDI_BYTES = 2 * 1024 * 1024  # a continued piece's MIDI (the Redis wire's bound too)
MAX_EARLIER_MIDI_TICKS = 2**21
MAX_EARLIER_SECONDS = 1500.0  # 12 sections of 120 s, and room


class JamError(ValueError):
    """A jam that cannot be composed as asked (the message says why, for the person)."""


@dataclass(frozen=True)
class Contribution:
    """One member's part: a picture (bytes) or a mood, in the order given."""

    contributor: str
    emotion: Emotion | None = None
    image: bytes | None = None
    caption: str = ""

    def __post_init__(self) -> None:
        if (self.image is None) == (self.emotion is None):
            raise JamError("a contribution is a picture or a mood, exactly one of them")


@dataclass(frozen=True)
class Part:
    """A contribution once its emotion is known: what the composer and the credits need."""

    contributor: str
    emotion: Emotion
    caption: str = ""
    encoder: str = "explicit"  # which encoder read it; "explicit" for a mood


@dataclass(frozen=True)
class Continuation:
    """The earlier piece a score continues (Extend): its MIDI, markers included, already holds the
    score's first `sections` parts; only the parts after them are composed, and the reply is the
    whole longer piece. `composer` says which composer made the earlier piece."""

    midi: bytes
    sections: int
    composer: str

    def __repr__(self) -> str:  # the request's cache key reads it: the MIDI's digest, not its bytes
        import hashlib

        digest = hashlib.sha256(self.midi).hexdigest() if isinstance(self.midi, bytes) else repr(self.midi)
        return f"Continuation(midi=sha256:{digest}, sections={self.sections!r}, composer={self.composer!r})"


@dataclass(frozen=True)
class JamScore(Trajectory):
    """A jam as the engine's conditioning: the per-token trajectory (`jam_trajectory`) that the
    transformer follows, with the parts in order and the section length the procedural composer
    needs. One request carries it, so the queue treats a jam as one job."""

    parts: tuple[Part, ...] = ()
    seconds: float = 15.0  # per section, procedural
    continues: Continuation | None = None  # Extend: the earlier piece holding the first parts

    @classmethod
    def of(cls, parts: Sequence[Part], seconds: float | None = None,
           continues: Continuation | None = None) -> "JamScore":
        """The keyframes span the whole (longer) piece; `composed_trajectory` is what a composer
        follows over the parts it writes."""
        if not parts:
            raise JamError("a jam needs at least one contribution")
        keyframes = jam_trajectory([p.emotion for p in parts]).keyframes
        score = cls(keyframes, tuple(parts), float(seconds or 15.0), continues)
        if continues is not None:
            check_continuation(score)
        return score

    @property
    def emotions(self) -> list[Emotion]:
        return [p.emotion for p in self.parts]

    @property
    def held(self) -> int:
        """Parts the earlier piece already holds (0 without a continuation)."""
        return self.continues.sections if self.continues is not None else 0

    @property
    def new_parts(self) -> tuple[Part, ...]:
        """The parts to compose: all of them, or those after the earlier piece's."""
        return self.parts[self.held:]

    def composed_trajectory(self) -> Trajectory:
        """The condition over the tokens a composer writes: the whole score's keyframes, or for a
        continuation the new parts' from the last earlier part's emotion (its transition first)."""
        if self.continues is None:
            return Trajectory(self.keyframes)
        return jam_trajectory([p.emotion for p in self.new_parts], previous=self.parts[self.held - 1].emotion)


@dataclass(frozen=True)
class Section:
    """A composed section: who gave it, its emotion and where it sits in the piece."""

    number: int  # 1-based
    contributor: str
    caption: str
    emotion: Emotion
    encoder: str  # "explicit" for a mood
    start_s: float
    end_s: float
    key: str = ""
    tempo_bpm: tuple[float, float] | None = None  # (first bar, last bar): a ramp when they differ

    @property
    def marker(self) -> str:
        return f"{self.number}. {self.contributor}: {self.emotion.label}"

    def readout(self) -> str:
        music = ""
        if self.key and self.tempo_bpm:
            first, last = self.tempo_bpm
            music = f"  {self.key}, {first:g} BPM" if first == last else f"  {self.key}, {first:g}->{last:g} BPM"
        return (f"{self.number}. {self.contributor}  {self.emotion.readout()}  "
                f"{clock(self.start_s)}-{clock(self.end_s)}{music}")


@dataclass
class JamPiece:
    """A composed jam: the pipeline's result with the jam's MIDI (markers), pictures and credits."""

    result: object  # aria_engine.pipeline.Result, its midi, emotion_chart and piano_roll the jam's
    sections: list[Section]
    seconds: float | None  # per section (procedural)
    notes: list[str] = field(default_factory=list)
    tokens: int | None = None  # per new section (transformer)

    @property
    def credits(self) -> str:
        return credits(self.sections)

    def sidecar(self) -> dict:
        comp = self.result.composition
        return {
            "version": SIDECAR_VERSION,
            "seed": self.result.options.seed,
            "composer": comp.composer,
            "mode": comp.mode,
            "seconds": self.seconds,
            "tokens": self.tokens,
            "sections": [{"contributor": s.contributor, "caption": s.caption, "valence": round(s.emotion.valence, 4),
                          "arousal": round(s.emotion.arousal, 4), "start_s": round(s.start_s, 3),
                          "end_s": round(s.end_s, 3), "key": s.key,
                          "tempo_bpm": list(s.tempo_bpm) if s.tempo_bpm else None}
                         for s in self.sections],
            "final": {"key": self.sections[-1].key,
                      "tempo_bpm": self.sections[-1].tempo_bpm[-1] if self.sections[-1].tempo_bpm else None,
                      "motif_steps": comp.stats.get("motif_steps")},
        }


def clock(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def credits(sections: Sequence[Section]) -> str:
    """`1. @ana: serene, 0:00-0:15 "the sea"`, one line per section."""
    lines = []
    for s in sections:
        caption = f' "{s.caption}"' if s.caption else ""
        lines.append(f"{s.number}. {s.contributor}: {s.emotion.label}, {clock(s.start_s)}-{clock(s.end_s)}{caption}")
    return "\n".join(lines)


def jam_trajectory(emotions: Sequence[Emotion], previous: Emotion | None = None) -> Trajectory:
    """Keyframes at the section boundaries: each emotion held over its share, reached from the
    previous one over the first TRANSITION_SHARE of that share. With `previous` (a continuation:
    the earlier piece's last emotion) the first share moves from it too."""
    n = len(emotions)
    if previous is None:
        frames: list[tuple[float, Emotion]] = [(0.0, emotions[0])]
    else:
        frames = [(0.0, previous), (TRANSITION_SHARE / n, emotions[0])]
    for i in range(1, n):
        frames.append((i / n, emotions[i - 1]))
        frames.append(((i + TRANSITION_SHARE) / n, emotions[i]))
    frames.append((1.0, emotions[-1]))
    return Trajectory(tuple(frames))


def with_markers(midi: bytes, markers: Sequence[tuple[float, str]]) -> bytes:
    """The MIDI file with a marker meta-event at each (time in seconds, text), on its first track
    (UTF-8 text; a marker carries no note, so players and the renderer ignore it)."""
    import mido
    import pretty_midi

    timing = pretty_midi.PrettyMIDI(io.BytesIO(midi))
    parsed = mido.MidiFile(file=io.BytesIO(midi), charset="utf-8")
    track = parsed.tracks[0]
    absolute, t = [], 0
    for message in track:
        t += message.time
        absolute.append((t, message))
    end_of_track = [m for m in absolute if m[1].type == "end_of_track"]
    events = [m for m in absolute if m[1].type != "end_of_track"]
    for seconds, text in markers:
        events.append((int(timing.time_to_tick(seconds)), mido.MetaMessage("marker", text=text)))
    events.sort(key=lambda e: e[0])  # stable: a marker follows the tempo events at its tick
    last = max([e[0] for e in events] + [e[0] for e in end_of_track])
    events.append((last, mido.MetaMessage("end_of_track")))
    track.clear()
    previous = 0
    for tick, message in events:
        track.append(message.copy(time=tick - previous))
        previous = tick
    out = io.BytesIO()
    parsed.save(file=out)
    return out.getvalue()


def markers_of(midi: bytes) -> list[tuple[float, str]]:
    """(seconds, text) of every marker meta-event in a MIDI file."""
    import mido
    import pretty_midi

    timing = pretty_midi.PrettyMIDI(io.BytesIO(midi))
    found = []
    for track in mido.MidiFile(file=io.BytesIO(midi), charset="utf-8").tracks:
        tick = 0
        for message in track:
            tick += message.time
            if message.type == "marker":
                found.append((float(timing.tick_to_time(tick)), message.text))
    return sorted(found)


def check_jam(count: int, options: GenerationOptions, composer: str, seconds: float | None,
              tokens: int | None) -> None:
    if not 1 <= count <= MAX_CONTRIBUTIONS:
        raise JamError(f"a jam takes 1 to {MAX_CONTRIBUTIONS} contributions, got {count}")
    if composer == "transformer":
        refuse_unfit_mode(options.mode)
        if tokens is not None and not TOKENS_RANGE[0] <= tokens <= TOKENS_RANGE[1]:
            raise JamError(f"tokens per section must be {TOKENS_RANGE[0]}..{TOKENS_RANGE[1]}, got {tokens}")
    elif seconds is not None and not SECONDS_RANGE[0] <= seconds <= SECONDS_RANGE[1]:
        raise JamError(f"seconds per section must be {SECONDS_RANGE[0]:g}..{SECONDS_RANGE[1]:g}, got {seconds:g}")


def compose_jam(pipeline, contributions: Sequence[Contribution], options: GenerationOptions, *,
                seconds: float | None = None, tokens: int | None = None,
                progress: Callable[[str, float], None] | None = None,
                continues: Continuation | None = None) -> JamPiece:
    """Read each picture's emotion, then compose, render and mark the piece as one request
    would (`JamScore` through `Pipeline.compose` and `Pipeline.finish`, as the engine runs it).
    With `continues`, the first `continues.sections` contributions are the earlier piece's (moods
    as they were read) and only the rest are composed, after it."""
    report = progress or (lambda stage, fraction: None)
    options = options.with_seed()
    if continues is not None:
        options = options.replace(composer=continues.composer)
    composer_name = pipeline.composer_name(options.composer, options.mode)
    check_jam(len(contributions), options, composer_name, seconds, tokens)
    emotions, encoders = _emotions(pipeline, contributions, options, report)
    parts = [Part(c.contributor, e, c.caption, enc) for c, e, enc in zip(contributions, emotions, encoders)]
    score = JamScore.of(parts, seconds, continues)
    composed = len(score.new_parts)
    per_section = None
    if composer_name == "procedural":  # the length composed, for progress and the reply
        options = options.replace(duration_s=min(600.0, score.seconds * composed))
    else:
        per_section = int(tokens or max(TOKENS_RANGE[0], options.length // composed))
        options = options.replace(length=per_section * composed)
    report("composing", 0.0)
    composition = pipeline.compose([(score, options)], lambda fraction: report("composing", fraction))[0]
    picture_encoder = next((e for e in encoders if e != "explicit"), "explicit")
    result = pipeline.finish(parts[0].emotion, score, picture_encoder, composition, options, progress)
    return JamPiece(result, sections_of(score, result.composition),
                    score.seconds if composer_name == "procedural" else None, tokens=per_section)


def refuse_unfit_mode(conditioning: str) -> None:
    """The transformer's own conditioning mode must follow a trajectory per token."""
    if conditioning not in JAM_MODES:
        raise JamError(f"the {conditioning} models take one emotion per piece and cannot follow a jam; "
                       f"use {' or '.join(JAM_MODES)}")


def note_sections(score: JamScore, composition, vocab) -> None:
    """Put where each section starts in `composition.stats["sections"]` (the procedural composer
    and a continuation write their own; a transformer piece's come from its tokens, `vocab` the
    model's), and the credits in its notes, which every reply shows. Once: a second call (the
    decode session noted it, then the pipeline) changes nothing."""
    if any(note.startswith("credits:") for note in composition.notes):
        return
    if "sections" not in composition.stats:
        starts = _token_section_starts(vocab, composition, len(score.parts))
        composition.stats["sections"] = [{"start_s": round(t, 4)} for t in starts]
    composition.notes.append("credits:\n" + credits(sections_of(score, composition)))


def sections_of(score: JamScore, composition) -> list[Section]:
    stats = composition.stats["sections"]
    starts = [s["start_s"] for s in stats]
    ends = starts[1:] + [composition.duration_s]
    sections = []
    for number, (part, stat, start, end) in enumerate(zip(score.parts, stats, starts, ends), start=1):
        tempo = (stat["tempo_bpm"][0], stat["tempo_bpm"][-1]) if "tempo_bpm" in stat else None
        sections.append(Section(number, part.contributor, part.caption, part.emotion, part.encoder, start, end,
                                stat.get("key", ""), tempo))
    return sections


def jam_files(score: JamScore, composition, midi: bytes) -> tuple[bytes, bytes, bytes]:
    """(the MIDI with its markers, the trajectory chart, the piano roll with section boundaries)."""
    from aria_engine import visuals

    sections = sections_of(score, composition)
    marked = with_markers(midi, [(s.start_s, s.marker) for s in sections])
    chart = visuals.trajectory_chart([(s.contributor, s.emotion) for s in sections])
    roll = visuals.piano_roll(composition.midi, sections=[(s.start_s, s.contributor) for s in sections])
    return marked, chart, roll


def _emotions(pipeline, contributions, options, report) -> tuple[list[Emotion], list[str]]:
    """Each contribution's emotion, and which encoder read it ("explicit" for a mood)."""
    encoder = pipeline.encoder_name(options.encoder)
    pictures = [i for i, c in enumerate(contributions) if c.image is not None]
    report("decoding image", 0.0)
    images = [pipeline.decode_image(contributions[i].image) for i in pictures]
    report("reading emotion", 0.0)
    read = dict(zip(pictures, pipeline.read_emotions(images, encoder) if images else []))
    emotions = [read.get(i, c.emotion) for i, c in enumerate(contributions)]
    return emotions, [encoder if i in read else "explicit" for i in range(len(contributions))]


def _token_section_starts(vocab, composition, sections: int) -> list[float]:
    """Where each section's first token sounds: the piece decoded up to that token ends there."""
    tokens = composition.tokens or []
    starts = [0.0]
    for i in range(1, sections):
        prefix = tokens[: round(i * len(tokens) / sections)]
        starts.append(float(vocab.to_midi([vocab.start_id, *prefix]).get_end_time()) if prefix else 0.0)
    return starts


def check_continuation(score: JamScore) -> None:
    """A continuation the composers can make: it holds some parts and leaves some to compose."""
    continues = score.continues
    if not isinstance(continues.midi, bytes) or not continues.midi:
        raise JamError("the earlier piece's MIDI is missing")
    if len(continues.midi) > MAX_EARLIER_MIDI_BYTES:
        raise JamError(f"the earlier piece's MIDI is over {MAX_EARLIER_MIDI_BYTES // (1024 * 1024)} MB")
    if not isinstance(continues.sections, int) or not 1 <= continues.sections < len(score.parts):
        raise JamError(f"a continuation holds 1 to {len(score.parts) - 1} of the score's {len(score.parts)} parts, "
                       f"not {continues.sections!r}")
    if continues.composer not in ("procedural", "transformer"):
        raise JamError(f"the earlier piece's composer must be procedural or transformer, not {continues.composer!r}")


def read_earlier_midi(data: bytes):
    """(pretty_midi's object, mido's) for an earlier piece's MIDI, once mido has shown it is a
    small file, short in ticks and in time (it may be a user's file)."""
    import mido
    import pretty_midi

    if len(data) > MAX_EARLIER_MIDI_BYTES:
        raise JamError(f"the earlier piece's MIDI is over {MAX_EARLIER_MIDI_BYTES // (1024 * 1024)} MB")
    try:
        parsed = mido.MidiFile(file=io.BytesIO(data), charset="utf-8")
    except Exception as error:  # mido raises many kinds on a broken file
        raise JamError(f"the earlier piece is not a readable MIDI file ({type(error).__name__})") from None
    longest = max((sum(message.time for message in track) for track in parsed.tracks), default=0)
    if longest > MAX_EARLIER_MIDI_TICKS or not isinstance(parsed.ticks_per_beat, int) or parsed.ticks_per_beat <= 0:
        raise JamError("the earlier piece's MIDI is too long to continue")
    try:
        midi = pretty_midi.PrettyMIDI(io.BytesIO(data))
    except Exception as error:
        raise JamError(f"the earlier piece's MIDI cannot be read ({type(error).__name__})") from None
    if midi.get_end_time() > MAX_EARLIER_SECONDS:
        raise JamError(f"the earlier piece lasts over {MAX_EARLIER_SECONDS:g} s, too long to continue")
    if not any(i.notes for i in midi.instruments):
        raise JamError("the earlier piece has no notes to continue")
    return midi, parsed


def earlier_section_starts(data: bytes, sections: int) -> list[float]:
    """Where the earlier piece's sections start: its first `sections` markers (a jam's), or 0.0
    for a single piece without markers."""
    starts = [t for t, _ in markers_of(data)]
    if not starts and sections == 1:
        return [0.0]
    if len(starts) < sections:
        raise JamError(f"the earlier piece marks {len(starts)} sections, not the {sections} it should hold")
    return starts[:sections]


def contributions_from_sidecar(sidecar: dict) -> list[Contribution]:
    """The earlier piece's contributions as moods (their emotions as they were read)."""
    if sidecar.get("version") != SIDECAR_VERSION:
        raise JamError("this jam file was written by another version of ARIA")
    return [Contribution(s["contributor"], Emotion(s["valence"], s["arousal"]), caption=s.get("caption", ""))
            for s in sidecar["sections"]]
