"""MIDI -> audio clip: SoundFont synthesis in process, loudness, silent-tail trimming, encoding.

Every MIDI instrument gets a synth channel and its program (drums on channel 9, bank 128, as
General MIDI does), and the note, pitch-bend and control-change events are fed in time order with
audio rendered between them (events land on FluidSynth's 64-sample blocks, under 1.5 ms at
44.1 kHz). The output is float, so nothing clips before mastering sets the level.

Mastering keeps a piece's own loudness: a calm piece played softly must stay quieter than an
energetic one, or the velocity cue is lost (issue 14: peak-normalising every clip to -1 dBFS made
loud pieces measure quieter than calm ones). `master_level` moves each clip only part of the way
towards a common loudness (`LOUDNESS_KEEP` of its distance from `MASTER_REFERENCE_DB` is kept),
then a look-ahead peak limiter holds the peaks under `PEAK_CEILING_DBFS`.

A piece plays on two synths side by side, one per core: its instruments are split into two
groups with about as many notes each, each group plays on its own synth in its own thread
(FluidSynth runs without Python's lock), and the two outputs are added. Voices, reverb and chorus
are linear, so the sum sounds as one synth playing everything: it differs only in the first 64
samples of some notes (FluidSynth eases a new voice in from the level its voice slot last played
at, so those depend on which notes shared a synth), about 50 dB below the music. Groups never
share a SoundFont sample (FluidSynth counts a sample's users without locking), and instruments on
one channel stay together. The SoundFont is loaded once per `Renderer`; each render plays on
fresh synths that borrow it, split by the MIDI and the font alone, so the same MIDI always gives
bit-identical audio.

A clip's synths stop ringing out once the sound is well below the level where the clip is
trimmed (`CLIP_TAIL`), rather than when every voice has finished: the steel guitar rings for
seconds below it.

A piece with no notes is an error (`RenderError`), not a silent clip: a silent attachment tells a
user nothing, while the error says what went wrong.
"""

from __future__ import annotations

import io
import logging
import math
import os
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from ctypes import CDLL, CFUNCTYPE, c_char_p, c_int, c_void_p
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import fluidsynth
import numpy as np
import pretty_midi
import soundfile

SOUNDFONT_ENV = "ARIA_SOUNDFONT"
FLUIDR3_PATH = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")  # Debian's fluid-soundfont-gm
TIMGM_PATH = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"  # ships inside pretty_midi

MIDI_CHANNELS = 256  # FluidSynth allows more than 16; drums use those with channel % 16 == 9
DRUM_BANK = 128
FLUID_BLOCK = 64  # FluidSynth renders in blocks of this many samples
TAIL_BLOCK = 64 * FLUID_BLOCK
MAX_TAIL_S = 4.0  # release and reverb after the last event, at most
TAIL_SILENCE_DB = -80.0  # the tail ends once voices are done and a block is this far below the peak
SILENT_PEAK = 1e-6  # raw synth output quieter than this everywhere counts as silence
MIN_NOTE_S = 0.005  # zero-length notes still sound briefly (and always end)
SYNTH_PARTS = 2  # synths that play one piece side by side: ARIA's machines have two cores
TRIM_DB = -60.0  # a clip ends this far below its peak...
TRIM_KEEP_S = 0.25  # ...plus a short faded tail
# A clip's synths stop ringing once this long has stayed this far below their peak: the clip is
# cut at TRIM_DB anyway, so synthesizing the quieter rest would be thrown away.
CLIP_TAIL_DB = TRIM_DB - 10.0
CLIP_TAIL_QUIET_S = 0.5

PROGRESS_EVERY_S = 0.5  # of audio: how often synthesis reports progress and looks for a stop

DEFAULT_QUALITY = 0.5  # encoder quality 0..1; Vorbis at 0.5 is about 160 kbit/s stereo
LOWER_QUALITIES = (0.3, 0.1, 0.0)  # tried in turn when a clip must fit a byte limit
SIZE_MARGIN = 0.95  # aim under the limit: encoded size is not exactly proportional to length
MIN_CLIP_S = 1.0
FADE_OUT_S = 3.0
# Mastering (see the module docstring). Levels are mean-square dB of the non-silent 400 ms blocks.
MASTER_REFERENCE_DB = -24.0  # a raw clip this loud (a lively band at forte, on FluidR3_GM)...
MASTER_TARGET_DB = -15.0  # ...is mastered to this level
LOUDNESS_KEEP = 0.6  # the share of a clip's distance from the reference that mastering keeps
LEVEL_BLOCK_S = 0.4  # the block of BS.1770's gated loudness
LEVEL_GATE_DB = -20.0  # blocks this far below the loudest are pauses, not the piece's level
PEAK_CEILING_DBFS = -1.0  # the limiter keeps every sample under this
LIMITER_BLOCK = 256  # samples per gain step (under 6 ms at 44.1 kHz)
LIMITER_ATTACK_S = 0.01  # time the limiter's gain takes to come down 6 dB ahead of a peak
LIMITER_RELEASE_S = 0.3  # and to recover 6 dB after it


# Called with the fraction done (0..1) as a long render goes; it may raise to abandon the render
# (the engine does when nobody waits for the piece any more), and the exception comes out.
RenderProgress = Callable[[float], None]


class _Stopped(Exception):
    """A synth told to stop because the render was abandoned elsewhere."""


class RenderError(RuntimeError):
    """A piece could not be turned into audio; the message is fit to show a user."""


class AudioTooLarge(RenderError):
    """The clip cannot fit the byte budget at any quality or length.

    When raised after rendering, `unfitted` holds the whole clip at full quality, for a caller
    that keeps it anyway (and says it did not fit).
    """

    unfitted: "RenderedAudio | None" = None


class SoundFontError(RenderError):
    """No usable SoundFont: the message names the path and what is wrong with it."""


# ---------------------------------------------------------------------------------------------
# SoundFont resolution


