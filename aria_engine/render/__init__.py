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

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pretty_midi

from aria_engine.render.encoding import DEFAULT_QUALITY, AudioFormat, audio_format, encode, encode_within
from aria_engine.render.errors import AudioTooLarge, RenderError, RenderProgress, SoundFontError
from aria_engine.render.mastering import peak_level_dbfs, trim_and_master
from aria_engine.render.soundfonts import SoundFont, find_soundfont
from aria_engine.render.synthesis import CLIP_TAIL, FULL_TAIL, SYNTH_PARTS, Tail, _check_playable, _play

__all__ = [  # what the rest of the project uses; the parts live in the submodules
    "AudioTooLarge", "MasteredAudio", "RenderError", "RenderProgress", "RenderedAudio", "Renderer",
    "SYNTH_PARTS", "SoundFontError", "audio_format", "find_soundfont",
]



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
