"""The embedded default encoder: a picture's emotion from its colours alone (no weights).

Five measurements on a copy whose longer side is at most 256 px (box-filtered, so fast and
deterministic):

    brightness     B  mean CIE L* / 100 (0 black .. 1 white)
    saturation     S  sum(max - min) / sum(max) over RGB, i.e. HSV saturation weighted by value,
                      so near-black pixels (whose hue and saturation are noise) count little
    warmth         W  chroma-weighted mean of cos(hue - 30 deg): +1 orange/red/yellow, -1
                      cyan/blue; shrunk towards 0 when the picture has little colour
    contrast       C  RMS contrast: standard deviation of L* / 100
    colourfulness  M  Hasler & Suesstrunk (2003): rg = R - G, yb = (R + G)/2 - B on 0..255,
                      M = sigma_rgyb + 0.3 mu_rgyb (15 "slightly", 45 "averagely", 82 "highly",
                      109 "extremely" colourful on their scale)

Each is standardised against typical photographs, z = (x - centre) / spread (constants below),
and combined with weights from the colour-emotion literature:

    pleasure = 0.69 zB + 0.22 zS + 0.10 zW + 0.10 zM
    arousal  = -0.31 zB + 0.60 zS + 0.15 zW + 0.35 zC + 0.15 zM

    valence = tanh(0.8 pleasure),  arousal = tanh(0.8 arousal)   (then clamped to [-1, 1])

- Brightness and saturation: Valdez & Mehrabian (1994), "Effects of color on emotions",
  J. Exp. Psychol. General 123(4): standardised regressions pleasure = .69 B + .22 S and
  arousal = -.31 B + .60 S on Munsell brightness and saturation. Their coefficients are for
  standardised predictors, which is why the measurements are z-scored first.
- Hue warmth: warm hues (red, orange, yellow) are rated more arousing than cool ones, and
  blue/blue-green more calming (Valdez & Mehrabian 1994; Wilms & Oberfeld 2018, Psychol. Res.
  82); hue effects are smaller than those of brightness and saturation, and on valence mixed
  (Valdez & Mehrabian found blue-green most pleasant), hence the small weights.
- Contrast: RMS luminance contrast (Peli 1990) raises rated arousal of images.
- Colourfulness: Hasler & Suesstrunk (2003), "Measuring colourfulness in natural images",
  Proc. SPIE 5007; colourful pictures read as livelier and slightly more pleasant.

The centres and spreads were set on scikit-image's sample photographs and the bundled
examples; tanh keeps the output in (-1, 1) and the gain spreads typical photographs over
roughly -0.9 .. +0.9 instead of bunching them near 0. Black-and-white photographs read calm
(no saturation), which matches ratings of greyscale images but is the model's bluntest edge.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image

from aria_engine.emotion import Emotion
from aria_engine.images import to_rgb

ANALYSIS_SIDE = 256  # longest side of the copy that is measured

# (centre, spread) of each measurement over typical photographs: z = (x - centre) / spread.
NORMS = {
    "brightness": (0.50, 0.18),
    "saturation": (0.35, 0.22),
    "warmth": (0.0, 0.50),
    "contrast": (0.20, 0.08),
    "colourfulness": (40.0, 25.0),
}

PLEASURE_WEIGHTS = {"brightness": 0.69, "saturation": 0.22, "warmth": 0.10, "colourfulness": 0.10}
AROUSAL_WEIGHTS = {"brightness": -0.31, "saturation": 0.60, "warmth": 0.15, "contrast": 0.35, "colourfulness": 0.15}
GAIN = 0.8

_WARMEST_HUE = math.radians(30.0)  # orange
_WARMTH_SHRINK = 0.05  # chroma a picture needs before its hue counts fully


def analysis_copy(image: Image.Image) -> np.ndarray:
    """RGB floats in [0, 1], longest side at most ANALYSIS_SIDE (box filter: a true average)."""
    image = to_rgb(image)
    scale = ANALYSIS_SIDE / max(image.size)
    if scale < 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BOX)
    return np.asarray(image, dtype=np.float64) / 255.0


def lightness(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CIE L* / 100 of sRGB channel planes in [0, 1] (D65)."""
    y = 0.2126 * _linear(r) + 0.7152 * _linear(g) + 0.0722 * _linear(b)
    f = np.where(y > (6 / 29) ** 3, np.cbrt(y), y / (3 * (6 / 29) ** 2) + 4 / 29)
    return 1.16 * f - 0.16


def _linear(channel: np.ndarray) -> np.ndarray:
    """sRGB transfer function undone."""
    return np.where(channel <= 0.04045, channel / 12.92, ((channel + 0.055) / 1.055) ** 2.4)


def hue_radians(r: np.ndarray, g: np.ndarray, b: np.ndarray, top: np.ndarray, chroma: np.ndarray) -> np.ndarray:
    """HSV hue in radians (0 red, 2pi/3 green, 4pi/3 blue); 0 where there is no chroma."""
    safe = np.where(chroma > 0, chroma, 1.0)
    sector = np.where(top == r, ((g - b) / safe) % 6.0, np.where(top == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    return np.where(chroma > 0, sector * (math.pi / 3.0), 0.0)


def colourfulness(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> float:
    """Hasler & Suesstrunk (2003) M on the 0..255 scale."""
    rg = 255.0 * (r - g)
    yb = 255.0 * (0.5 * (r + g) - b)
    sigma = math.hypot(float(rg.std()), float(yb.std()))
    mu = math.hypot(float(rg.mean()), float(yb.mean()))
    return sigma + 0.3 * mu


def measure(rgb: np.ndarray) -> dict[str, float]:
    """The five measurements of an analysis copy (see the module docstring)."""
    r, g, b = (np.ascontiguousarray(rgb[..., i]) for i in range(3))  # planes: fast elementwise maths
    top = np.maximum(np.maximum(r, g), b)
    chroma = top - np.minimum(np.minimum(r, g), b)
    hue = hue_radians(r, g, b, top, chroma)
    light = lightness(r, g, b)
    chroma_sum, top_sum = float(chroma.sum()), float(top.sum())
    warmth = float((chroma * np.cos(hue - _WARMEST_HUE)).sum()) / (chroma_sum + _WARMTH_SHRINK * chroma.size)
    return {
        "brightness": float(light.mean()),
        "saturation": chroma_sum / top_sum if top_sum > 0 else 0.0,
        "warmth": warmth,
        "contrast": float(light.std()),
        "colourfulness": colourfulness(r, g, b),
    }


def standardise(features: dict[str, float]) -> dict[str, float]:
    return {name: (features[name] - centre) / spread for name, (centre, spread) in NORMS.items()}


def emotion_from_features(features: dict[str, float]) -> Emotion:
    """The colour-emotion model: weighted standardised measurements, squashed by tanh."""
    z = standardise(features)
    pleasure = sum(weight * z[name] for name, weight in PLEASURE_WEIGHTS.items())
    arousal = sum(weight * z[name] for name, weight in AROUSAL_WEIGHTS.items())
    return Emotion.clamped(math.tanh(GAIN * pleasure), math.tanh(GAIN * arousal))


class PaletteEncoder:
    """Image -> Emotion from brightness, saturation, warmth, contrast and colourfulness."""

    name = "palette"

    def features(self, image: Image.Image) -> dict[str, float]:
        """The measurements behind an answer, for explanations and tests."""
        return measure(analysis_copy(image))

    def encode(self, images: Sequence[Image.Image]) -> list[Emotion]:
        return [emotion_from_features(self.features(image)) for image in images]