def find_soundfont(configured: str | os.PathLike | None = None) -> Path:
    """The SoundFont to use: `configured`, else $ARIA_SOUNDFONT, else FluidR3_GM, else TimGM6mb.

    A path someone asked for that is missing or not a SoundFont raises `SoundFontError`: falling
    back to another font would hide the mistake and change how every piece sounds. So does a
    default font that is installed but unreadable.
    """
    source = "configured"
    if configured is None or str(configured) == "":
        configured = os.environ.get(SOUNDFONT_ENV) or None
        source = f"from ${SOUNDFONT_ENV}"
    if configured is not None:
        return _checked_soundfont(Path(configured).expanduser(), source)
    for candidate in (FLUIDR3_PATH, TIMGM_PATH):
        if candidate.exists():
            return _checked_soundfont(candidate, "default")
    raise SoundFontError(
        f"No SoundFont found: looked for {FLUIDR3_PATH} (Debian package fluid-soundfont-gm) and "
        f"{TIMGM_PATH} (inside pretty_midi). Install one, or set {SOUNDFONT_ENV} to an .sf2 file."
    )


def _checked_soundfont(path: Path, source: str) -> Path:
    """`path` if it is a readable SoundFont 2 file (a RIFF 'sfbk' chunk), else SoundFontError."""
    where = f"The SoundFont {path} ({source})"
    try:
        with path.open("rb") as file:
            header = file.read(12)
    except FileNotFoundError:
        raise SoundFontError(f"{where} does not exist.") from None
    except IsADirectoryError:
        raise SoundFontError(f"{where} is a directory, not a SoundFont file.") from None
    except OSError as error:
        raise SoundFontError(f"{where} cannot be read: {error.strerror or error}.") from None
    if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"sfbk":
        raise SoundFontError(f"{where} is not a SoundFont 2 file (no RIFF 'sfbk' header).")
    return path.absolute()


# ---------------------------------------------------------------------------------------------
# Synthesis

# FluidSynth calls pyfluidsynth does not wrap. Float output keeps the headroom that its
# 16-bit output would clip (and dither).
# (synth, len, lout, loff, lincr, rout, roff, rincr); declared plainly (no parameter flags), as
# it is called between every two events. It releases Python's lock while it synthesizes.
_write_float = CFUNCTYPE(c_int, c_void_p, c_int, c_void_p, c_int, c_int, c_void_p, c_int, c_int)(
    ("fluid_synth_write_float", CDLL(fluidsynth.lib))
)
_add_sfont = fluidsynth.cfunc("fluid_synth_add_sfont", c_int, ("synth", c_void_p, 1), ("sfont", c_void_p, 1))
_remove_sfont = fluidsynth.cfunc(
    "fluid_synth_remove_sfont", c_int, ("synth", c_void_p, 1), ("sfont", c_void_p, 1)
)
_LogFunction = CFUNCTYPE(None, c_int, c_char_p, c_void_p)
_set_log_function = fluidsynth.cfunc(
    "fluid_set_log_function", c_void_p, ("level", c_int, 1), ("fun", _LogFunction, 1), ("data", c_void_p, 1)
)
FLUID_PANIC, FLUID_ERR, FLUID_WARN = 0, 1, 2

logger = logging.getLogger(__name__)


@_LogFunction
def _log_from_fluidsynth(level: int, message: bytes, data) -> None:
    """FluidSynth's errors go to our log; its warnings (presets a font lacks) only at debug level."""
    text = (message or b"").decode("utf-8", "replace")
    logger.log(logging.ERROR if level <= FLUID_ERR else logging.DEBUG, "fluidsynth: %s", text)


def _route_fluidsynth_logs() -> None:
    """Send FluidSynth's messages to Python logging instead of stderr (process-wide, idempotent)."""
    for level in (FLUID_PANIC, FLUID_ERR, FLUID_WARN):
        _set_log_function(level, _log_from_fluidsynth, None)


# SoundFont 2 preset data ("pdta" list): record layouts, and the generators that name an
# instrument (in a preset zone) and a sample (in an instrument zone).
_SF2_RECORDS = {
    b"phdr": "<20sHHHIII",  # name, program, bank, first zone, library, genre, morphology
    b"pbag": "<HH",  # first generator, first modulator
    b"pgen": "<HH",  # generator, amount
    b"inst": "<20sH",  # name, first zone
    b"ibag": "<HH",
    b"igen": "<HH",
    b"shdr": "<20sIIIIIBbHH",  # name, start, end, loop start, loop end, rate, key, cents, link, type
}
_GEN_INSTRUMENT, _GEN_SAMPLE_ID = 41, 53
_STEREO_SAMPLE_TYPES = 0x0E  # right, left or linked: the link names the other half


def _riff_chunks(file, end: int):
    """(id, size, offset) of each chunk from the file's position up to `end`."""
    while file.tell() + 8 <= end:
        chunk_id, size = struct.unpack("<4sI", file.read(8))
        offset = file.tell()
        yield chunk_id, size, offset
        file.seek(offset + size + (size & 1))


def _read_pdta(path: Path) -> dict[bytes, list[tuple]]:
    """The preset data records of a SoundFont 2 file, skipping its (large) sample data."""
    with path.open("rb") as file:
        _, riff_size, _ = struct.unpack("<4sI4s", file.read(12))
        for chunk_id, size, offset in _riff_chunks(file, 8 + riff_size):
            if chunk_id == b"LIST" and file.read(4) == b"pdta":
                records = {c: file.read(n) for c, n, _ in _riff_chunks(file, offset + size)}
                return {c: list(struct.iter_unpack(f, records[c])) for c, f in _SF2_RECORDS.items()}
    raise ValueError("no preset data")


def _zone_amounts(bags: list[tuple], gens: list[tuple], first: int, stop: int, generator: int) -> set[int]:
    """The amounts of `generator` in zones first..stop-1."""
    return {
        gens[g][1]
        for zone in range(first, stop)
        for g in range(bags[zone][0], bags[zone + 1][0])
        if gens[g][0] == generator
    }


