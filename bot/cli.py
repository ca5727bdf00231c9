"""The `aria` command line. Subcommands live in bot/commands/, one module each."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from bot.commands import MODULES
from bot.commands.checks import UserError


class _Parser(argparse.ArgumentParser):
    """Usage mistakes in one line too (argparse prints the whole usage first), exit code 2."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="aria",
        description="ARIA: a picture's emotion, music composed to match it, and its audio.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens (to stderr)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in MODULES:
        importlib.import_module(f"bot.commands.{name}").register(subparsers)  # a missing one is an error
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except UserError as error:
        print(f"aria: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aria: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `aria compose ... | head -1`: the reader left, not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
