"""MIDI -> audio clip: SoundFont synthesis in process, loudness, silent-tail trimming, encoding.

One stereo FluidSynth plays the whole piece: every MIDI instrument gets a synth channel and its
program (drums on channel 9, bank 128, as General MIDI does), and the note, pitch-bend and
control-change events are fed in time order with audio rendered between them (events land on
FluidSynth's 64-sample blocks, under 1.5 ms at 44.1 kHz). The output is float, so nothing clips
before `normalise` sets the peak. The SoundFont is loaded once per `Renderer`; each render plays
on a fresh synth that borrows it, so the same MIDI always gives bit-identical audio.

A piece with no notes is an error (`RenderError`), not a silent clip: a silent attachment tells a
user nothing, while the error says what went wrong.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from ctypes import CFUNCTYPE, c_char_p, c_int, c_void_p
from dataclasses import dataclass, field
from pathlib import Path

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

DEFAULT_QUALITY = 0.5  # encoder quality 0..1; Vorbis at 0.5 is about 160 kbit/s stereo
LOWER_QUALITIES = (0.3, 0.1, 0.0)  # tried in turn when a clip must fit a byte limit
SIZE_MARGIN = 0.95  # aim under the limit: encoded size is not exactly proportional to length
MIN_CLIP_S = 1.0
FADE_OUT_S = 3.0


class RenderError(RuntimeError):
    """A piece could not be turned into audio; the message is fit to show a user."""


class AudioTooLarge(RenderError):
    """The clip cannot fit the byte budget at any quality or length."""


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
_write_float = fluidsynth.cfunc(
    "fluid_synth_write_float", c_int,
    ("synth", c_void_p, 1), ("len", c_int, 1),
    ("lout", c_void_p, 1), ("loff", c_int, 1), ("lincr", c_int, 1),
    ("rout", c_void_p, 1), ("roff", c_int, 1), ("rincr", c_int, 1),
)  # fmt: skip
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


class SoundFont:
    """A SoundFont loaded into memory once, then lent to a fresh synth for every render.

    FluidR3_GM is 140 MB; loading it takes a noticeable moment, lending it takes none.
    """

    def __init__(self, path: Path):
        _route_fluidsynth_logs()
        self.path = Path(path)
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


def midi_events(midi: pretty_midi.PrettyMIDI, channels: list[int], sample_rate: int) -> list[tuple]:
    """(sample, kind, channel, a, b) for every note, bend and controller, in playing order."""
    events = []

    def at(seconds: float) -> int:
        return max(0, round(seconds * sample_rate))

    for instrument, channel in zip(midi.instruments, channels):
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


def _check_playable(midi: pretty_midi.PrettyMIDI) -> None:
    if not isinstance(midi, pretty_midi.PrettyMIDI):
        raise TypeError(f"expected a pretty_midi.PrettyMIDI, got {type(midi).__name__}")
    if not any(n.velocity > 0 and 0 <= n.pitch <= 127 for inst in midi.instruments for n in inst.notes):
        raise RenderError("This piece has no notes, so there is no audio to make.")


def _peak(audio: np.ndarray) -> float:
    """Largest absolute sample, without allocating |audio|."""
    return max(float(audio.max(initial=0.0)), -float(audio.min(initial=0.0)))


class _Synth:
    """A fresh stereo FluidSynth for one render, playing a borrowed SoundFont.

    FluidSynth's reverb and chorus keep modulation state that a system reset does not clear, so a
    reused synth plays the same MIDI slightly differently each time. A new synth (about 2 ms)
    starts from the same state every time: renders are independent and bit-for-bit repeatable.
    One core only: FluidSynth's multi-core mixing sums voices in a scheduling-dependent order.
    """

    def __init__(self, font: SoundFont, sample_rate: int):
        self.sample_rate = int(sample_rate)
        self._font = font
        self._fs = fluidsynth.Synth(
            samplerate=float(sample_rate), channels=MIDI_CHANNELS, **{"synth.cpu-cores": 1}
        )
        self._sfid = _add_sfont(self._fs.synth, font._sfont)

    def __enter__(self) -> "_Synth":
        return self

    def __exit__(self, *exc_info) -> None:
        """Stop every voice, hand the font back (so deleting the synth leaves it loaded), delete."""
        self._fs.system_reset()
        self._write(np.zeros((FLUID_BLOCK, 2), np.float32), 0, FLUID_BLOCK)  # let the reset take effect
        _remove_sfont(self._fs.synth, self._font._sfont)
        self._fs.delete()

    def play(self, midi: pretty_midi.PrettyMIDI, max_duration_s: float = float("inf")) -> np.ndarray:
        """The raw float32 (n, 2) audio of `midi`, up to its last event plus the release tail."""
        _check_playable(midi)
        end_s = midi.get_end_time()
        if end_s > max_duration_s:
            raise RenderError(
                f"This piece lasts {_duration_words(end_s)}; the renderer plays at most "
                f"{_duration_words(max_duration_s)}."
            )
        channels = assign_channels(midi.instruments)
        self._select_programs(midi.instruments, channels)
        events = midi_events(midi, channels, self.sample_rate)
        end = max(round(end_s * self.sample_rate), events[-1][0])
        tail = round(MAX_TAIL_S * self.sample_rate / TAIL_BLOCK) * TAIL_BLOCK
        audio = np.zeros((end + tail, 2), dtype=np.float32)

        position = 0
        for sample, kind, channel, a, b in events:
            if sample > position:
                self._write(audio, position, sample)
                position = sample
            self._send(kind, channel, a, b)
        self._write(audio, position, end)
        return audio[: self._ring_out(audio, end)]

    def _select_programs(self, instruments: list[pretty_midi.Instrument], channels: list[int]) -> None:
        for instrument, channel in zip(instruments, channels):
            bank = DRUM_BANK if instrument.is_drum else 0
            program = instrument.program if 0 <= instrument.program <= 127 else 0
            if self._fs.program_select(channel, self._sfid, bank, program) != fluidsynth.FLUID_OK:
                self._fs.program_select(channel, self._sfid, bank, 0)  # the font lacks it: standard kit/piano

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

    def _ring_out(self, audio: np.ndarray, position: int) -> int:
        """Let voices release and the reverb decay; return where the sound ends."""
        quiet = _peak(audio[:position]) * 10 ** (TAIL_SILENCE_DB / 20)
        while position < len(audio):
            self._write(audio, position, position + TAIL_BLOCK)
            block_peak = _peak(audio[position : position + TAIL_BLOCK])
            position += TAIL_BLOCK
            if self._fs.get_active_voice_count() == 0 and block_peak <= quiet:
                break
        return position


def synthesize(midi: pretty_midi.PrettyMIDI, *, soundfont: Path, sample_rate: int = 44100) -> np.ndarray:
    """Render `midi` with `soundfont` loaded just for it; float32 (n, 2) stereo, not normalised.

    For repeated renders use `Renderer`, which loads the font once.
    """
    _check_playable(midi)
    if not 8000 <= int(sample_rate) <= 96000:
        raise ValueError(f"sample_rate must be between 8000 and 96000 Hz, got {sample_rate}")
    font = SoundFont(_checked_soundfont(Path(soundfont), "given"))
    try:
        with _Synth(font, sample_rate) as synth:
            return synth.play(midi)
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
    return audio * np.float32(10 ** (peak_dbfs / 20) / peak)


def trim_silence(
    audio: np.ndarray, sample_rate: int, *, threshold_db: float = -60.0, keep_tail_s: float = 0.25
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
    last_loud = _last_above(audio, peak * 10 ** (threshold_db / 20))
    end = min(len(audio), last_loud + 1 + round(keep_tail_s * sample_rate))
    return fade_out(audio[:end].copy(), end - last_loud - 1)


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
    audio: np.ndarray, sample_rate: int, fmt: str = "ogg", *, quality: float = DEFAULT_QUALITY
) -> bytes:
    """Compress float audio; `quality` runs from 0 (smallest) to 1 (best)."""
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
    audio: np.ndarray, sample_rate: int, fmt: str, max_bytes: int | None, quality: float = DEFAULT_QUALITY
) -> tuple[bytes, np.ndarray, list[str]]:
    """Encode, lowering the quality and then shortening (with a fade-out) until it fits.

    Returns the encoded clip, the audio it holds and notes saying what had to be done.
    """
    data = encode(audio, sample_rate, fmt, quality=quality)
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


class Renderer:
    """Turns MIDI into an encoded clip, keeping one SoundFont loaded across renders.

    Loading FluidR3_GM (140 MB) takes a noticeable moment, so a process keeps one Renderer.
    Synthesis is serialised by a lock (encoding runs outside it), and each render plays on a
    fresh synth, so the same MIDI always gives the same audio.
    """

    def __init__(
        self,
        soundfont: str | os.PathLike | None = None,
        sample_rate: int = 44100,
        *,
        quality: float = DEFAULT_QUALITY,
        max_duration_s: float = 600.0,
    ):
        if not 8000 <= int(sample_rate) <= 96000:
            raise ValueError(f"sample_rate must be between 8000 and 96000 Hz, got {sample_rate}")
        self.soundfont = find_soundfont(soundfont)
        self.sample_rate = int(sample_rate)
        self.quality = quality
        self.max_duration_s = max_duration_s
        self._font: SoundFont | None = SoundFont(self.soundfont)
        self._lock = threading.Lock()

    def synthesize(self, midi: pretty_midi.PrettyMIDI) -> np.ndarray:
        """Raw float32 (n, 2) audio, as the module-level `synthesize` gives, without reloading."""
        _check_playable(midi)
        with self._lock:
            if self._font is None:
                raise RenderError("This renderer has been closed.")
            with _Synth(self._font, self.sample_rate) as synth:
                return synth.play(midi, self.max_duration_s)

    def render(
        self, midi: pretty_midi.PrettyMIDI, fmt: str = "ogg", *, max_bytes: int | None = None
    ) -> RenderedAudio:
        """Synthesize, trim the silent tail, normalise to -1 dBFS and encode (within `max_bytes`)."""
        spec = audio_format(fmt)  # refuse an unusable format before the work
        if max_bytes is not None and max_bytes <= 0:
            raise AudioTooLarge("There is no room left for the audio within the upload limit.")
        raw = self.synthesize(midi)
        if _peak(raw) < SILENT_PEAK:
            raise RenderError(
                "This piece rendered to silence: its instruments made no sound with this SoundFont."
            )
        audio = normalise(trim_silence(raw, self.sample_rate))
        data, audio, notes = encode_within(audio, self.sample_rate, spec.name, max_bytes, self.quality)
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