def preset_samples(path: Path) -> dict[tuple[int, int], frozenset[int]]:
    """{(bank, program): the sample numbers it can play} for every preset of a SoundFont 2 file.

    Read from the file's preset, instrument and sample headers, without the sample data.
    """
    pdta = _read_pdta(Path(path))
    phdr, inst, shdr = pdta[b"phdr"], pdta[b"inst"], pdta[b"shdr"]
    instrument_samples = []
    for i in range(len(inst) - 1):  # the last record of each list only marks the end
        samples = _zone_amounts(pdta[b"ibag"], pdta[b"igen"], inst[i][1], inst[i + 1][1], _GEN_SAMPLE_ID)
        samples |= {shdr[n][8] for n in samples if n < len(shdr) and shdr[n][9] & _STEREO_SAMPLE_TYPES}
        instrument_samples.append(frozenset(samples))
    presets = {}
    for p in range(len(phdr) - 1):
        _, program, bank, first_zone, *_ = phdr[p]
        instruments = _zone_amounts(pdta[b"pbag"], pdta[b"pgen"], first_zone, phdr[p + 1][3], _GEN_INSTRUMENT)
        presets[(bank, program)] = frozenset().union(
            *(instrument_samples[i] for i in instruments if i < len(instrument_samples))
        )
    return presets


class SoundFont:
    """A SoundFont loaded into memory once, then lent to fresh synths for every render.

    FluidR3_GM is 140 MB; loading it takes a noticeable moment, lending it takes none.
    """

    def __init__(self, path: Path):
        _route_fluidsynth_logs()
        self.path = Path(path)
        try:
            self.presets = preset_samples(self.path)
        except (OSError, ValueError, KeyError, IndexError, struct.error) as error:
            # Still playable, on one synth: without the map no split is known to be safe.
            logger.debug("cannot map the presets of %s (%s): pieces play on one synth", self.path, error)
            self.presets = {}
        # This synth only owns the font; it never plays, so it needs no effects or channels.
        self._owner = fluidsynth.Synth(
            channels=16, **{"synth.reverb.active": 0, "synth.chorus.active": 0, "synth.lock-memory": 0}
        )
        sfid = self._owner.sfload(str(self.path))
        if sfid < 0:
            self._owner.delete()
            raise SoundFontError(
                f"FluidSynth could not load the SoundFont {self.path}: the file may be damaged."
            )
        self._sfont = fluidsynth.fluid_synth_get_sfont_by_id(self._owner.synth, sfid)

    def preset(self, instrument: pretty_midi.Instrument) -> tuple[int, int]:
        """(bank, program) that plays `instrument`: its own, else the bank's first (piano, kit)."""
        bank = DRUM_BANK if instrument.is_drum else 0
        program = instrument.program if 0 <= instrument.program <= 127 else 0
        if self.presets and (bank, program) not in self.presets:
            return bank, 0
        return bank, program

    def close(self) -> None:
        if self._owner is not None:
            self._owner.delete()
            self._owner = None


# Event kinds double as the order of simultaneous events: a note ending where the same key
# starts again is released first, and controllers are set before the notes they shape.
NOTE_OFF, CONTROL, PITCH_BEND, NOTE_ON = range(4)
_BANK_SELECT_CCS = (0, 32)  # the renderer chooses banks itself


def assign_channels(instruments: list[pretty_midi.Instrument], channels: int = MIDI_CHANNELS) -> list[int]:
    """A synth channel for each instrument: its own while channels last, else one per program.

    Drums take channels 9, 25, 41, ... (channel % 16 == 9) as in General MIDI; the rest take the
    others. Own channels keep one instrument's pitch bends and controllers off another's notes.
    """
    assigned = [0] * len(instruments)
    for is_drum in (True, False):
        pool = [c for c in range(channels) if (c % 16 == 9) == is_drum]
        members = [i for i, inst in enumerate(instruments) if inst.is_drum == is_drum]
        if len(members) <= len(pool):
            for index, channel in zip(members, pool):
                assigned[index] = channel
            continue
        programs: dict[int, int] = {}
        for index in members:
            slot = programs.setdefault(instruments[index].program, len(programs))
            assigned[index] = pool[slot % len(pool)]
    return assigned


def midi_events(instruments: list[pretty_midi.Instrument], channels: list[int], sample_rate: int) -> list[tuple]:
    """(sample, kind, channel, a, b) for every note, bend and controller, in playing order."""
    events = []

    def at(seconds: float) -> int:
        return max(0, round(seconds * sample_rate))

    for instrument, channel in zip(instruments, channels):
        for note in instrument.notes:
            if not 0 <= note.pitch <= 127 or note.velocity <= 0:
                continue
            start = at(note.start)
            end = max(at(note.end), start + round(MIN_NOTE_S * sample_rate))
            events.append((start, NOTE_ON, channel, note.pitch, min(note.velocity, 127)))
            events.append((end, NOTE_OFF, channel, note.pitch, 0))
        for bend in instrument.pitch_bends:
            events.append((at(bend.time), PITCH_BEND, channel, max(-8192, min(8191, bend.pitch)), 0))
        for cc in instrument.control_changes:
            if 0 <= cc.number <= 127 and cc.number not in _BANK_SELECT_CCS:
                events.append((at(cc.time), CONTROL, channel, cc.number, max(0, min(127, cc.value))))
    events.sort()
    return events


def _sounding_notes(instrument: pretty_midi.Instrument) -> int:
    return sum(1 for n in instrument.notes if n.velocity > 0 and 0 <= n.pitch <= 127)


