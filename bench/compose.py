"""Time each stage of a 30-second piece on the embedded defaults, and the real-time ratio.

    .venv/bin/python bench/compose.py [--duration 30] [--repeat 7] [--image examples/sunflowers.png]

`Pipeline.run` end to end, with the audio synthesized on one synth and on SYNTH_PARTS synths side
by side (the default), interleaved run by run so both see the same machine load. Loading
(imports, the SoundFont) is timed apart: it happens once per process. The MIDI file and the
pictures are made in a second thread while the audio renders, so the stage times add up to more
than the total. Goal: audio duration / total time >= 30 on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

STAGES = {  # timing key: how the table shows it
    "decoding image": "decoding image",
    "safety": "safety",
    "reading emotion": "reading emotion",
    "composing": "composing",
    "rendering": "rendering",
    "synthesis": "  synthesis",
    "mastering": "  trim+normalise",
    "encoding": "  encoding",
    "writing midi": "writing midi *",
    "drawing": "drawing *",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--image", type=Path, default=REPO / "examples" / "sunflowers.png")
    args = parser.parse_args()

    started = time.perf_counter()
    from aria_engine.options import GenerationOptions
    from aria_engine.pipeline import Pipeline, Request
    from aria_engine.render import SYNTH_PARTS

    pipeline = Pipeline()
    renderer = pipeline.renderer()  # loads the SoundFont
    pipeline.encoder("palette")
    safety = "off"
    try:  # the image-safety gate, as the bots run it by default (the [safety] extra)
        from aria_engine.safety import SafetyUnavailable, check_available

        check_available()
        safety = "refuse"
    except SafetyUnavailable as missing:
        print(f"no safety stage: {missing}")
    pipeline.composer("procedural")
    import aria_engine.visuals  # noqa: F401

    load_s = time.perf_counter() - started
    data = args.image.read_bytes()
    variants = {"1 synth": 1, f"{SYNTH_PARTS} synths": SYNTH_PARTS}
    runs: dict[str, list[tuple[float, object]]] = {name: [] for name in variants}
    cpu_s: dict[str, list[float]] = {name: [] for name in variants}  # CPU time of all threads
    load_before = os.getloadavg()[0]

    for seed in range(args.repeat + 1):
        order = list(variants) if seed % 2 == 0 else list(reversed(variants))  # neither always goes first
        for name in order:
            renderer.synth_parts = variants[name]
            request = Request(image=data, options=GenerationOptions(seed=seed, duration_s=args.duration,
                                                                       image_safety=safety))
            t0, cpu0 = time.perf_counter(), time.process_time()
            result = pipeline.run(request)
            total, cpu = time.perf_counter() - t0, time.process_time() - cpu0
            if seed:  # the first round warms caches
                runs[name].append((total, result))
                cpu_s[name].append(cpu)
    renderer.synth_parts = SYNTH_PARTS

    print(f"one-time load (imports, SoundFont): {load_s * 1000:8.1f} ms")
    from aria_engine.device import cpu_model

    print(f"on {cpu_model()}; load average {load_before:.2f} -> {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
          f"(other work on the machine makes times noisy); median of {args.repeat} interleaved runs")
    print(f"{'stage (ms)':<18}" + "".join(f"{name:>14}" for name in variants))
    for stage, label in STAGES.items():
        cells = [statistics.median(r.timings.get(stage, 0.0) for _, r in runs[name]) * 1000 for name in variants]
        print(f"{label:<18}" + "".join(f"{c:14.1f}" for c in cells))
    print("* in a second thread while the clip encodes")

    ratios = {}
    for name in variants:
        totals = [t for t, _ in runs[name]]
        audio_s = statistics.median(r.audio.duration_s for _, r in runs[name])
        ratios[name] = audio_s / statistics.median(totals)
        print(f"{name:<10} total median {statistics.median(totals) * 1000:7.1f} ms, best {min(totals) * 1000:7.1f} ms "
              f"(CPU {statistics.median(cpu_s[name]) * 1000:.0f} ms); audio {audio_s:.1f} s; "
              f"real-time ratio {ratios[name]:.1f}x (best {audio_s / min(totals):.1f}x)")
    one, split = ratios.values()
    print(f"split synthesis vs one synth, side by side: {split / one:.2f}x faster end to end (goal >= 30x real time)")


if __name__ == "__main__":
    main()
