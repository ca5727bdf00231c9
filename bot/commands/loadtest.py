"""`aria loadtest`: flood an engine (local, or Redis with worker processes) and report what happened."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "loadtest", help="submit many jobs from many simulated servers and report latency, fairness, losses",
        description="Submit many small jobs at once from simulated servers (embedded defaults) and report "
                    "what became of them. Exits 1 if any job was lost or failed.",
    )
    parser.add_argument("--jobs", type=int, default=50, help="jobs to submit (default: 50)")
    parser.add_argument("--servers", type=int, default=5, help="simulated servers (default: 5)")
    parser.add_argument("--users", type=int, default=3, help="users per server (default: 3)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of music per job (default: 5)")
    parser.add_argument("--backend", choices=("local", "redis"), default="local")
    parser.add_argument("--redis-url", metavar="URL", help="Redis for --backend redis")
    parser.add_argument("--workers", type=int, default=2,
                        help="Redis: `aria worker` processes to start (default: 2; 0 = use running ones)")
    parser.add_argument("--kill-worker-every", type=float, metavar="SECONDS",
                        help="Redis: SIGKILL a worker this often (counted from when the last replacement was ready), and start a fresh one")
    parser.add_argument("--concurrency", type=int, default=2, help="model threads (local) or per worker (default: 2)")
    parser.add_argument("--max-batch", type=int, default=4, help="jobs composed together at most (default: 4)")
    parser.add_argument("--visibility-timeout", type=float, default=5.0,
                        help="Redis: for the workers started here (default: 5 s)")
    parser.add_argument("--deadline", type=float, default=1800.0, help="stop waiting after this many seconds")
    parser.add_argument("--seed", type=int, default=0, help="for the plan of servers, users and moods")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from aria_engine.loadtest import LoadConfig, main

    problems = [f"--{name} must be at least 1" for name in ("jobs", "servers", "users", "concurrency")
                if getattr(args, name) < 1]
    if args.backend == "redis" and not args.redis_url:
        problems.append("--backend redis needs --redis-url")
    if args.kill_worker_every is not None and (args.backend != "redis" or args.workers < 1):
        problems.append("--kill-worker-every needs --backend redis and --workers 1 or more")
    if not 1 <= args.duration <= 600:
        problems.append("--duration must be between 1 and 600 seconds")
    if problems:
        for problem in problems:
            print(f"aria loadtest: {problem}", file=sys.stderr)
        return 2
    config = LoadConfig(
        jobs=args.jobs, servers=args.servers, users_per_server=args.users, backend=args.backend,
        redis_url=args.redis_url, workers=args.workers, kill_worker_every=args.kill_worker_every,
        duration=args.duration, concurrency=args.concurrency, max_batch=args.max_batch,
        visibility_timeout=args.visibility_timeout, deadline_s=args.deadline, seed=args.seed,
    )
    return main(config, args.json)
