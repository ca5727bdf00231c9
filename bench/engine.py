"""Engine benchmark: what batching waiting jobs is worth, measured side by side in one run.

    .venv/bin/python bench/engine.py              # 8 transformer jobs, mid-sized random model
    .venv/bin/python bench/engine.py --jobs 4 --length 64 --d-model 128   # quicker

The same jobs (same seeds) go through a LocalEngine twice, with one model thread each time:
once one job at a time (max_batch 1), once composed together (max_batch = jobs). It prints
both wall times, their ratio, the composing time per job, and checks that every piece's MIDI
is byte-identical between the two runs. The model has random weights (no download needed);
what matters here is the ratio, not the music.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aria_engine.emotion import Emotion  # noqa: E402
from aria_engine.engine import Done, LocalEngine  # noqa: E402
from aria_engine.options import GenerationOptions  # noqa: E402
from aria_engine.pipeline import Origin, Pipeline, Request  # noqa: E402
from tests.factories.music import make_music_checkpoint  # noqa: E402


def requests(jobs: int, length: int) -> list[Request]:
    return [
        Request(
            emotion=Emotion(-0.8 + 1.6 * i / max(1, jobs - 1), 0.5 - i / max(1, jobs)),
            options=GenerationOptions(composer="transformer", mode="continuous_concat", length=length, seed=1000 + i),
            origin=Origin("bench", f"server{i % 3}", "c", f"user{i}"),
        )
        for i in range(jobs)
    ]


async def run(pipeline: Pipeline, batch: int, jobs: list[Request]) -> tuple[float, float, list]:
    """Wall time, mean composing time, and per job its MIDI (or why it failed: a random model
    may write a piece without notes, which has no audio)."""
    async with LocalEngine(pipeline, concurrency=1, max_batch=batch) as engine:
        started = time.perf_counter()
        submitted = [await engine.submit(r) for r in jobs]
        ends = [await job.wait() for job in submitted]
        wall = time.perf_counter() - started
    done = [end for end in ends if isinstance(end, Done)]
    composing = sum(end.result.timings["composing"] for end in done) / max(1, len(done))
    return wall, composing, [end.result.midi if isinstance(end, Done) else end.reason for end in ends]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--length", type=int, default=256, help="tokens per piece")
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as models:
        make_music_checkpoint(Path(models) / "continuous_concat", "continuous_concat", n_layer=args.layers,
                              n_head=4, d_model=args.d_model, d_inner=4 * args.d_model, d_condition=16)
        pipeline = Pipeline(models_dir=Path(models))
        jobs = requests(args.jobs, args.length)
        asyncio.run(run(pipeline, 1, jobs[:1]))  # load the model and the SoundFont first
        one_wall, one_compose, one_midi = asyncio.run(run(pipeline, 1, jobs))
        all_wall, all_compose, all_midi = asyncio.run(run(pipeline, args.jobs, jobs))

    print(f"{args.jobs} transformer jobs, {args.length} tokens each, d_model {args.d_model}, "
          f"{args.layers} layers, one model thread")
    print(f"  one at a time : {one_wall:7.2f} s wall   composing {one_compose:6.2f} s per job (alone)")
    print(f"  batched       : {all_wall:7.2f} s wall   composing {all_compose:6.2f} s per batch")
    print(f"  wall ratio one-at-a-time / batched: {one_wall / all_wall:.2f}x")
    print(f"  identical MIDI batched vs alone: {one_midi == all_midi}")


if __name__ == "__main__":
    main()
