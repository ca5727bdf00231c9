"""Encoding a clip (OGG Vorbis, MP3), within a byte budget if it must."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile

from aria_engine.render.errors import AudioTooLarge, RenderError, RenderProgress
from aria_engine.render.mastering import fade_out

DEFAULT_QUALITY = 0.5  # encoder quality 0..1; Vorbis at 0.5 is about 160 kbit/s stereo
LOWER_QUALITIES = (0.3, 0.1, 0.0)  # tried in turn when a clip must fit a byte limit
SIZE_MARGIN = 0.95  # aim under the limit: encoded size is not exactly proportional to length
MIN_CLIP_S = 1.0
FADE_OUT_S = 3.0



@dataclass(frozen=True)
class AudioFormat:
    name: str  # file extension
    container: str  # libsndfile major format
    codec: str  # libsndfile subtype
    mime_type: str


FORMATS = {
    "ogg": AudioFormat("ogg", "OGG", "VORBIS", "audio/ogg"),
    "mp3": AudioFormat("mp3", "MP3", "MPEG_LAYER_III", "audio/mpeg"),
}


def audio_format(fmt: str) -> AudioFormat:
    """The format called `fmt`, if this libsndfile can write it; else RenderError saying why."""
    spec = FORMATS.get(str(fmt).lower().lstrip("."))
    if spec is None:
        raise RenderError(f"Unknown audio format {fmt!r}: choose one of {', '.join(FORMATS)}.")
    if spec.codec not in soundfile.available_subtypes(spec.container):
        raise RenderError(
            f"{spec.name.upper()} audio is not available: this libsndfile "
            f"({soundfile.__libsndfile_version__}) was built without it (MP3 needs libsndfile "
            f"1.1 or newer with LAME and mpg123). Use ogg instead."
        )
    return spec


_ENCODE_BLOCK_FRAMES = 16384  # frames per write; see encode()


def encode(
    audio: np.ndarray, sample_rate: int, fmt: str = "ogg", *, quality: float = DEFAULT_QUALITY,
    progress: RenderProgress | None = None,
) -> bytes:
    """Compress float audio; `quality` runs from 0 (smallest) to 1 (best). `progress`, if
    given, hears the fraction encoded after each block (and may raise to abandon it)."""
    spec = audio_format(fmt)
    if not 0.0 <= quality <= 1.0:
        raise ValueError(f"quality must be between 0 and 1, got {quality}")
    buffer = io.BytesIO()
    channels = 1 if audio.ndim == 1 else audio.shape[1]
    try:
        # In blocks: libvorbis allocates all pending input on the stack, so writing a minute of
        # audio at once overflows a thread's stack and kills the process (libsndfile #1095).
        with soundfile.SoundFile(
            buffer,
            "w",
            sample_rate,
            channels,
            format=spec.container,
            subtype=spec.codec,
            compression_level=1.0 - quality,
        ) as out:
            for start in range(0, len(audio), _ENCODE_BLOCK_FRAMES):
                out.write(audio[start : start + _ENCODE_BLOCK_FRAMES])
                if progress is not None:
                    progress(min(1.0, (start + _ENCODE_BLOCK_FRAMES) / len(audio)))
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise RenderError(
            f"Could not encode {spec.name.upper()} audio at {sample_rate} Hz: {error}"
        ) from error
    return buffer.getvalue()


def _size_words(n_bytes: int) -> str:
    if n_bytes >= 1 << 20 and n_bytes % (1 << 20) == 0:
        return f"{n_bytes >> 20} MiB"
    if n_bytes >= 1_000_000:
        return f"{n_bytes / 1_000_000:.3g} MB"
    return f"{n_bytes / 1000:.3g} kB"


def _duration_words(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


# libvorbis's nominal stereo bit rates (kbit/s) at quality 0, 0.1, ..., 1: a guide to how much
# smaller a lower quality will be, so the search skips settings that cannot fit.
_NOMINAL_KBPS = (64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 500)


def _predicted_size(size: int, quality: float, lower: float) -> float:
    grid = np.linspace(0.0, 1.0, len(_NOMINAL_KBPS))
    return size * float(np.interp(lower, grid, _NOMINAL_KBPS) / np.interp(quality, grid, _NOMINAL_KBPS))


def encode_within(
    audio: np.ndarray,
    sample_rate: int,
    fmt: str,
    max_bytes: int | None,
    quality: float = DEFAULT_QUALITY,
    *,
    encoded: bytes | None = None,
) -> tuple[bytes, np.ndarray, list[str]]:
    """Encode, lowering the quality and then shortening (with a fade-out) until it fits.

    `encoded` is `audio` already encoded at `quality`, when the caller has it. Returns the
    encoded clip, the audio it holds and notes saying what had to be done.
    """
    data = encoded if encoded is not None else encode(audio, sample_rate, fmt, quality=quality)
    if max_bytes is not None and max_bytes <= 0:
        raise AudioTooLarge("There is no room left for the audio within the upload limit.")
    if max_bytes is None or len(data) <= max_bytes:
        return data, audio, []
    limit = f"the {_size_words(max_bytes)} upload limit"

    lower = [q for q in LOWER_QUALITIES if q < quality]
    while lower:
        rung = lower.pop(0)
        if lower and _predicted_size(len(data), quality, rung) > max_bytes:
            continue  # not even close: try the next rung down without encoding this one
        data, quality = encode(audio, sample_rate, fmt, quality=rung), rung
        if len(data) <= max_bytes:
            return data, audio, [f"audio encoded at lower quality to fit {limit}"]

    full_s = len(audio) / sample_rate
    clip = audio
    while len(data) > max_bytes:
        seconds = len(clip) / sample_rate * max_bytes * SIZE_MARGIN / len(data)
        seconds = float(np.floor(seconds)) if seconds >= 10 else round(seconds, 1)
        if seconds < MIN_CLIP_S:
            raise AudioTooLarge(f"The audio cannot fit in {limit}: even {MIN_CLIP_S:g} s of it is too large.")
        clip = audio[: round(seconds * sample_rate)].copy()
        clip = fade_out(clip, round(min(FADE_OUT_S, seconds / 4) * sample_rate))
        data = encode(clip, sample_rate, fmt, quality=quality)
    shortened = f"{_duration_words(len(clip) / sample_rate)} (of {_duration_words(full_s)})"
    return data, clip, [f"audio encoded at lower quality and shortened to {shortened} to fit {limit}"]


