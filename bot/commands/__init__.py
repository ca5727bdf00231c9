"""`aria` subcommands, one module each. Every module defines `register(subparsers)`, which adds
its parser and sets `func(args) -> int` (the exit code)."""

MODULES = ("compose", "models", "worker", "loadtest", "bots", "admin")
