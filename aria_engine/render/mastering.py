"""Loudness and length: trimming the silent tail, keeping a piece's own loudness, limiting peaks."""

from __future__ import annotations

import math

import numpy as np

from aria_engine.render.errors import RenderError

SILENT_PEAK = 1e-6  # raw synth output quieter than this everywhere counts as silence
TRIM_DB = -60.0  # a clip ends this far below its peak...
TRIM_KEEP_S = 0.25  # ...plus a short faded tail
# Mastering (see the module docstring). Levels are mean-square dB of the non-silent 400 ms blocks.
MASTER_REFERENCE_DB = -24.0  # a raw clip this loud (a lively band at forte, on FluidR3_GM)...
MASTER_TARGET_DB = -15.0  # ...is mastered to this level
LOUDNESS_KEEP = 0.6  # the share of a clip's distance from the reference that mastering keeps
LEVEL_BLOCK_S = 0.4  # the block of BS.1770's gated loudness
LEVEL_GATE_DB = -20.0  # blocks this far below the loudest are pauses, not the piece's level
PEAK_CEILING_DBFS = -1.0  # the limiter keeps every sample under this
LIMITER_BLOCK = 256  # samples per gain step (under 6 ms at 44.1 kHz)
LIMITER_ATTACK_S = 0.01  # time the limiter's gain takes to come down 6 dB ahead of a peak
LIMITER_RELEASE_S = 0.3  # and to recover 6 dB after it




def _peak(audio: np.ndarray) -> float:
    """Largest absolute sample, without allocating |audio|."""
    return max(float(audio.max(initial=0.0)), -float(audio.min(initial=0.0)))


def peak_level_dbfs(audio: np.ndarray) -> float:
    """The sample peak in dB relative to full scale (-inf for silence)."""
    peak = _peak(np.asarray(audio))
    return 20 * float(np.log10(peak)) if peak > 0 else float("-inf")


def normalise(audio: np.ndarray, *, peak_dbfs: float = -1.0) -> np.ndarray:
    """Scale so the sample peak sits at `peak_dbfs`; headroom below 0 dBFS means it never clips.

    Silence stays silence.
    """
    if peak_dbfs > 0:
        raise ValueError(f"peak_dbfs must be at most 0 dBFS, got {peak_dbfs}")
    audio = np.asarray(audio, dtype=np.float32)
    peak = _peak(audio)
    if peak == 0:
        return audio.copy()
    return audio * _gain_to(peak_dbfs, peak)


def _gain_to(peak_dbfs: float, peak: float) -> np.float32:
    return np.float32(10 ** (peak_dbfs / 20) / peak)


def trim_silence(
    audio: np.ndarray, sample_rate: int, *, threshold_db: float = TRIM_DB, keep_tail_s: float = TRIM_KEEP_S
) -> np.ndarray:
    """Cut the silent end: keep `keep_tail_s` past the last sample louder than `threshold_db`.

    The threshold is relative to the clip's own peak, so it works before or after `normalise`.
    The kept tail fades to zero so the clip never ends on a click. All-silent audio comes back
    empty.
    """
    audio = np.asarray(audio, dtype=np.float32)
    peak = _peak(audio)
    if peak == 0:
        return audio[:0].copy()
    end, fade = _sound_end(audio, sample_rate, peak, threshold_db, keep_tail_s)
    return fade_out(audio[:end].copy(), fade)


def _sound_end(
    audio: np.ndarray, sample_rate: int, peak: float, threshold_db: float, keep_tail_s: float
) -> tuple[int, int]:
    """Where a trimmed clip ends, and how many samples before that fade out."""
    last_loud = _last_above(audio, peak * 10 ** (threshold_db / 20))
    end = min(len(audio), last_loud + 1 + round(keep_tail_s * sample_rate))
    return end, end - last_loud - 1


def trim_and_normalise(raw: np.ndarray, sample_rate: int, *, peak_dbfs: float = -1.0) -> np.ndarray:
    """`normalise(trim_silence(raw))`, computed in place in `raw` (which it then owns).

    A clip's full-length float audio is tens of MB; two fewer copies of it save real time.
    """
    peak = _peak(raw)
    if peak < SILENT_PEAK:
        raise RenderError("This piece rendered to silence: its instruments made no sound with this SoundFont.")
    end, fade = _sound_end(raw, sample_rate, peak, TRIM_DB, TRIM_KEEP_S)
    clip = fade_out(raw[:end], fade)
    clip *= _gain_to(peak_dbfs, peak)  # the faded tail is below TRIM_DB: the peak is unchanged
    return clip