def split_for_synths(
    instruments: list[pretty_midi.Instrument], channels: list[int], font: SoundFont, parts: int = SYNTH_PARTS
) -> list[list[int]]:
    """Instrument indices for each synth: at most `parts` groups with about as many notes each.

    Instruments that share a channel (their controllers act on each other) or a SoundFont sample
    (FluidSynth counts a sample's users without a lock) always go together. The split depends on
    the MIDI and the font alone, so a piece is always split the same way.
    """
    # Union-find over instruments: join those on one channel or playing a common sample.
    leader = list(range(len(instruments)))

    def find(i: int) -> int:
        while leader[i] != i:
            leader[i] = leader[leader[i]]
            i = leader[i]
        return i

    samples = [font.presets.get(font.preset(inst)) for inst in instruments]
    for i in range(len(instruments)):
        for j in range(i):
            shares_samples = samples[i] is None or samples[j] is None or not samples[i].isdisjoint(samples[j])
            if channels[i] == channels[j] or shares_samples:
                leader[find(i)] = find(j)

    units: dict[int, list[int]] = {}
    for i in range(len(instruments)):
        units.setdefault(find(i), []).append(i)
    weight = {root: sum(_sounding_notes(instruments[i]) for i in members) for root, members in units.items()}
    groups: list[list[int]] = [[] for _ in range(max(1, parts))]
    loads = [0] * len(groups)
    for root in sorted(units, key=lambda r: (-weight[r], r)):  # heaviest first onto the lightest group
        lightest = loads.index(min(loads))
        groups[lightest] += units[root]
        loads[lightest] += weight[root]
    return [sorted(group) for group in groups if group and any(_sounding_notes(instruments[i]) for i in group)]


def _check_playable(midi: pretty_midi.PrettyMIDI) -> None:
    if not isinstance(midi, pretty_midi.PrettyMIDI):
        raise TypeError(f"expected a pretty_midi.PrettyMIDI, got {type(midi).__name__}")
    if not any(n.velocity > 0 and 0 <= n.pitch <= 127 for inst in midi.instruments for n in inst.notes):
        raise RenderError("This piece has no notes, so there is no audio to make.")


def _peak(audio: np.ndarray) -> float:
    """Largest absolute sample, without allocating |audio|."""
    return max(float(audio.max(initial=0.0)), -float(audio.min(initial=0.0)))


@dataclass(frozen=True)
class Tail:
    """When a synth stops after the last event: once `quiet_s` in a row (at least one block) has
    stayed `quiet_db` below its peak, and, with `voices_end`, every voice has finished."""

    quiet_db: float
    quiet_s: float
    voices_end: bool


FULL_TAIL = Tail(TAIL_SILENCE_DB, 0.0, voices_end=True)  # all of the release and reverb
CLIP_TAIL = Tail(CLIP_TAIL_DB, CLIP_TAIL_QUIET_S, voices_end=False)  # what a trimmed clip keeps


class _Synth:
    """A fresh stereo FluidSynth for one render, playing a borrowed SoundFont.

    FluidSynth's reverb and chorus keep modulation state that a system reset does not clear, so a
    reused synth plays the same MIDI slightly differently each time. A new synth (about 2 ms)
    starts from the same state every time: renders are independent and bit-for-bit repeatable.
    One core only: FluidSynth's multi-core mixing sums voices in a scheduling-dependent order.

    Creating, selecting programs and closing touch the shared font, so they happen in the calling
    thread; only `play` runs in a worker thread.
    """

    def __init__(self, font: SoundFont, sample_rate: int):
        self.sample_rate = int(sample_rate)
        self._font = font
        self._fs = fluidsynth.Synth(
            samplerate=float(sample_rate), channels=MIDI_CHANNELS, **{"synth.cpu-cores": 1}
        )
        self._sfid = _add_sfont(self._fs.synth, font._sfont)

    def close(self) -> None:
        """Stop every voice, hand the font back (so deleting the synth leaves it loaded), delete."""
        self._fs.system_reset()
        self._write(np.zeros((FLUID_BLOCK, 2), np.float32), 0, FLUID_BLOCK)  # let the reset take effect
        _remove_sfont(self._fs.synth, self._font._sfont)
        self._fs.delete()

    def select_programs(self, instruments: list[pretty_midi.Instrument], channels: list[int]) -> None:
        for instrument, channel in zip(instruments, channels):
            bank, program = self._font.preset(instrument)
            if self._fs.program_select(channel, self._sfid, bank, program) != fluidsynth.FLUID_OK:
                self._fs.program_select(channel, self._sfid, bank, 0)  # the font lacks it: standard kit/piano

    def play(self, events: list[tuple], audio: np.ndarray, end: int, tail: Tail,
             stop: threading.Event, progress: RenderProgress | None = None) -> int:
        """Play `events` into `audio` (zeros, C-contiguous float32 stereo, `end` plus room for the
        tail); return where the sound ends. Every PROGRESS_EVERY_S of audio it reports how far it
        is and raises _Stopped once `stop` is set; both happen between events, so the samples
        are written in the same runs (and come out the same) whether anyone listens or not."""
        position, base = 0, audio.ctypes.data
        every = max(1, round(PROGRESS_EVERY_S * self.sample_rate))
        check = every
        for sample, kind, channel, a, b in events:
            if sample > position:
                _write_float(self._fs.synth, sample - position, base, 2 * position, 2, base, 2 * position + 1, 2)
                position = sample
                if position >= check:
                    check = position + every
                    if stop.is_set():
                        raise _Stopped()
                    if progress is not None:
                        progress(min(1.0, position / max(end, 1)))
            self._send(kind, channel, a, b)
        self._write(audio, position, end)
        return self._ring_out(audio, end, tail)

    def _send(self, kind: int, channel: int, a: int, b: int) -> None:
        if kind == NOTE_ON:
            self._fs.noteon(channel, a, b)
        elif kind == NOTE_OFF:
            self._fs.noteoff(channel, a)
        elif kind == CONTROL:
            self._fs.cc(channel, a, b)
        else:
            self._fs.pitch_bend(channel, a)

    def _write(self, audio: np.ndarray, start: int, stop: int) -> None:
        """Synthesize samples [start, stop) into `audio` (C-contiguous float32 stereo)."""
        if stop > start:
            base = audio.ctypes.data
            _write_float(self._fs.synth, stop - start, base, 2 * start, 2, base, 2 * start + 1, 2)

    def _ring_out(self, audio: np.ndarray, position: int, tail: Tail) -> int:
        """Let voices release and the reverb decay until `tail` says the rest is silence."""
        quiet = _peak(audio[:position]) * 10 ** (tail.quiet_db / 20)
        quiet_blocks_needed = max(1, int(np.ceil(tail.quiet_s * self.sample_rate / TAIL_BLOCK)))
        quiet_blocks = 0
        while position < len(audio):
            self._write(audio, position, position + TAIL_BLOCK)
            quiet_blocks = quiet_blocks + 1 if _peak(audio[position : position + TAIL_BLOCK]) <= quiet else 0
            position += TAIL_BLOCK
            voices_done = not tail.voices_end or self._fs.get_active_voice_count() == 0
            if voices_done and quiet_blocks >= quiet_blocks_needed:
                break
        return position


