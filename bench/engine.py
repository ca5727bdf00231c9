"""Engine benchmark: what batching waiting jobs is worth, measured side by side in one run.

    .venv/bin/python bench/engine.py              # 8 transformer jobs, mid-sized random model
    .venv/bin/python bench/engine.py --jobs 4 --length 64 --d-model 128   # quicker

The same jobs (same seeds) go through a LocalEngine twice, with one model thread each time:
once one job at a time (max_batch 1), once composed together (max_batch = jobs). It prints
both wall times, their ratio, the composing time per job, and checks that every piece's MIDI
is byte-identical between the two runs.

Then staggered arrivals (one job every --gap seconds, so each comes while others decode),
twice: joining the running decode at the next step (continuous batching, the default) and
waiting for the running batch to end (join_running=False). It prints the mean and worst time
from submission to result of each, their ratio, and checks the MIDI is identical again.

The model has random weights (no download needed); what matters here is the ratio, not the
music.
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


async def staggered(pipeline: Pipeline, join: bool, jobs: list[Request], gap: float) -> tuple[float, float, list]:
    """Mean and worst latency (submit to result) of jobs arriving `gap` seconds apart."""
    async with LocalEngine(pipeline, concurrency=1, max_batch=len(jobs), join_running=join) as engine:
        submitted = []
        for i, request in enumerate(jobs):
            if i:
                await asyncio.sleep(gap)
            submitted.append(await engine.submit(request))
        ends = [await job.wait() for job in submitted]
    latencies = [job.finished_at - job.submitted_at for job in submitted]
    return sum(latencies) / len(latencies), max(latencies), [
        end.result.midi if isinstance(end, Done) else end.reason for end in ends
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--length", type=int, default=256, help="tokens per piece")
    parser.add_argument("--d-model", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between staggered arrivals")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as models:
        make_music_checkpoint(Path(models) / "continuous_concat", "continuous_concat", n_layer=args.layers,
                              n_head=4, d_model=args.d_model, d_inner=4 * args.d_model, d_condition=16)
        pipeline = Pipeline(models_dir=Path(models))
        jobs = requests(args.jobs, args.length)
        asyncio.run(run(pipeline, 1, jobs[:1]))  # load the model and the SoundFont first
        one_wall, one_compose, one_midi = asyncio.run(run(pipeline, 1, jobs))
        all_wall, all_compose, all_midi = asyncio.run(run(pipeline, args.jobs, jobs))
        wait_mean, wait_worst, wait_midi = asyncio.run(staggered(pipeline, False, jobs, args.gap))
        join_mean, join_worst, join_midi = asyncio.run(staggered(pipeline, True, jobs, args.gap))

    from aria_engine.device import cpu_model

    print(f"{args.jobs} transformer jobs, {args.length} tokens each, d_model {args.d_model}, "
          f"{args.layers} layers, one model thread, on {cpu_model()}")
    print(f"  one at a time : {one_wall:7.2f} s wall   composing {one_compose:6.2f} s per job (alone)")
    print(f"  batched       : {all_wall:7.2f} s wall   composing {all_compose:6.2f} s per batch")
    print(f"  wall ratio one-at-a-time / batched: {one_wall / all_wall:.2f}x")
    print(f"  identical MIDI batched vs alone: {one_midi == all_midi}")
    print(f"staggered arrivals, one every {args.gap:g} s (latency = submit to result)")
    print(f"  wait for the running batch : mean {wait_mean:6.2f} s   worst {wait_worst:6.2f} s")
    print(f"  join it at the next step   : mean {join_mean:6.2f} s   worst {join_worst:6.2f} s")
    print(f"  mean latency ratio wait / join: {wait_mean / join_mean:.2f}x")
    print(f"  identical MIDI joined vs alone: {join_midi == one_midi and wait_midi == one_midi}")


if __name__ == "__main__":
    main()
