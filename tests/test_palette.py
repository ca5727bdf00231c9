"""The palette encoder: measurements, the colour-emotion model's directions, and real pictures."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aria_engine.emotion import Emotion
from aria_engine.encoders.palette import PaletteEncoder, emotion_from_features
from aria_engine.images import load_image

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
encoder = PaletteEncoder()


def emotion(image: Image.Image) -> Emotion:
    return encoder.encode([image])[0]


def solid(colour, size=(64, 48)) -> Image.Image:
    return Image.new("RGB", size, colour)


def textured(base, spread: float, seed: int = 0, size=(96, 64)) -> Image.Image:
    """`base` colour with per-pixel noise of `spread` (0..255) in every channel."""
    rng = np.random.default_rng(seed)
    pixels = np.asarray(base, dtype=np.float64) + rng.normal(0, spread, (size[1], size[0], 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def stripes(colours, size=(96, 64), width=8) -> Image.Image:
    pixels = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    for x in range(size[0]):
        pixels[:, x] = colours[(x // width) % len(colours)]
    return Image.fromarray(pixels)


# -- measurements ---------------------------------------------------------------------------


def test_grey_has_no_colour_and_no_contrast():
    f = encoder.features(solid((128, 128, 128)))
    assert f["saturation"] == 0 and f["warmth"] == 0 and f["colourfulness"] == 0
    assert f["contrast"] == pytest.approx(0, abs=1e-12)
    assert f["brightness"] == pytest.approx(0.536, abs=0.002)  # L* of sRGB 128 is 53.6


def test_brightness_is_cie_lightness():
    assert encoder.features(solid((255, 255, 255)))["brightness"] == pytest.approx(1.0)
    assert encoder.features(solid((0, 0, 0)))["brightness"] == pytest.approx(0.0, abs=1e-9)
    assert encoder.features(solid((255, 0, 0)))["brightness"] == pytest.approx(0.5324, abs=0.001)


def test_warmth_is_positive_for_orange_and_negative_for_blue():
    assert encoder.features(solid((255, 128, 0)))["warmth"] > 0.9
    assert encoder.features(solid((0, 160, 255)))["warmth"] < -0.8
    assert abs(encoder.features(solid((0, 200, 0)))["warmth"]) < 0.5  # green sits between


def test_colourfulness_follows_hasler_suesstrunk():
    # Uniform red: sigma = 0, mu = |(R-G, (R+G)/2-B)| = |(255, 127.5)|, so M = 0.3 * 285.1.
    assert encoder.features(solid((255, 0, 0)))["colourfulness"] == pytest.approx(0.3 * math.hypot(255, 127.5))
    # Alternating red and green stripes: rg is +-255 (sigma 255), yb is 127.5 everywhere.
    m = encoder.features(stripes([(255, 0, 0), (0, 255, 0)]))["colourfulness"]
    assert m == pytest.approx(255 + 0.3 * 127.5, rel=1e-6)


def test_contrast_is_rms_lightness():
    assert encoder.features(stripes([(0, 0, 0), (255, 255, 255)]))["contrast"] == pytest.approx(0.5, abs=1e-6)


def test_large_images_are_measured_on_a_small_copy_with_the_same_result():
    small = stripes([(250, 200, 30), (20, 40, 90)], size=(200, 100), width=25)
    large = small.resize((4000, 2000), Image.Resampling.NEAREST)
    a, b = encoder.features(small), encoder.features(large)
    for name in a:
        assert a[name] == pytest.approx(b[name], rel=0.05, abs=0.01), name


def test_other_modes_are_accepted():
    for image in (solid((200, 100, 0)).convert("RGBA"), solid((90, 90, 90)).convert("L"), solid((1, 2, 3)).convert("P")):
        e = emotion(image)
        assert -1 <= e.valence <= 1 and -1 <= e.arousal <= 1


# -- the model's directions -----------------------------------------------------------------


def test_bright_warm_saturated_is_more_pleasant_than_dark_desaturated():
    sunny = emotion(textured((250, 180, 40), 20))
    dreary = emotion(textured((55, 58, 66), 6))
    assert sunny.valence > 0.3 > -0.3 > dreary.valence


def test_vivid_high_contrast_is_more_arousing_than_flat_pastel():
    vivid = emotion(stripes([(230, 20, 20), (10, 10, 10), (250, 220, 0), (20, 40, 220)]))
    pastel = emotion(textured((214, 226, 218), 3))
    assert vivid.arousal > 0.3 > -0.3 > pastel.arousal


def test_each_measurement_moves_the_answer_in_the_documented_direction():
    base = {"brightness": 0.5, "saturation": 0.35, "warmth": 0.0, "contrast": 0.2, "colourfulness": 40.0}

    def moved(name, delta):
        return emotion_from_features({**base, name: base[name] + delta})

    neutral = emotion_from_features(base)
    assert abs(neutral.valence) < 1e-9 and abs(neutral.arousal) < 1e-9  # the centre is neutral
    assert moved("brightness", 0.2).valence > neutral.valence
    assert moved("brightness", 0.2).arousal < neutral.arousal  # Valdez & Mehrabian: -.31
    assert moved("saturation", 0.2).arousal > neutral.arousal
    assert moved("saturation", 0.2).valence > neutral.valence
    assert moved("warmth", 0.5).arousal > neutral.arousal
    assert moved("warmth", 0.5).valence > neutral.valence
    assert moved("contrast", 0.1).arousal > neutral.arousal
    assert moved("colourfulness", 30).arousal > neutral.arousal
    # Saturation drives arousal more than brightness lowers it (.60 vs .31).
    assert moved("saturation", 0.2).arousal - neutral.arousal > neutral.arousal - moved("brightness", 0.2).arousal


def test_outputs_are_clamped_even_for_absurd_measurements():
    for features in (
        {"brightness": 50.0, "saturation": 50.0, "warmth": 50.0, "contrast": 50.0, "colourfulness": 1e6},
        {"brightness": -50.0, "saturation": -50.0, "warmth": -50.0, "contrast": -50.0, "colourfulness": -1e6},
    ):
        e = emotion_from_features(features)
        assert -1 <= e.valence <= 1 and -1 <= e.arousal <= 1
    for image in (solid((255, 255, 255)), solid((0, 0, 0)), solid((255, 0, 0), (1, 1)), stripes([(255, 0, 255), (0, 0, 0)])):
        e = emotion(image)
        assert -1 <= e.valence <= 1 and -1 <= e.arousal <= 1


def test_deterministic_and_batch_equals_one_by_one():
    images = [textured((200, 120, 60), 30, seed=1), textured((30, 60, 120), 10, seed=2), solid((128, 128, 128))]
    batch = encoder.encode(images)
    assert batch == [emotion(image) for image in images] == encoder.encode(images)
    assert encoder.encode([]) == []
    assert PaletteEncoder.name == "palette"


# -- the bundled examples land in their intended quadrants ----------------------------------


@pytest.mark.parametrize(
    ("name", "valence_sign", "arousal_sign"),
    [("sunflowers", 1, 1), ("storm", -1, 1), ("dusk", -1, -1), ("meadow", 1, -1)],
)
def test_examples_read_as_their_intended_mood(name, valence_sign, arousal_sign):
    path = EXAMPLES / f"{name}.png"
    assert path.stat().st_size < 150 * 1024
    image = load_image(path.read_bytes())
    assert image.size == (512, 384)
    e = emotion(image)
    # Clearly inside the quadrant, not on its edge.
    assert e.valence * valence_sign > 0.3, e
    assert e.arousal * arousal_sign > 0.3, e


# -- real photographs shipped with scikit-image (offline: they live inside the package) -----

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "camera", "moon"]


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    data = pytest.importorskip("skimage.data")
    return {name: Image.fromarray(getattr(data, name)()) for name in PHOTOS}


@pytest.fixture(scope="module")
def photo_emotions(photos) -> dict[str, Emotion]:
    return {name: emotion(image) for name, image in photos.items()}


def test_photographs_give_stable_in_range_values(photos, photo_emotions):
    for name, image in photos.items():
        e = photo_emotions[name]
        assert -1 <= e.valence <= 1 and -1 <= e.arousal <= 1
        assert emotion(image) == e  # the same value twice


def test_photographs_spread_over_the_plane(photo_emotions):
    valences = [e.valence for e in photo_emotions.values()]
    arousals = [e.arousal for e in photo_emotions.values()]
    assert max(valences) - min(valences) > 0.8
    assert max(arousals) - min(arousals) > 0.8
    assert len({e.label for e in photo_emotions.values()}) >= 4


def test_photographs_are_ordered_sensibly(photo_emotions):
    e = photo_emotions
    # A near-black deep-space photograph is less pleasant than a sunlit portrait, a cat or coffee.
    for bright in ("astronaut", "chelsea", "coffee"):
        assert e["hubble_deep_field"].valence < e[bright].valence - 0.5
    # Grey photographs are calmer than vivid colour ones.
    for grey in ("camera", "moon"):
        for vivid in ("coffee", "retina", "astronaut"):
            assert e[grey].arousal < e[vivid].arousal - 0.5