def _play(
    font: SoundFont,
    midi: pretty_midi.PrettyMIDI,
    sample_rate: int,
    *,
    tail: Tail = FULL_TAIL,
    parts: int = SYNTH_PARTS,
    max_duration_s: float = float("inf"),
    progress: RenderProgress | None = None,
) -> np.ndarray:
    """The raw float32 (n, 2) audio of `midi`: each group of instruments on its own synth and
    thread, the outputs added in group order. The synth in this thread reports `progress`; if
    that raises, the others are stopped too, and the exception comes out."""
    _check_playable(midi)
    end_s = midi.get_end_time()
    if end_s > max_duration_s:
        raise RenderError(
            f"This piece lasts {_duration_words(end_s)}; the renderer plays at most "
            f"{_duration_words(max_duration_s)}."
        )
    instruments = midi.instruments
    channels = assign_channels(instruments)
    groups = split_for_synths(instruments, channels, font, parts)
    events = [midi_events([instruments[i] for i in g], [channels[i] for i in g], sample_rate) for g in groups]
    end = max(round(end_s * sample_rate), max(e[-1][0] for e in events))
    room = end + round(MAX_TAIL_S * sample_rate / TAIL_BLOCK) * TAIL_BLOCK
    buffers = [np.zeros((room, 2), dtype=np.float32) for _ in groups]

    synths: list[_Synth] = []
    try:
        for group in groups:
            synths.append(_Synth(font, sample_rate))
            synths[-1].select_programs([instruments[i] for i in group], [channels[i] for i in group])
        jobs = list(zip(synths, events, buffers))
        stop = threading.Event()
        with ThreadPoolExecutor(max(1, len(jobs) - 1), thread_name_prefix="aria-synth") as pool:
            others = [pool.submit(synth.play, ev, buf, end, tail, stop) for synth, ev, buf in jobs[1:]]
            synth, ev, buf = jobs[0]
            try:
                first = synth.play(ev, buf, end, tail, stop, progress)
            except BaseException:
                stop.set()  # abandoned: the other synths stop at their next look, not at the end
                raise
            lengths = [first] + [future.result() for future in others]
    finally:
        for synth in synths:
            synth.close()

    mixed = buffers[0]  # past where a synth stopped its buffer holds zeros: the sum is exact
    for buffer, length in zip(buffers[1:], lengths[1:]):
        mixed[:length] += buffer[:length]
    return mixed[: max(lengths)]


def synthesize(midi: pretty_midi.PrettyMIDI, *, soundfont: Path, sample_rate: int = 44100) -> np.ndarray:
    """Render `midi` with `soundfont` loaded just for it; float32 (n, 2) stereo, not normalised.

    For repeated renders use `Renderer`, which loads the font once.
    """
    _check_playable(midi)
    if not 8000 <= int(sample_rate) <= 96000:
        raise ValueError(f"sample_rate must be between 8000 and 96000 Hz, got {sample_rate}")
    font = SoundFont(_checked_soundfont(Path(soundfont), "given"))
    try:
        return _play(font, midi, int(sample_rate))
    finally:
        font.close()


# ---------------------------------------------------------------------------------------------
# Loudness and length


def peak_level_dbfs(audio: np.ndarray) -> float:
    """The sample peak in dB relative to full scale (-inf for silence)."""
    peak = _peak(np.asarray(audio))
    return 20 * float(np.log10(peak)) if peak > 0 else float("-inf")


def normalise(audio: np.ndarray, *, peak_dbfs: float = -1.0) -> np.ndarray:
    """Scale so the sample peak sits at `peak_dbfs`; headroom below 0 dBFS means it never clips.

    Silence stays silence.
    """
    if peak_dbfs > 0:
        raise ValueError(f"peak_dbfs must be at most 0 dBFS, got {peak_dbfs}")
    audio = np.asarray(audio, dtype=np.float32)
    peak = _peak(audio)
    if peak == 0:
        return audio.copy()
    return audio * _gain_to(peak_dbfs, peak)


def _gain_to(peak_dbfs: float, peak: float) -> np.float32:
    return np.float32(10 ** (peak_dbfs / 20) / peak)


def trim_silence(
    audio: np.ndarray, sample_rate: int, *, threshold_db: float = TRIM_DB, keep_tail_s: float = TRIM_KEEP_S
) -> np.ndarray:
    """Cut the silent end: keep `keep_tail_s` past the last sample louder than `threshold_db`.

    The threshold is relative to the clip's own peak, so it works before or after `normalise`.
    The kept tail fades to zero so the clip never ends on a click. All-silent audio comes back
    empty.
    """
    audio = np.asarray(audio, dtype=np.float32)
    peak = _peak(audio)
    if peak == 0:
        return audio[:0].copy()
    end, fade = _sound_end(audio, sample_rate, peak, threshold_db, keep_tail_s)
    return fade_out(audio[:end].copy(), fade)


