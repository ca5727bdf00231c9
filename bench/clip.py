"""CLIP emotion encoder at the published size (ViT-L/14-336, random weights in ARIA's format).

    .venv/bin/python bench/clip.py                 # CPU: fp32 and bf16 side by side
    python bench/clip.py --device cuda             # GPU: images/s at batch 1 and 64

On the CPU it prints seconds per image in fp32 and in bf16 (`ARIA_CLIP_PRECISION=bfloat16`,
goal <= 1.0 s where the CPU has AVX512_BF16) and how far bf16's valence and arousal are from
fp32's on the bundled pictures (goal <= 0.01). On a GPU: images/s at batch 1 and 64 in the
GPU's default precision (goal >= 500 at 64).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aria_engine.device import cpu_has_bf16, describe, resolve_device  # noqa: E402
from aria_engine.encoders.clip import VIT_L_14_336, ClipEmotionEncoder, emotion_head  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def published_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict of ARIA's image_encoder.pt form at the published size, random weights."""
    from transformers import CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    tower = CLIPVisionModelWithProjection(VIT_L_14_336.to_config())
    state = {"clip_model." + k: v for k, v in tower.state_dict().items() if not k.endswith("position_ids")}
    width = VIT_L_14_336.projection_dim
    for head in ("valence_head", "arousal_head"):
        state |= {f"{head}.{k}": v for k, v in emotion_head(width, (width // 2, width // 4)).state_dict().items()}
    return state


def pictures(count: int):
    from PIL import Image

    found = [Image.open(path).convert("RGB") for path in sorted(EXAMPLES.glob("*.png"))]
    return (found * (count // len(found) + 1))[:count]


def seconds_per_batch(encoder: ClipEmotionEncoder, images, rounds: int) -> float:
    pixels = encoder.pixel_values(images)
    encoder.predict(pixels)  # warm up
    best = float("inf")
    for _ in range(rounds):
        if encoder.device.type == "cuda":
            torch.cuda.synchronize(encoder.device)
        start = time.perf_counter()
        encoder.predict(pixels)
        if encoder.device.type == "cuda":
            torch.cuda.synchronize(encoder.device)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"CLIP benchmark: ViT-L/14-336 (random weights) on {describe(device)}, torch {torch.__version__}")
    state = published_state_dict()
    if device.type == "cuda":
        encoder = ClipEmotionEncoder(state, device, batch_size=64)
        for batch in (1, 64):
            seconds = seconds_per_batch(encoder, pictures(batch), args.rounds)
            print(f"  batch {batch:>3} ({encoder.dtype}): {batch / seconds:8.1f} images/s"
                  + ("   goal >= 500" if batch == 64 else ""))
        return
    fp32 = ClipEmotionEncoder(state, device, precision="float32")
    bf16 = ClipEmotionEncoder(state, device, precision="bfloat16")
    images = pictures(4)
    times = {name: seconds_per_batch(enc, images[:1], args.rounds) for name, enc in (("fp32", fp32), ("bf16", bf16))}
    a, b = fp32.encode(images), bf16.encode(images)
    gap = max(max(abs(x.valence - y.valence), abs(x.arousal - y.arousal)) for x, y in zip(a, b))
    print(f"  CPU has native bf16 (AVX512_BF16/AMX): {cpu_has_bf16()}")
    print(f"  fp32: {times['fp32']:.2f} s per image")
    print(f"  bf16: {times['bf16']:.2f} s per image ({times['fp32'] / times['bf16']:.2f}x fp32)   goal <= 1.0 s")
    print(f"  bf16 vs fp32, largest valence/arousal difference on {len(images)} pictures: {gap:.4f}   goal <= 0.01")


if __name__ == "__main__":
    main()
