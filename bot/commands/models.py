"""`aria models list` and `aria models pull`: the published ARIA weights on disk."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aria_engine.options import MODES


def register(subparsers) -> None:
    models = subparsers.add_parser("models", help="list or download the ARIA model weights")
    models.add_argument("--models-dir", type=Path, help="default: ARIA_MODELS_DIR or the user data dir")
    actions = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="what is installed, and which backends `auto` uses")
    listing.add_argument("--mode", choices=MODES, default=MODES[0])
    listing.set_defaults(func=run_list)

    pull = actions.add_parser("pull", help="download vincentamato/ARIA from the Hugging Face hub")
    pull.add_argument("--mode", dest="modes", action="append", choices=MODES,
                      help="only this mode's checkpoint (repeatable; default: all three)")
    pull.add_argument("--no-encoder", action="store_true", help="skip image_encoder.pt (1.7 GB)")
    pull.add_argument("--repo", default="vincentamato/ARIA")
    pull.add_argument("--revision", help="a branch, tag or commit of the repo")
    pull.set_defaults(func=run_pull)


def run_list(args: argparse.Namespace) -> int:
    from aria_engine.models import cmd_list

    print(cmd_list(args.models_dir, args.mode))
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from aria_engine.models import ModelDownloadError, cmd_pull, default_models_dir
    from bot.commands.checks import writable_folder

    models_dir = writable_folder(args.models_dir or default_models_dir(), "--models-dir")
    try:
        print(cmd_pull(
            models_dir,
            tuple(args.modes or MODES),
            include_encoder=not args.no_encoder,
            repo_id=args.repo,
            revision=args.revision,
            progress=sys.stderr.isatty(),
        ))
    except ModelDownloadError as error:
        print(f"aria: {error}", file=sys.stderr)
        return 1
    return 0
