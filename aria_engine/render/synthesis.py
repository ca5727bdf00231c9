"""MIDI events fed to FluidSynth in time order, on synths side by side (see the package docstring)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import fluidsynth
import numpy as np
import pretty_midi

from aria_engine.render.errors import RenderError, RenderProgress, _Stopped
from aria_engine.render.fluid import _add_sfont, _remove_sfont, _write_float
from aria_engine.render.encoding import _duration_words
from aria_engine.render.mastering import TRIM_DB, _peak
from aria_engine.render.soundfonts import SoundFont, _checked_soundfont

MIDI_CHANNELS = 256  # FluidSynth allows more than 16; drums use those with channel % 16 == 9
FLUID_BLOCK = 64  # FluidSynth renders in blocks of this many samples
TAIL_BLOCK = 64 * FLUID_BLOCK
MAX_TAIL_S = 4.0  # release and reverb after the last event, at most
TAIL_SILENCE_DB = -80.0  # the tail ends once voices are done and a block is this far below the peak
MIN_NOTE_S = 0.005  # zero-length notes still sound briefly (and always end)
SYNTH_PARTS = 2  # synths that play one piece side by side: ARIA's machines have two cores
# A clip's synths stop ringing once this long has stayed this far below their peak: the clip is
# cut at TRIM_DB anyway, so synthesizing the quieter rest would be thrown away.
CLIP_TAIL_DB = TRIM_DB - 10.0
CLIP_TAIL_QUIET_S = 0.5

PROGRESS_EVERY_S = 0.5  # of audio: how often synthesis reports progress and looks for a stop

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


