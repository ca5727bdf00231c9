"""Generation options, with ARIA's defaults, validated once at the edge."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, replace

MODES = ("continuous_concat", "continuous_token", "discrete_token")
COMPOSERS = ("auto", "procedural", "transformer")
ENCODERS = ("auto", "palette", "clip")
DECODE_STRATEGIES = ("fast", "exact")
AUDIO_FORMATS = ("ogg", "mp3")

MAX_SEED = 2**63 - 1


def random_seed() -> int:
    """A fresh seed small enough to type back in (reported with every result)."""
    return secrets.randbelow(2**31)


@dataclass(frozen=True)
class GenerationOptions:
    """Everything that shapes one piece. Defaults are ARIA's published ones."""

    composer: str = "auto"
    encoder: str = "auto"
    mode: str = "continuous_concat"
    length: int = 512  # transformer: tokens to generate after <START>
    duration_s: float = 30.0  # procedural: length of the piece in seconds
    note_temperature: float = 1.2
    rest_temperature: float = 1.2
    top_p: float = 0.7
    top_k: int = 0  # 0 = off
    min_instruments: int = 1
    seed: int | None = None
    window: int = 1216  # the reference's max_input_len
    decode: str = "fast"
    audio_format: str = "ogg"

    def __post_init__(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(message)

        check(self.composer in COMPOSERS, f"composer must be one of {', '.join(COMPOSERS)}")
        check(self.encoder in ENCODERS, f"encoder must be one of {', '.join(ENCODERS)}")
        check(self.mode in MODES, f"mode must be one of {', '.join(MODES)}")
        check(self.decode in DECODE_STRATEGIES, f"decode must be one of {', '.join(DECODE_STRATEGIES)}")
        check(self.audio_format in AUDIO_FORMATS, f"format must be one of {', '.join(AUDIO_FORMATS)}")
        check(1 <= self.length <= 8192, "length must be between 1 and 8192 tokens")
        check(1.0 <= self.duration_s <= 600.0, "duration must be between 1 and 600 seconds")
        check(0.05 <= self.note_temperature <= 5.0, "note temperature must be between 0.05 and 5")
        check(0.05 <= self.rest_temperature <= 5.0, "rest temperature must be between 0.05 and 5")
        check(0.0 < self.top_p <= 1.0, "top-p must be in (0, 1]")
        check(0 <= self.top_k <= 100_000, "top-k must be 0 (off) or a positive count")
        check(1 <= self.min_instruments <= 5, "minimum instruments must be between 1 and 5")
        check(8 <= self.window <= 2048, "window must be between 8 and 2048 tokens")
        check(self.seed is None or 0 <= self.seed <= MAX_SEED, f"seed must be between 0 and {MAX_SEED}")

    def with_seed(self) -> "GenerationOptions":
        """These options with a concrete seed (a random one if none was given)."""
        return self if self.seed is not None else replace(self, seed=random_seed())

    def replace(self, **changes) -> "GenerationOptions":
        return replace(self, **changes)

    def as_dict(self) -> dict:
        return asdict(self)
