"""`aria admin restore`: put the bot's store back from the backup beside it."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    admin = subparsers.add_parser("admin", help="look after the bot's data (restore a backup)")
    actions = admin.add_subparsers(dest="admin_command", metavar="ACTION", required=True)
    restore = actions.add_parser(
        "restore", help="replace a damaged store with its backup (stop the bots first)",
        description="Replace the store (aria.db in the data directory) with its backup (aria.db.backup, "
                    "which the bots refresh every few hours). The old file and its -wal/-shm are kept, "
                    "renamed aria.db.damaged-<time>. Stop every bot using the store first.")
    restore.add_argument("--data-dir", type=Path, help="default: $ARIA_DATA_DIR or the user data dir")
    restore.add_argument("--from", dest="source", type=Path, help="restore this backup file instead")
    restore.add_argument("--force", action="store_true", help="replace the store even if it is not damaged")
    restore.set_defaults(func=run_restore)


def run_restore(args: argparse.Namespace) -> int:
    from bot.commands.bots import default_data_dir
    from bot.commands.checks import UserError
    from bot.store import StoreError, restore

    data_dir = args.data_dir or default_data_dir()
    try:
        path, kept = restore(data_dir / "aria.db", args.source, force=args.force)
    except StoreError as error:
        raise UserError(str(error)) from None
    except OSError as error:
        raise UserError(f"could not restore into {data_dir}: {error.strerror or error}") from None
    print(f"restored {path}" + (f"; the old file is kept as {kept}" if kept else ""))
    return 0
