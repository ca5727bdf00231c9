"""Image -> Emotion. An encoder reads a batch of RGB images and returns one Emotion each."""

from __future__ import annotations

from typing import Protocol, Sequence

from PIL import Image

from aria_engine.emotion import Emotion


class Encoder(Protocol):
    name: str

    def encode(self, images: Sequence[Image.Image]) -> list[Emotion]:
        """RGB images in (as `aria_engine.images.load_image` returns them), one Emotion each."""
        ...