def _sound_end(
    audio: np.ndarray, sample_rate: int, peak: float, threshold_db: float, keep_tail_s: float
) -> tuple[int, int]:
    """Where a trimmed clip ends, and how many samples before that fade out."""
    last_loud = _last_above(audio, peak * 10 ** (threshold_db / 20))
    end = min(len(audio), last_loud + 1 + round(keep_tail_s * sample_rate))
    return end, end - last_loud - 1


def trim_and_normalise(raw: np.ndarray, sample_rate: int, *, peak_dbfs: float = -1.0) -> np.ndarray:
    """`normalise(trim_silence(raw))`, computed in place in `raw` (which it then owns).

    A clip's full-length float audio is tens of MB; two fewer copies of it save real time.
    """
    peak = _peak(raw)
    if peak < SILENT_PEAK:
        raise RenderError("This piece rendered to silence: its instruments made no sound with this SoundFont.")
    end, fade = _sound_end(raw, sample_rate, peak, TRIM_DB, TRIM_KEEP_S)
    clip = fade_out(raw[:end], fade)
    clip *= _gain_to(peak_dbfs, peak)  # the faded tail is below TRIM_DB: the peak is unchanged
    return clip


def level_db(audio: np.ndarray, sample_rate: int) -> float:
    """The clip's mean-square level in dB over its sounding 400 ms blocks (-inf for silence): a
    plain, unweighted cousin of BS.1770's gated loudness, enough to tell soft from loud."""
    audio = np.asarray(audio, dtype=np.float32)
    block = max(1, round(LEVEL_BLOCK_S * sample_rate))
    frames = audio.reshape(len(audio), -1)
    usable = len(frames) // block * block
    if usable == 0:
        power = np.array([float(np.mean(np.square(frames, dtype=np.float64)))]) if len(frames) else np.zeros(1)
    else:
        power = np.mean(np.square(frames[:usable], dtype=np.float64).reshape(-1, block, frames.shape[1]), axis=(1, 2))
    if not power.any():
        return float("-inf")
    sounding = power[power >= power.max() * 10 ** (LEVEL_GATE_DB / 10)]
    return 10 * float(np.log10(np.mean(sounding)))


def mastering_gain_db(level: float) -> float:
    """The gain that moves a clip at `level` dB to TARGET + KEEP (level - REFERENCE): every clip
    comes closer to a listenable level, and the order and most of the gaps between them stay."""
    return MASTER_TARGET_DB + LOUDNESS_KEEP * (level - MASTER_REFERENCE_DB) - level


def limit_peaks(audio: np.ndarray, sample_rate: int, *, ceiling_dbfs: float = PEAK_CEILING_DBFS) -> np.ndarray:
    """A look-ahead peak limiter (in place): no sample ends above `ceiling_dbfs`.

    The gain is worked out per LIMITER_BLOCK: each block's own need, lowered to its neighbours'
    (so the gain is already down when a peak arrives), falling ahead of a peak at most
    LIMITER_ATTACK_S per 6 dB and recovering after it at most LIMITER_RELEASE_S per 6 dB; between block centres it moves linearly, never above either end, so every sample gets
    at most its own block's gain. Unlimited music passes unchanged."""
    ceiling = 10 ** (ceiling_dbfs / 20)
    if _peak(audio) <= ceiling:
        return audio
    n = len(audio)
    blocks = -(-n // LIMITER_BLOCK)
    padded = np.zeros((blocks * LIMITER_BLOCK,) + audio.shape[1:], np.float32)
    padded[:n] = np.abs(audio)
    peaks = padded.reshape(blocks, -1).max(axis=1)
    need = np.minimum(1.0, ceiling / np.maximum(peaks, 1e-12))
    need = np.minimum(need, np.minimum(np.roll(need, 1), np.roll(need, -1)))  # look ahead and behind
    release = 2.0 ** (LIMITER_BLOCK / (LIMITER_RELEASE_S * sample_rate))  # per block, in gain
    attack = 2.0 ** (LIMITER_BLOCK / (LIMITER_ATTACK_S * sample_rate))
    gain = need.copy()
    for k in range(1, blocks):  # release: rise slowly after a peak
        gain[k] = min(gain[k], gain[k - 1] * release)
    for k in range(blocks - 2, -1, -1):  # attack: fall smoothly before one
        gain[k] = min(gain[k], gain[k + 1] * attack)
    centres = (np.arange(blocks) + 0.5) * LIMITER_BLOCK
    curve = np.interp(np.arange(n), centres, gain).astype(np.float32)
    audio *= curve[:, None] if audio.ndim == 2 else curve
    np.clip(audio, -ceiling, ceiling, out=audio)  # rounding at the block edges
    return audio


def master_level(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """A clip at its mastered level (in place): `mastering_gain_db`, then the peak limiter."""
    level = level_db(audio, sample_rate)
    if not math.isfinite(level):
        return audio
    audio *= np.float32(10 ** (mastering_gain_db(level) / 20))
    return limit_peaks(audio, sample_rate)


def trim_and_master(raw: np.ndarray, sample_rate: int) -> np.ndarray:
    """`master_level(trim_silence(raw))`, in place in `raw` (which it then owns): what
    `Renderer.master` makes of a synthesized piece."""
    peak = _peak(raw)
    if peak < SILENT_PEAK:
        raise RenderError("This piece rendered to silence: its instruments made no sound with this SoundFont.")
    end, fade = _sound_end(raw, sample_rate, peak, TRIM_DB, TRIM_KEEP_S)
    return master_level(fade_out(raw[:end], fade), sample_rate)


def _last_above(audio: np.ndarray, level: float, block: int = 1 << 14) -> int:
    """Index of the last frame with a sample above `level`, searching back from the end."""
    for stop in range(len(audio), 0, -block):
        start = max(0, stop - block)
        frames = np.abs(audio[start:stop]) > level
        if frames.ndim == 2:
            frames = frames.any(axis=1)
        hits = np.flatnonzero(frames)
        if hits.size:
            return start + int(hits[-1])
    return -1


def fade_out(audio: np.ndarray, samples: int) -> np.ndarray:
    """Fade the last `samples` of `audio` (in place) along a raised-cosine curve to zero."""
    samples = min(samples, len(audio))
    if samples > 0:
        curve = 0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, samples, dtype=np.float32))
        audio[len(audio) - samples :] *= curve[:, None] if audio.ndim == 2 else curve
    return audio