def level_db(audio: np.ndarray, sample_rate: int) -> float:
    """The clip's mean-square level in dB over its sounding 400 ms blocks (-inf for silence): a
    plain, unweighted cousin of BS.1770's gated loudness, enough to tell soft from loud."""
    audio = np.asarray(audio, dtype=np.float32)
    block = max(1, round(LEVEL_BLOCK_S * sample_rate))
    frames = audio.reshape(len(audio), -1)
    usable = len(frames) // block * block
    if usable == 0:
        power = np.array([float(np.mean(np.square(frames, dtype=np.float64)))]) if len(frames) else np.zeros(1)
    else:
        power = np.mean(np.square(frames[:usable], dtype=np.float64).reshape(-1, block, frames.shape[1]), axis=(1, 2))
    if not power.any():
        return float("-inf")
    sounding = power[power >= power.max() * 10 ** (LEVEL_GATE_DB / 10)]
    return 10 * float(np.log10(np.mean(sounding)))


def mastering_gain_db(level: float) -> float:
    """The gain that moves a clip at `level` dB to TARGET + KEEP (level - REFERENCE): every clip
    comes closer to a listenable level, and the order and most of the gaps between them stay."""
    return MASTER_TARGET_DB + LOUDNESS_KEEP * (level - MASTER_REFERENCE_DB) - level


def limit_peaks(audio: np.ndarray, sample_rate: int, *, ceiling_dbfs: float = PEAK_CEILING_DBFS) -> np.ndarray:
    """A look-ahead peak limiter (in place): no sample ends above `ceiling_dbfs`.

    The gain is worked out per LIMITER_BLOCK: each block's own need, lowered to its neighbours'
    (so the gain is already down when a peak arrives), falling ahead of a peak at most
    LIMITER_ATTACK_S per 6 dB and recovering after it at most LIMITER_RELEASE_S per 6 dB; between block centres it moves linearly, never above either end, so every sample gets
    at most its own block's gain. Unlimited music passes unchanged."""
    ceiling = 10 ** (ceiling_dbfs / 20)
    if _peak(audio) <= ceiling:
        return audio
    n = len(audio)
    blocks = -(-n // LIMITER_BLOCK)
    padded = np.zeros((blocks * LIMITER_BLOCK,) + audio.shape[1:], np.float32)
    padded[:n] = np.abs(audio)
    peaks = padded.reshape(blocks, -1).max(axis=1)
    need = np.minimum(1.0, ceiling / np.maximum(peaks, 1e-12))
    need = np.minimum(need, np.minimum(np.roll(need, 1), np.roll(need, -1)))  # look ahead and behind
    release = 2.0 ** (LIMITER_BLOCK / (LIMITER_RELEASE_S * sample_rate))  # per block, in gain
    attack = 2.0 ** (LIMITER_BLOCK / (LIMITER_ATTACK_S * sample_rate))
    gain = need.copy()
    for k in range(1, blocks):  # release: rise slowly after a peak
        gain[k] = min(gain[k], gain[k - 1] * release)
    for k in range(blocks - 2, -1, -1):  # attack: fall smoothly before one
        gain[k] = min(gain[k], gain[k + 1] * attack)
    centres = (np.arange(blocks) + 0.5) * LIMITER_BLOCK
    curve = np.interp(np.arange(n), centres, gain).astype(np.float32)
    audio *= curve[:, None] if audio.ndim == 2 else curve
    np.clip(audio, -ceiling, ceiling, out=audio)  # rounding at the block edges
    return audio


def master_level(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """A clip at its mastered level (in place): `mastering_gain_db`, then the peak limiter."""
    level = level_db(audio, sample_rate)
    if not math.isfinite(level):
        return audio
    audio *= np.float32(10 ** (mastering_gain_db(level) / 20))
    return limit_peaks(audio, sample_rate)


def trim_and_master(raw: np.ndarray, sample_rate: int) -> np.ndarray:
    """`master_level(trim_silence(raw))`, in place in `raw` (which it then owns): what
    `Renderer.master` makes of a synthesized piece."""
    peak = _peak(raw)
    if peak < SILENT_PEAK:
        raise RenderError("This piece rendered to silence: its instruments made no sound with this SoundFont.")
    end, fade = _sound_end(raw, sample_rate, peak, TRIM_DB, TRIM_KEEP_S)
    return master_level(fade_out(raw[:end], fade), sample_rate)


def _last_above(audio: np.ndarray, level: float, block: int = 1 << 14) -> int:
    """Index of the last frame with a sample above `level`, searching back from the end."""
    for stop in range(len(audio), 0, -block):
        start = max(0, stop - block)
        frames = np.abs(audio[start:stop]) > level
        if frames.ndim == 2:
            frames = frames.any(axis=1)
        hits = np.flatnonzero(frames)
        if hits.size:
            return start + int(hits[-1])
    return -1


def fade_out(audio: np.ndarray, samples: int) -> np.ndarray:
    """Fade the last `samples` of `audio` (in place) along a raised-cosine curve to zero."""
    samples = min(samples, len(audio))
    if samples > 0:
        curve = 0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, samples, dtype=np.float32))
        audio[len(audio) - samples :] *= curve[:, None] if audio.ndim == 2 else curve
    return audio


