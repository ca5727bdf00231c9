"""Devices: explicit cpu, auto falling back to the CPU, a clear error for a GPU that is not there,
and the CUDA code path's device handling exercised on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from aria_engine.device import (  # noqa: E402
    DeviceError,
    cpu_model,
    describe,
    inference_dtype,
    requested_device,
    resolve_device,
)

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


def test_device_names_are_checked_for_form(monkeypatch):
    monkeypatch.delenv("ARIA_DEVICE", raising=False)
    assert requested_device(None) == "auto"
    assert requested_device("CUDA:1") == "cuda:1"
    monkeypatch.setenv("ARIA_DEVICE", "cpu")
    assert requested_device(None) == "cpu" and requested_device("auto") == "auto"  # the flag wins
    for bad in ("gpu", "cuda:", "cuda:x", "tpu:0"):
        with pytest.raises(DeviceError, match="unknown device .*: use auto, cpu, cuda or cuda:N"):
            requested_device(bad)


def test_cpu_and_auto_without_a_gpu_are_the_cpu(monkeypatch):
    monkeypatch.delenv("ARIA_DEVICE", raising=False)
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        assert resolve_device(None) == torch.device("cpu")


@no_gpu
def test_cuda_without_a_gpu_is_a_one_line_error():
    for name in ("cuda", "cuda:0", "cuda:3"):
        with pytest.raises(DeviceError) as error:
            resolve_device(name)
        message = str(error.value)
        assert "\n" not in message and message.startswith(f"--device {name}: torch sees no CUDA GPU here")


def test_the_device_is_described_with_the_cpu_model():
    text = describe(torch.device("cpu"))
    assert text.startswith("cpu (") and cpu_model() in text


def test_clip_precision_defaults_to_fp32_on_the_cpu_and_can_be_chosen(monkeypatch):
    monkeypatch.delenv("ARIA_CLIP_PRECISION", raising=False)
    cpu = torch.device("cpu")
    assert inference_dtype(cpu) is torch.float32
    assert inference_dtype(cpu, "bfloat16") is torch.bfloat16
    monkeypatch.setenv("ARIA_CLIP_PRECISION", "bfloat16")
    assert inference_dtype(cpu) is torch.bfloat16
    with pytest.raises(DeviceError, match="unknown precision 'int4'"):
        inference_dtype(cpu, "int4")


def test_clip_in_bf16_reads_nearly_the_fp32_emotion(tmp_path):
    from aria_engine.encoders.clip import ClipEmotionEncoder
    from aria_engine.images import load_image
    from tests.factories.clip import make_clip_checkpoint

    weights = tmp_path / "image_encoder.pt"
    make_clip_checkpoint(weights, seed=3)
    examples = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.png"))
    pictures = [load_image(path.read_bytes()) for path in examples]
    fp32 = ClipEmotionEncoder(weights, precision="float32").encode(pictures)
    bf16_encoder = ClipEmotionEncoder(weights, precision="bfloat16")
    assert bf16_encoder.tower.dtype is torch.bfloat16
    bf16 = bf16_encoder.encode(pictures)
    spread = max(abs(a.valence - b.valence) for a in fp32 for b in fp32)
    assert spread > 0.02  # the pictures read differently, so the comparison means something
    for a, b in zip(fp32, bf16):
        assert abs(a.valence - b.valence) <= 0.01 and abs(a.arousal - b.arousal) <= 0.01


def test_a_transformer_composer_runs_on_the_device_it_is_given(tmp_path):
    """The device path (model moved, cache and inputs on its device, logits back to the CPU
    for the reference sampler) gives the CPU's piece when the device is the CPU."""
    from aria_engine.emotion import Emotion
    from aria_engine.music.neural import TransformerComposer
    from aria_engine.options import GenerationOptions
    from tests.factories.music import make_music_checkpoint

    checkpoint = make_music_checkpoint(tmp_path / "cc", "continuous_concat", seed=0)
    options = GenerationOptions(length=24, window=16, seed=5)
    by_name = TransformerComposer(checkpoint, "continuous_concat", "cpu").compose(Emotion(0.3, -0.2), options)
    by_device = TransformerComposer(checkpoint, "continuous_concat", torch.device("cpu")).compose(Emotion(0.3, -0.2), options)
    assert by_name.tokens == by_device.tokens and len(by_name.tokens) == 24
    assert by_name.stats["device"].startswith("cpu (")


def test_gpu_rows_are_computed_from_free_memory():
    from aria_engine.music.kv_cache import rows_that_fit
    from aria_engine.music.transformer import MusicTransformer, published_config

    with torch.device("meta"):
        model = MusicTransformer.from_config(published_config("continuous_concat"))
    model.positions = torch.zeros(1, 768)
    per_row = 2 * 20 * 2048 * 768 * 4  # keys and values, 20 layers, 2048 positions, fp32
    assert rows_that_fit(model, 2048, 10 * per_row, share=1.0) == 10
    assert rows_that_fit(model, 2048, 10 * per_row) == 8  # 80 % of it
    assert rows_that_fit(model, 2048, 139 * 2**30) == int(139 * 2**30 * 0.8) // per_row
    assert rows_that_fit(model, 2048, 0) == 1