# ---------------------------------------------------------------------------------------------
# Encoding


@dataclass(frozen=True)
class AudioFormat:
    name: str  # file extension
    container: str  # libsndfile major format
    codec: str  # libsndfile subtype
    mime_type: str


FORMATS = {
    "ogg": AudioFormat("ogg", "OGG", "VORBIS", "audio/ogg"),
    "mp3": AudioFormat("mp3", "MP3", "MPEG_LAYER_III", "audio/mpeg"),
}


def audio_format(fmt: str) -> AudioFormat:
    """The format called `fmt`, if this libsndfile can write it; else RenderError saying why."""
    spec = FORMATS.get(str(fmt).lower().lstrip("."))
    if spec is None:
        raise RenderError(f"Unknown audio format {fmt!r}: choose one of {', '.join(FORMATS)}.")
    if spec.codec not in soundfile.available_subtypes(spec.container):
        raise RenderError(
            f"{spec.name.upper()} audio is not available: this libsndfile "
            f"({soundfile.__libsndfile_version__}) was built without it (MP3 needs libsndfile "
            f"1.1 or newer with LAME and mpg123). Use ogg instead."
        )
    return spec


_ENCODE_BLOCK_FRAMES = 16384  # frames per write; see encode()


def encode(
    audio: np.ndarray, sample_rate: int, fmt: str = "ogg", *, quality: float = DEFAULT_QUALITY,
    progress: RenderProgress | None = None,
) -> bytes:
    """Compress float audio; `quality` runs from 0 (smallest) to 1 (best). `progress`, if
    given, hears the fraction encoded after each block (and may raise to abandon it)."""
    spec = audio_format(fmt)
    if not 0.0 <= quality <= 1.0:
        raise ValueError(f"quality must be between 0 and 1, got {quality}")
    buffer = io.BytesIO()
    channels = 1 if audio.ndim == 1 else audio.shape[1]
    try:
        # In blocks: libvorbis allocates all pending input on the stack, so writing a minute of
        # audio at once overflows a thread's stack and kills the process (libsndfile #1095).
        with soundfile.SoundFile(
            buffer,
            "w",
            sample_rate,
            channels,
            format=spec.container,
            subtype=spec.codec,
            compression_level=1.0 - quality,
        ) as out:
            for start in range(0, len(audio), _ENCODE_BLOCK_FRAMES):
                out.write(audio[start : start + _ENCODE_BLOCK_FRAMES])
                if progress is not None:
                    progress(min(1.0, (start + _ENCODE_BLOCK_FRAMES) / len(audio)))
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise RenderError(
            f"Could not encode {spec.name.upper()} audio at {sample_rate} Hz: {error}"
        ) from error
    return buffer.getvalue()


def _size_words(n_bytes: int) -> str:
    if n_bytes >= 1 << 20 and n_bytes % (1 << 20) == 0:
        return f"{n_bytes >> 20} MiB"
    if n_bytes >= 1_000_000:
        return f"{n_bytes / 1_000_000:.3g} MB"
    return f"{n_bytes / 1000:.3g} kB"


