"""Generation options, with ARIA's defaults, validated once at the edge (bounds: option_schema)."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, replace

from aria_engine.option_schema import MAX_SEED, NUMBERS

MODES = ("continuous_concat", "continuous_token", "discrete_token")
COMPOSERS = ("auto", "procedural", "transformer")
ENCODERS = ("auto", "palette", "clip")
DECODE_STRATEGIES = ("fast", "exact")
AUDIO_FORMATS = ("ogg", "mp3")
SAFETY_MODES = ("off", "refuse", "spoiler")  # aria_engine.safety


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
    # The image-safety gate (aria_engine.safety): set by the bot from the server's settings.
    image_safety: str = "off"  # off | refuse | spoiler
    image_safety_threshold: float = 0.5

    def __post_init__(self) -> None:
        def check(ok: bool, message: str) -> None:
            if not ok:
                raise ValueError(message)

        check(self.composer in COMPOSERS, f"composer must be one of {', '.join(COMPOSERS)}")
        check(self.encoder in ENCODERS, f"encoder must be one of {', '.join(ENCODERS)}")
        check(self.mode in MODES, f"mode must be one of {', '.join(MODES)}")
        check(self.decode in DECODE_STRATEGIES, f"decode must be one of {', '.join(DECODE_STRATEGIES)}")
        check(self.audio_format in AUDIO_FORMATS, f"format must be one of {', '.join(AUDIO_FORMATS)}")
        check(self.image_safety in SAFETY_MODES, f"image_safety must be one of {', '.join(SAFETY_MODES)}")
        check(isinstance(self.image_safety_threshold, (int, float)) and 0 <= self.image_safety_threshold <= 1,
              "image_safety_threshold must be a number between 0 and 1")
        for option in NUMBERS:
            value = getattr(self, option.field)
            check(value is None and option.field == "seed" or value is not None and option.accepts(value),
                  option.message)

    def with_seed(self) -> "GenerationOptions":
        """These options with a concrete seed (a random one if none was given)."""
        return self if self.seed is not None else replace(self, seed=random_seed())

    def replace(self, **changes) -> "GenerationOptions":
        return replace(self, **changes)

    def as_dict(self) -> dict:
        return asdict(self)
