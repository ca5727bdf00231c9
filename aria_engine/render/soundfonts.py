"""Which SoundFont plays, and what is inside it: resolution, the SF2 preset map, the loaded font."""

from __future__ import annotations

import logging
import os
import stat
import struct
from pathlib import Path

import fluidsynth
import pretty_midi

from aria_engine.render.errors import SoundFontError
from aria_engine.render.fluid import _route_fluidsynth_logs

logger = logging.getLogger("aria_engine.render")

SOUNDFONT_ENV = "ARIA_SOUNDFONT"
FLUIDR3_PATH = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")  # Debian's fluid-soundfont-gm
TIMGM_PATH = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"  # ships inside pretty_midi
DRUM_BANK = 128


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
    """`path` if it is a readable SoundFont 2 file (a RIFF 'sfbk' chunk), else SoundFontError.

    Only a regular file is read: a FIFO would block the open (or the read) forever, and a device
    such as /dev/zero never ends. The path is looked at first, for a plain message, and the file
    is then opened without blocking and looked at again, in case it changed in between."""
    where = f"The SoundFont {path} ({source})"
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise SoundFontError(f"{where} does not exist.") from None
    except OSError as error:
        raise SoundFontError(f"{where} cannot be read: {error.strerror or error}.") from None
    if stat.S_ISDIR(mode):
        raise SoundFontError(f"{where} is a directory, not a SoundFont file.")
    if not stat.S_ISREG(mode):
        raise SoundFontError(f"{where} is not a regular file (a pipe, device or socket), so it is not a SoundFont.")
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(descriptor, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                raise SoundFontError(f"{where} is not a regular file, so it is not a SoundFont.")
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
