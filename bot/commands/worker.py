"""`aria worker --redis URL`: run the models for jobs that bots put in Redis."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bot.commands.devices import add_device_argument


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "worker", help="run jobs from a Redis queue (a GPU or CPU worker for the bots)",
        description="Take jobs from Redis, compose and render them, and store the results for the bots.",
    )
    parser.add_argument("--redis", default=os.environ.get("ARIA_REDIS_URL"), metavar="URL",
                        help="e.g. redis://localhost:6379/0 (default: $ARIA_REDIS_URL)")
    parser.add_argument("--prefix", default="aria", help="key prefix shared with the bots (default: aria)")
    parser.add_argument("--name", help="this worker's name in Redis (default: host-pid)")

    work = parser.add_argument_group("work")
    work.add_argument("--concurrency", type=int, default=1, help="jobs run in parallel threads (default: 1)")
    work.add_argument("--max-batch", type=int, default=None,
                      help="jobs taken and composed together at most, when a thread is free (default: 4 on a CPU, 64 on a GPU)")
    work.add_argument("--visibility-timeout", type=float, default=60.0, metavar="SECONDS",
                      help="a job held this long without a heartbeat goes to another worker (default: 60)")
    work.add_argument("--max-deliveries", type=int, default=5,
                      help="hand-outs before a job is failed as one that kills workers (default: 5)")
    work.add_argument("--job-timeout", type=float, default=600.0, metavar="SECONDS",
                      help="stop a job running longer than this (default: 600)")
    work.add_argument("--result-ttl", type=int, default=3600, metavar="SECONDS",
                      help="how long results and events stay in Redis (default: 3600)")
    work.add_argument("--no-warm-up", action="store_true", help="load backends at the first job, not at start")

    backends = parser.add_argument_group("backends")
    backends.add_argument("--models-dir", type=Path, help="the models directory (default: ARIA_MODELS_DIR or the user data dir)")
    backends.add_argument("--model-dir", type=Path, help="one checkpoint folder, or a models directory")
    backends.add_argument("--encoder-weights", type=Path, help="ARIA image_encoder.pt")
    backends.add_argument("--soundfont", type=Path, help="a .sf2 SoundFont (default: FluidR3_GM, else TimGM6mb)")
    add_device_argument(backends)

    ops = parser.add_argument_group("operations")
    ops.add_argument("--metrics-port", type=int, help="serve /metrics and /healthz on this port")
    ops.add_argument("--metrics-host", default="0.0.0.0", help="address for --metrics-port (default: all)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    if not args.redis:
        print("aria worker: give --redis URL (or set ARIA_REDIS_URL)", file=sys.stderr)
        return 2
    for name in ("concurrency", "max_batch", "max_deliveries"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            print(f"aria worker: --{name.replace('_', '-')} must be at least 1", file=sys.stderr)
            return 2
    if args.visibility_timeout <= 0 or args.job_timeout <= 0:
        print("aria worker: timeouts must be positive", file=sys.stderr)
        return 2

    import logging

    from aria_engine.device import DeviceError
    from aria_engine.pipeline import Pipeline
    from aria_engine.worker import Worker, default_max_batch, run_worker_process

    logging.getLogger("aria_engine").setLevel(logging.INFO)
    try:
        pipeline = Pipeline(models_dir=args.models_dir, model_dir=args.model_dir,
                            encoder_weights=args.encoder_weights, soundfont=args.soundfont, device=args.device)
        pipeline.device()  # a GPU asked for and not there is refused now, not at the first job
    except DeviceError as error:
        print(f"aria worker: {error}", file=sys.stderr)
        return 2
    from aria_engine.safety import SafetyUnavailable, check_available

    try:  # the bots ask for the image-safety gate by default: a worker that cannot run it does not start
        check_available()
    except SafetyUnavailable as error:
        print(f"aria worker: the image-safety gate is on by default, and {error}", file=sys.stderr)
        return 2
    worker = Worker(
        args.redis, pipeline=pipeline, prefix=args.prefix, name=args.name, concurrency=args.concurrency,
        max_batch=args.max_batch or default_max_batch(pipeline), visibility_timeout_s=args.visibility_timeout,
        max_deliveries=args.max_deliveries, job_timeout_s=args.job_timeout, result_ttl_s=args.result_ttl,
        warm_up=not args.no_warm_up,
    )
    return run_worker_process(worker, args.metrics_port, args.metrics_host)
