"""Time each stage of a 30-second piece on the embedded defaults, and the real-time ratio.

    .venv/bin/python bench/compose.py [--duration 30] [--repeat 5] [--image examples/sunflowers.png]

Loading (imports, the SoundFont) is timed apart: it happens once per process.
Goal: audio duration / total time >= 30 on 2 cores.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--image", type=Path, default=REPO / "examples" / "sunflowers.png")
    args = parser.parse_args()

    started = time.perf_counter()
    from aria_engine.options import GenerationOptions
    from aria_engine.pipeline import Pipeline, Request

    pipeline = Pipeline()
    pipeline.renderer()  # load the SoundFont
    pipeline.encoder("palette")
    pipeline.composer("procedural")
    import aria_engine.visuals  # noqa: F401  (matplotlib import)

    load_s = time.perf_counter() - started
    data = args.image.read_bytes()

    runs = []
    for seed in range(args.repeat + 1):
        request = Request(image=data, options=GenerationOptions(seed=seed, duration_s=args.duration))
        t0 = time.perf_counter()
        result = pipeline.run(request)
        total = time.perf_counter() - t0
        if seed:  # the first run warms caches
            runs.append((total, result))

    stages = ("decoding image", "reading emotion", "composing", "drawing", "rendering")
    print(f"one-time load (imports, SoundFont): {load_s * 1000:8.1f} ms")
    print(f"{'stage':<18}{'median ms':>12}")
    for stage in stages:
        print(f"{stage:<18}{statistics.median(r.timings[stage] for _, r in runs) * 1000:12.1f}")
    total = statistics.median(t for t, _ in runs)
    audio_s = statistics.median(r.audio.duration_s for _, r in runs)
    print(f"{'total':<18}{total * 1000:12.1f}")
    print(f"audio duration {audio_s:.1f} s; real-time ratio (audio / total): {audio_s / total:.1f}x (goal >= 30x)")


if __name__ == "__main__":
    main()