def _duration_words(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


# libvorbis's nominal stereo bit rates (kbit/s) at quality 0, 0.1, ..., 1: a guide to how much
# smaller a lower quality will be, so the search skips settings that cannot fit.
_NOMINAL_KBPS = (64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 500)


def _predicted_size(size: int, quality: float, lower: float) -> float:
    grid = np.linspace(0.0, 1.0, len(_NOMINAL_KBPS))
    return size * float(np.interp(lower, grid, _NOMINAL_KBPS) / np.interp(quality, grid, _NOMINAL_KBPS))


def encode_within(
    audio: np.ndarray,
    sample_rate: int,
    fmt: str,
    max_bytes: int | None,
    quality: float = DEFAULT_QUALITY,
    *,
    encoded: bytes | None = None,
) -> tuple[bytes, np.ndarray, list[str]]:
    """Encode, lowering the quality and then shortening (with a fade-out) until it fits.

    `encoded` is `audio` already encoded at `quality`, when the caller has it. Returns the
    encoded clip, the audio it holds and notes saying what had to be done.
    """
    data = encoded if encoded is not None else encode(audio, sample_rate, fmt, quality=quality)
    if max_bytes is not None and max_bytes <= 0:
        raise AudioTooLarge("There is no room left for the audio within the upload limit.")
    if max_bytes is None or len(data) <= max_bytes:
        return data, audio, []
    limit = f"the {_size_words(max_bytes)} upload limit"

    lower = [q for q in LOWER_QUALITIES if q < quality]
    while lower:
        rung = lower.pop(0)
        if lower and _predicted_size(len(data), quality, rung) > max_bytes:
            continue  # not even close: try the next rung down without encoding this one
        data, quality = encode(audio, sample_rate, fmt, quality=rung), rung
        if len(data) <= max_bytes:
            return data, audio, [f"audio encoded at lower quality to fit {limit}"]

    full_s = len(audio) / sample_rate
    clip = audio
    while len(data) > max_bytes:
        seconds = len(clip) / sample_rate * max_bytes * SIZE_MARGIN / len(data)
        seconds = float(np.floor(seconds)) if seconds >= 10 else round(seconds, 1)
        if seconds < MIN_CLIP_S:
            raise AudioTooLarge(f"The audio cannot fit in {limit}: even {MIN_CLIP_S:g} s of it is too large.")
        clip = audio[: round(seconds * sample_rate)].copy()
        clip = fade_out(clip, round(min(FADE_OUT_S, seconds / 4) * sample_rate))
        data = encode(clip, sample_rate, fmt, quality=quality)
    shortened = f"{_duration_words(len(clip) / sample_rate)} (of {_duration_words(full_s)})"
    return data, clip, [f"audio encoded at lower quality and shortened to {shortened} to fit {limit}"]


# ---------------------------------------------------------------------------------------------
# The renderer


@dataclass
class RenderedAudio:
    data: bytes
    format: str  # "ogg" or "mp3", also the file extension
    mime_type: str
    sample_rate: int
    channels: int
    duration_s: float
    peak_dbfs: float  # of the audio before lossy encoding
    soundfont: str  # path of the font that played it
    notes: list[str] = field(default_factory=list)  # what was done to fit a size limit
    timings: dict[str, float] = field(default_factory=dict)  # seconds: synthesis, mastering, encoding


@dataclass
class MasteredAudio:
    """A piece synthesized, trimmed and mastered: float32 (n, 2) audio ready to encode."""

    audio: np.ndarray
    sample_rate: int
    timings: dict[str, float]  # seconds: synthesis, mastering


ByteLimit = int | None | Callable[[], int | None]
"""A byte budget, or a function giving it: called once the clip is encoded, so the caller can
work it out (write the MIDI, draw the pictures) while the audio renders."""


class Renderer:
    """Turns MIDI into an encoded clip, keeping one SoundFont loaded across renders.

    Loading FluidR3_GM (140 MB) takes a noticeable moment, so a process keeps one Renderer.
    Synthesis (on SYNTH_PARTS threads) is serialised by a lock and encoding runs outside it;
    each render plays on fresh synths, so the same MIDI always gives the same audio.
    """

    def __init__(
        self,
        soundfont: str | os.PathLike | None = None,
        sample_rate: int = 44100,
        *,
        quality: float = DEFAULT_QUALITY,
        max_duration_s: float = 600.0,
        synth_parts: int = SYNTH_PARTS,
    ):
        if not 8000 <= int(sample_rate) <= 96000:
            raise ValueError(f"sample_rate must be between 8000 and 96000 Hz, got {sample_rate}")
        if synth_parts < 1:
            raise ValueError(f"synth_parts must be at least 1, got {synth_parts}")
        self.soundfont = find_soundfont(soundfont)
        self.sample_rate = int(sample_rate)
        self.quality = quality
        self.max_duration_s = max_duration_s
        self.synth_parts = synth_parts
        self._font: SoundFont | None = SoundFont(self.soundfont)
        self._lock = threading.Lock()

    def synthesize(self, midi: pretty_midi.PrettyMIDI, *, tail: Tail = FULL_TAIL,
                   progress: RenderProgress | None = None) -> np.ndarray:
        """Raw float32 (n, 2) audio, as the module-level `synthesize` gives, without reloading."""
        _check_playable(midi)
        with self._lock:
            if self._font is None:
                raise RenderError("This renderer has been closed.")
            return _play(
                self._font, midi, self.sample_rate,
                tail=tail, parts=self.synth_parts, max_duration_s=self.max_duration_s, progress=progress,
            )  # fmt: skip

    def master(self, midi: pretty_midi.PrettyMIDI, *, progress: RenderProgress | None = None) -> MasteredAudio:
        """Synthesize, trim the silent tail and master (its own loudness kept, peaks limited under
        PEAK_CEILING_DBFS): the clip, before encoding."""
        started = time.perf_counter()
        raw = self.synthesize(midi, tail=CLIP_TAIL, progress=progress)
        synthesized = time.perf_counter()
        audio = trim_and_master(raw, self.sample_rate)
        timings = {"synthesis": synthesized - started, "mastering": time.perf_counter() - synthesized}
        return MasteredAudio(audio, self.sample_rate, timings)

    def encode(self, mastered: MasteredAudio, fmt: str = "ogg", *, max_bytes: ByteLimit = None,
               progress: RenderProgress | None = None) -> RenderedAudio:
        """Encode a mastered clip within `max_bytes` (see `encode_within`); `progress` follows
        the first, full-quality encoding, which is nearly all of the work.

        Raises AudioTooLarge when nothing audible fits, with the whole clip as `unfitted`.
        """
        spec = audio_format(fmt)
        audio, timings = mastered.audio, dict(mastered.timings)
        started = time.perf_counter()
        full = encode(audio, mastered.sample_rate, spec.name, quality=self.quality, progress=progress)
        limit = max_bytes() if callable(max_bytes) else max_bytes
        try:
            data, clip, notes = encode_within(audio, mastered.sample_rate, spec.name, limit, self.quality, encoded=full)
        except AudioTooLarge as error:
            timings["encoding"] = time.perf_counter() - started
            error.unfitted = self._rendered(spec, full, audio, [], timings)
            raise
        timings["encoding"] = time.perf_counter() - started
        return self._rendered(spec, data, clip, notes, timings)

    def render(self, midi: pretty_midi.PrettyMIDI, fmt: str = "ogg", *, max_bytes: ByteLimit = None) -> RenderedAudio:
        """`encode(master(midi))`: synthesize, trim, master and encode (within `max_bytes`)."""
        audio_format(fmt)  # refuse an unusable format before the work
        if not callable(max_bytes) and max_bytes is not None and max_bytes <= 0:
            raise AudioTooLarge("There is no room left for the audio within the upload limit.")
        return self.encode(self.master(midi), fmt, max_bytes=max_bytes)

    def _rendered(
        self, spec: AudioFormat, data: bytes, audio: np.ndarray, notes: list[str], timings: dict[str, float]
    ) -> RenderedAudio:
        return RenderedAudio(
            data=data,
            format=spec.name,
            mime_type=spec.mime_type,
            sample_rate=self.sample_rate,
            channels=audio.shape[1],
            duration_s=len(audio) / self.sample_rate,
            peak_dbfs=round(peak_level_dbfs(audio), 2),
            soundfont=str(self.soundfont),
            notes=notes,
            timings=timings,
        )

    def close(self) -> None:
        """Free the loaded font."""
        with self._lock:
            if self._font is not None:
                self._font.close()
                self._font = None

    def __enter__(self) -> "Renderer":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
