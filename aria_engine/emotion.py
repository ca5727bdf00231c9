"""Points on the valence-arousal plane, the words people use for them, and trajectories.

Valence (unpleasant -1 .. +1 pleasant) and arousal (calm -1 .. +1 energetic) follow Russell's
circumplex model of affect; the eight labels are its compass points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

# Compass points of the circumplex, counter-clockwise from "pleasant" (angle 0).
_LABELS = ("content", "joyful", "excited", "tense", "sad", "gloomy", "tired", "serene")
_NEUTRAL_RADIUS = 0.15  # below this distance from the origin a point reads as "neutral"
_WORD_THRESHOLD = 0.15

QUADRANTS = {
    (1, 1): "happy / excited",
    (-1, 1): "angry / tense",
    (-1, -1): "sad / depressed",
    (1, -1): "calm / serene",
}

# Discrete-token models bin each axis into five equal bins over [-1, 1] (ids -2..2).
_BIN_EDGES = tuple(-1 - 1e-12 + i * (2 + 2e-12) / 5 for i in range(6))


def _finite_unit(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not -1.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between -1 and 1, got {value:g}")
    return value


def clamp_unit(value: float) -> float:
    """Clamp to [-1, 1]; NaN becomes 0 (a model output must never poison a reply)."""
    value = float(value)
    if math.isnan(value):
        return 0.0
    return max(-1.0, min(1.0, value))


def discrete_bin(value: float) -> int:
    """The bin id (-2..2) of one axis, as the midi-emotion discrete_token models expect."""
    for k in range(5):
        if value < _BIN_EDGES[k + 1]:
            return k - 2
    return 2


@dataclass(frozen=True)
class Emotion:
    """One point on the valence-arousal plane, both axes in [-1, 1]."""

    valence: float
    arousal: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "valence", _finite_unit("valence", self.valence))
        object.__setattr__(self, "arousal", _finite_unit("arousal", self.arousal))

    @classmethod
    def clamped(cls, valence: float, arousal: float) -> "Emotion":
        """For model outputs: clamp instead of refusing."""
        return cls(clamp_unit(valence), clamp_unit(arousal))

    @property
    def valence_word(self) -> str:
        if self.valence > _WORD_THRESHOLD:
            return "pleasant"
        if self.valence < -_WORD_THRESHOLD:
            return "unpleasant"
        return "neutral"

    @property
    def arousal_word(self) -> str:
        if self.arousal > _WORD_THRESHOLD:
            return "energetic"
        if self.arousal < -_WORD_THRESHOLD:
            return "calm"
        return "moderate"

    @property
    def label(self) -> str:
        """The nearest of the circumplex's eight compass points, or "neutral" near the origin."""
        if math.hypot(self.valence, self.arousal) < _NEUTRAL_RADIUS:
            return "neutral"
        angle = math.degrees(math.atan2(self.arousal, self.valence)) % 360.0
        return _LABELS[int((angle + 22.5) // 45) % 8]

    @property
    def quadrant(self) -> str:
        return QUADRANTS[(1 if self.valence >= 0 else -1, 1 if self.arousal >= 0 else -1)]

    @property
    def bins(self) -> tuple[int, int]:
        """(valence bin, arousal bin), each -2..2."""
        return discrete_bin(self.valence), discrete_bin(self.arousal)

    def readout(self) -> str:
        """`valence +0.62 (pleasant)  arousal -0.31 (calm)  -> serene`"""
        return (
            f"valence {self.valence:+.2f} ({self.valence_word})  "
            f"arousal {self.arousal:+.2f} ({self.arousal_word})  -> {self.label}"
        )

    def as_dict(self) -> dict:
        return {"valence": round(self.valence, 4), "arousal": round(self.arousal, 4), "label": self.label}


@dataclass(frozen=True)
class Trajectory:
    """Emotion varying along a piece: keyframes at fractions 0..1, linearly interpolated."""

    keyframes: tuple[tuple[float, Emotion], ...]

    def __post_init__(self) -> None:
        if not self.keyframes:
            raise ValueError("a trajectory needs at least one keyframe")
        frames = tuple(sorted(((float(t), e) for t, e in self.keyframes), key=lambda f: f[0]))
        if frames[0][0] < 0 or frames[-1][0] > 1:
            raise ValueError("trajectory keyframes must lie between 0 and 1")
        object.__setattr__(self, "keyframes", frames)

    @classmethod
    def constant(cls, emotion: Emotion) -> "Trajectory":
        return cls(((0.0, emotion),))

    @classmethod
    def linear(cls, points: Sequence[Emotion]) -> "Trajectory":
        """Evenly spaced keyframes from the first to the last point."""
        if len(points) == 1:
            return cls.constant(points[0])
        n = len(points) - 1
        return cls(tuple((i / n, p) for i, p in enumerate(points)))

    def at(self, fraction: float) -> Emotion:
        frames = self.keyframes
        if fraction <= frames[0][0]:
            return frames[0][1]
        for (t0, e0), (t1, e1) in zip(frames, frames[1:]):
            if fraction <= t1:
                w = 0.0 if t1 == t0 else (fraction - t0) / (t1 - t0)
                return Emotion(
                    e0.valence + w * (e1.valence - e0.valence),
                    e0.arousal + w * (e1.arousal - e0.arousal),
                )
        return frames[-1][1]
