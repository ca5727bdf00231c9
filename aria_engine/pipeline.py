"""The whole job for one request: image -> emotion -> music -> audio and pictures.

The CLI calls `Pipeline.run` for one request; the engine calls the stages separately so that it
can batch them (`read_emotions` over many images, `compose` over many requests).
Backends are loaded once and kept: the CLIP encoder, the transformers and the SoundFont are
expensive to load and cheap to reuse.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from PIL import Image

from aria_engine.emotion import Emotion, Trajectory
from aria_engine.encoders import Encoder
from aria_engine.images import ImageLimits, load_image
from aria_engine.jam import JamScore, jam_files, note_sections, refuse_unfit_mode
from aria_engine.music import Composer, Composition
from aria_engine.options import GenerationOptions

if TYPE_CHECKING:
    from aria_engine.render import RenderedAudio

STAGES = ("decoding image", "safety", "reading emotion", "composing", "drawing", "rendering")
UPLOAD_MARGIN_BYTES = 64 * 1024  # message text and multipart overhead

StageProgress = Callable[[str, float], None]
"""Called with a stage name from STAGES and the fraction (0..1) of that stage done."""
SYNTHESIS_SHARE = 0.6  # of the rendering stage's time; encoding takes the rest


@dataclass(frozen=True)
class Origin:
    """Who asked, and where: the engine shares the machine fairly between servers."""

    platform: str = "cli"
    server: str = "local"
    channel: str = "local"
    user: str = "local"


@dataclass(frozen=True)
class Request:
    """An image (bytes) or an explicit emotion, generation options and who asked."""

    image: bytes | None = None
    emotion: Emotion | Trajectory | None = None
    options: GenerationOptions = field(default_factory=GenerationOptions)
    origin: Origin = field(default_factory=Origin)
    max_upload_bytes: int | None = None  # the platform's limit for all files of one reply

    def __post_init__(self) -> None:
        if (self.image is None) == (self.emotion is None):
            raise ValueError("a request needs exactly one of an image or an emotion")

    def cache_key(self) -> str | None:
        """Identical requests (same image bytes or emotion, options and seed) share a result.

        None when the seed is not fixed yet: a random piece is never served from a cache.
        """
        if self.options.seed is None:
            return None
        h = hashlib.sha256()
        if self.image is not None:
            h.update(b"image:" + hashlib.sha256(self.image).digest())
        else:
            h.update(b"emotion:" + repr(self.emotion).encode())
        h.update(repr(sorted(self.options.as_dict().items())).encode())
        h.update(f"limit:{self.max_upload_bytes}".encode())
        return h.hexdigest()


@dataclass
class Result:
    """Everything a reply needs. `options` carries the concrete seed that was used."""

    emotion: Emotion
    trajectory: Trajectory | None
    encoder: str  # "palette", "clip" or "explicit" (no image)
    composition: Composition
    options: GenerationOptions
    midi: bytes
    audio: "RenderedAudio"
    emotion_chart: bytes  # PNG
    piano_roll: bytes  # PNG
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def device(self) -> str:
        """Where the models ran (stamped by the pipeline that used a neural backend); the
        embedded defaults always run on the CPU."""
        return str(self.composition.stats.get("device") or "cpu")

    @property
    def backend(self) -> str:
        """Which backends made this result, and where, in words for a reply."""
        made_by = self.composition.composer
        if self.composition.mode:
            made_by += f" ({self.composition.mode})"
        return f"{self.encoder} encoder + {made_by} composer on {self.device}"

    def summary(self) -> dict:
        """JSON-friendly description (no file contents)."""
        comp = self.composition
        return {
            "valence": round(self.emotion.valence, 4),
            "arousal": round(self.emotion.arousal, 4),
            "label": self.emotion.label,
            "encoder": self.encoder,
            "composer": comp.composer,
            "mode": comp.mode,
            "device": self.device,
            "seed": self.options.seed,
            "duration_s": round(self.audio.duration_s, 3),
            "instruments": comp.instruments,
            "notes": self.notes + comp.notes + list(getattr(self.audio, "notes", [])),
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
            **({"tokens": comp.tokens} if comp.tokens is not None else {}),
            **({"tokens_per_s": round(comp.stats["tokens_per_s"], 2)} if "tokens_per_s" in comp.stats else {}),
        }


def midi_bytes(composition: Composition) -> bytes:
    buffer = io.BytesIO()
    composition.midi.write(buffer)
    return buffer.getvalue()


@dataclass
class _Files:
    """The MIDI file and the two pictures of a reply, and how long each took to make."""

    midi: bytes
    emotion_chart: bytes
    piano_roll: bytes
    timings: dict[str, float]

    @property
    def size(self) -> int:
        return len(self.midi) + len(self.emotion_chart) + len(self.piano_roll)


def _midi_and_pictures(emotion: Emotion, trajectory: Trajectory | None, composition: Composition) -> _Files:
    from aria_engine import visuals

    started = time.perf_counter()
    midi = midi_bytes(composition)
    drawing_started = time.perf_counter()
    if isinstance(trajectory, JamScore):  # markers, the jam's path, the section boundaries
        midi, chart, roll = jam_files(trajectory, composition, midi)
    else:
        chart = visuals.emotion_chart(emotion, trajectory=trajectory)
        roll = visuals.piano_roll(composition.midi)
    done = time.perf_counter()
    timings = {"writing midi": drawing_started - started, "drawing": done - drawing_started}
    return _Files(midi, chart, roll, timings)


class Pipeline:
    """Holds the loaded backends; thread-safe, so worker threads can share one."""

    def __init__(
        self,
        *,
        models_dir: Path | None = None,
        model_dir: Path | None = None,
        encoder_weights: Path | None = None,
        soundfont: Path | None = None,
        image_limits: ImageLimits | None = None,
        device: str | None = None,
    ) -> None:
        """`device`: auto, cpu, cuda or cuda:N for the neural backends (default $ARIA_DEVICE,
        else auto); resolved when one first loads, so the embedded defaults never need torch."""
        from aria_engine import models
        from aria_engine.device import requested_device

        self.device_request = requested_device(device)  # a malformed name fails here, at start
        self._device = None

        self.models_dir = Path(models_dir) if models_dir else models.default_models_dir()
        self.model_dir = Path(model_dir) if model_dir else None
        self.encoder_weights = Path(encoder_weights) if encoder_weights else None
        self.soundfont = soundfont
        self.image_limits = image_limits or ImageLimits()
        self._lock = threading.Lock()
        self._encoders: dict[str, Encoder] = {}
        self._composers: dict[tuple[str, str], Composer] = {}
        self._renderer = None

    # -- backends -------------------------------------------------------------------------

    def encoder_name(self, requested: str) -> str:
        """What `auto` means here: the CLIP encoder when its weights are present."""
        if requested != "auto":
            return requested
        return "clip" if self._encoder_weights_path().is_file() else "palette"

    def composer_name(self, requested: str, mode: str) -> str:
        """What `auto` means here: the transformer when the mode's checkpoint is present."""
        if requested != "auto":
            return requested
        from aria_engine import models

        if self.model_dir is None:
            return models.resolve_backends(self.models_dir, composer="auto", mode=mode).composer
        # --model-dir: one checkpoint folder, or a models directory with mode folders.
        has = lambda folder: all((folder / name).is_file() for name in models.MODE_FILES)  # noqa: E731
        return "transformer" if has(self.model_dir) or has(self.model_dir / mode) else "procedural"

    def _encoder_weights_path(self) -> Path:
        return self.encoder_weights or self.models_dir / "image_encoder.pt"

    def encoder(self, requested: str = "auto") -> Encoder:
        name = self.encoder_name(requested)
        with self._lock:
            if name not in self._encoders:
                if name == "palette":
                    from aria_engine.encoders.palette import PaletteEncoder

                    self._encoders[name] = PaletteEncoder()
                else:
                    from aria_engine.encoders.clip import ClipEmotionEncoder

                    self._encoders[name] = ClipEmotionEncoder(self._encoder_weights_path(), self.device())
            return self._encoders[name]

    def composer(self, requested: str = "auto", mode: str = "continuous_concat") -> Composer:
        name = self.composer_name(requested, mode)
        key = (name, mode if name == "transformer" else "")
        with self._lock:
            if key not in self._composers:
                if name == "procedural":
                    from aria_engine.music.procedural import ProceduralComposer

                    self._composers[key] = ProceduralComposer()
                else:
                    from aria_engine.music.neural import TransformerComposer

                    self._composers[key] = TransformerComposer(self.model_dir or self.models_dir, mode, self.device())
            return self._composers[key]

    def device(self):
        """The torch.device of the neural backends (DeviceError if it cannot be used here)."""
        if self._device is None:
            from aria_engine.device import resolve_device

            self._device = resolve_device(self.device_request)
        return self._device

    def renderer(self):
        with self._lock:
            if self._renderer is None:
                from aria_engine.render import Renderer

                self._renderer = Renderer(self.soundfont)
            return self._renderer

    # -- stages ---------------------------------------------------------------------------

    def decode_image(self, data: bytes) -> Image.Image:
        limits = self.image_limits
        return load_image(data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels, max_side=limits.max_side,
                          max_decode_bytes=limits.max_decode_bytes)

    def check_safety(self, images: Sequence[Image.Image], options: Sequence[GenerationOptions]) -> list[float | None]:
        """The image-safety gate (aria_engine.safety), right after decoding, one batch for the
        pictures whose options turn it on: each one's score (None where it is off). Raises
        SafetyUnavailable when the classifier cannot run: never a silent pass."""
        wanted = [i for i, o in enumerate(options) if o.image_safety != "off"]
        scores: list[float | None] = [None] * len(images)
        if wanted:
            from aria_engine import safety

            for i, score in zip(wanted, safety.classifier().scores([images[i] for i in wanted])):
                scores[i] = score
        return scores

    @staticmethod
    def apply_safety(score: float | None, options: GenerationOptions) -> dict | None:
        """What a score means for one request: raises ImageUnsafe when it refuses; with spoiler,
        the note the result carries (`composition.stats["image_safety"]`); else None."""
        if score is None:
            return None
        from aria_engine.safety import ImageUnsafe, verdict

        flagged = verdict(score, options.image_safety, options.image_safety_threshold)
        if flagged and options.image_safety == "refuse":
            raise ImageUnsafe(score, options.image_safety_threshold)
        return {"score": round(score, 4), "flagged": flagged, "mode": options.image_safety}

    def read_emotions(self, images: Sequence[Image.Image], encoder: str = "auto") -> list[Emotion]:
        return self.encoder(encoder).encode(list(images))

    def compose(
        self,
        items: Sequence[tuple[Emotion | Trajectory, GenerationOptions]],
        progress: Callable[[float], None] | None = None,
    ) -> list[Composition]:
        """Compose several pieces; items sharing a composer and mode run as one batch."""
        if not items:
            return []
        first = items[0][1]
        composer = self.composer(first.composer, first.mode)
        same = all(
            self.composer(o.composer, o.mode) is composer for _, o in items
        )
        if same:
            jams = [(e, o) for e, o in items if isinstance(e, JamScore)]
            if jams and composer.name == "transformer":
                refuse_unfit_mode(composer.load()[2])
            compositions = composer.compose_batch([(e, o.with_seed()) for e, o in items], progress)
            for (conditioning, _), composition in zip(items, compositions):
                if isinstance(conditioning, JamScore):
                    note_sections(conditioning, composition, composer.load()[1] if composer.name == "transformer" else None)
            return compositions
        return [self.compose([item])[0] for item in items]

    def finish(
        self,
        emotion: Emotion,
        trajectory: Trajectory | None,
        encoder: str,
        composition: Composition,
        options: GenerationOptions,
        progress: StageProgress | None = None,
        max_upload_bytes: int | None = None,
    ) -> Result:
        """Render the audio and draw the pictures for a composed piece.

        Synthesis has both cores (see aria_engine.render); the MIDI file and the pictures are
        then made in a second thread while the clip encodes on one, and the audio's share of the
        upload limit is worked out once they are ready.
        """
        from aria_engine.render import AudioTooLarge, audio_format

        report = progress or (lambda stage, fraction: None)
        renderer = self.renderer()
        audio_format(options.audio_format)  # refuse an unusable format before the work

        report("drawing", 0.0)
        report("rendering", 0.0)

        # Progress all through the stage, so that a caller can also stop a long render (by raising).
        def synthesizing(fraction: float) -> None:
            report("rendering", SYNTHESIS_SHARE * fraction)

        def encoding(fraction: float) -> None:
            report("rendering", SYNTHESIS_SHARE + (1 - SYNTHESIS_SHARE) * fraction)

        started = time.perf_counter()
        mastered = renderer.master(composition.midi, progress=synthesizing)
        with ThreadPoolExecutor(1, thread_name_prefix="aria-files") as pool:
            files = pool.submit(_midi_and_pictures, emotion, trajectory, composition)
            audio_budget = None
            if max_upload_bytes is not None:
                # What the upload limit leaves after the MIDI and the pictures.
                audio_budget = lambda: max(0, max_upload_bytes - files.result().size - UPLOAD_MARGIN_BYTES)  # noqa: E731
            try:
                audio = renderer.encode(mastered, options.audio_format, max_bytes=audio_budget, progress=encoding)
            except AudioTooLarge as too_large:
                # Nothing audible fits: keep the whole clip; the reply leaves it out and says so
                # (see bot.reply.build_reply), so the MIDI and pictures still reach the person.
                audio = too_large.unfitted or renderer.encode(mastered, options.audio_format)
            rendering_s = time.perf_counter() - started
            made = files.result()
        report("rendering", 1.0)

        if encoder == "clip" and "device" not in composition.stats:  # a neural encoder, any composer
            from aria_engine.device import describe

            composition.stats["device"] = describe(self.device())
        return Result(
            emotion=emotion,
            trajectory=trajectory,
            encoder=encoder,
            composition=composition,
            options=options.replace(seed=composition.seed),
            midi=made.midi,
            audio=audio,
            emotion_chart=made.emotion_chart,
            piano_roll=made.piano_roll,
            timings={**made.timings, "rendering": rendering_s, **audio.timings},
        )

    def run(self, request: Request, progress: StageProgress | None = None) -> Result:
        """One request, start to finish, in the calling thread."""
        report = progress or (lambda stage, fraction: None)
        options = request.options.with_seed()
        timings: dict[str, float] = {}

        trajectory: Trajectory | None = None
        safety_note = None
        if request.image is not None:
            report("decoding image", 0.0)
            started = time.perf_counter()
            image = self.decode_image(request.image)
            timings["decoding image"] = time.perf_counter() - started

            if options.image_safety != "off":  # the image-safety gate, right after decoding
                report("safety", 0.0)
                started = time.perf_counter()
                safety_note = self.apply_safety(self.check_safety([image], [options])[0], options)
                timings["safety"] = time.perf_counter() - started

            report("reading emotion", 0.0)
            started = time.perf_counter()
            encoder = self.encoder_name(options.encoder)
            emotion = self.read_emotions([image], encoder)[0]
            timings["reading emotion"] = time.perf_counter() - started
            conditioning: Emotion | Trajectory = emotion
        else:
            encoder = "explicit"
            conditioning = request.emotion
            if isinstance(conditioning, Trajectory):
                trajectory = conditioning
                emotion = conditioning.at(0.0)
            else:
                emotion = conditioning

        report("composing", 0.0)
        started = time.perf_counter()
        composition = self.compose(
            [(conditioning, options)], lambda fraction: report("composing", fraction)
        )[0]
        timings["composing"] = time.perf_counter() - started
        if safety_note is not None:
            composition.stats["image_safety"] = safety_note

        result = self.finish(
            emotion, trajectory, encoder, composition, options, progress, request.max_upload_bytes
        )
        result.timings = {**timings, **result.timings}
        return result
