"""Emotion -> music. A composer turns an Emotion (or a Trajectory) into a Composition."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import pretty_midi

from aria_engine.emotion import Emotion, Trajectory
from aria_engine.options import GenerationOptions

ProgressFn = Callable[[float], None]
"""Called with the fraction (0..1) of a stage that is done."""

# The five instrument families of the published models, in their vocabulary order.
FAMILIES = ("drums", "guitar", "bass", "piano", "strings")


def instrument_family(instrument: pretty_midi.Instrument) -> str:
    """Which of the five families a MIDI track belongs to (by General MIDI program)."""
    if instrument.is_drum:
        return "drums"
    program = instrument.program
    if 24 <= program <= 31:
        return "guitar"
    if 32 <= program <= 39:
        return "bass"
    if 40 <= program <= 55:
        return "strings"
    return "piano"


@dataclass
class Composition:
    """A composed piece and how it was made."""

    midi: pretty_midi.PrettyMIDI
    composer: str  # "procedural" or "transformer"
    seed: int
    mode: str | None = None  # conditioning mode (transformer only)
    tokens: list[int] | None = None  # generated token indices after <START> (transformer only)
    notes: list[str] = field(default_factory=list)  # things worth telling the user
    stats: dict = field(default_factory=dict)  # e.g. tokens_per_s, attempts

    @property
    def instruments(self) -> list[str]:
        """Families that actually play at least one note, in canonical order."""
        present = {instrument_family(i) for i in self.midi.instruments if i.notes}
        return [f for f in FAMILIES if f in present]

    @property
    def duration_s(self) -> float:
        return float(self.midi.get_end_time())


class Composer(Protocol):
    name: str

    def compose(
        self,
        emotion: Emotion | Trajectory,
        options: GenerationOptions,
        progress: ProgressFn | None = None,
    ) -> Composition:
        """`options.seed` is always set by the caller; the same seed gives the same piece."""
        ...

    def compose_batch(
        self,
        requests: Sequence[tuple[Emotion | Trajectory, GenerationOptions]],
        progress: ProgressFn | None = None,
    ) -> list[Composition]:
        """Several pieces at once; each equals what `compose` gives it alone."""
        ...
