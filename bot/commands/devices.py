"""`--device`, shared by every command that runs models (compose, mood, worker, bot)."""

from __future__ import annotations

import argparse

from aria_engine.device import DEVICE_CHOICES, DEVICE_ENV


def add_device_argument(parser) -> None:
    parser.add_argument(
        "--device", default=None, metavar="DEVICE",
        help=f"where the neural models run: {DEVICE_CHOICES} (default: ${DEVICE_ENV}, else auto: a GPU when torch sees one)",
    )


def check_device(args: argparse.Namespace) -> None:
    """A device named on the command line must be usable here, even when the job at hand needs
    no model (raises DeviceError, a ValueError, with one line)."""
    if getattr(args, "device", None):
        from aria_engine.device import resolve_device

        resolve_device(args.device)
