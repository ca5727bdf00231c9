"""`aria` subcommands, one module each. Every module defines `register(subparsers)`, which adds
its parser and sets `func(args) -> int` (the exit code)."""

MODULES = ("compose", "jam", "models", "worker", "loadtest", "bots", "admin")
