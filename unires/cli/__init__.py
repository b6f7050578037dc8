"""The ``unires`` command: a thin layer over the library.

Each sub-command lives in its own module with ``add_parser(subparsers)`` that registers it and
sets ``func`` to a function taking the parsed arguments and returning an exit code.
Exit codes: 0 all succeeded, 1 some inputs failed, 2 usage errors.
"""

from __future__ import annotations

import argparse
import sys

from . import bench, convert, degrade, demo, diversephotos, restore, search, serve, train
from .common import CommandError, UsageError

__all__ = ["COMMANDS", "CommandError", "UsageError", "build_parser", "main"]

COMMANDS = (restore, demo, search, degrade, diversephotos, train, convert, bench, serve)


def build_parser() -> argparse.ArgumentParser:
    """The ``unires`` parser with every sub-command registered."""
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="unires",
        description="UniRes: restore photos with complex degradations (arXiv 2506.05599).",
    )
    parser.add_argument("--version", action="version", version=f"unires {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMANDS:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one ``unires`` command; returns its exit code (0 ok, 1 some inputs failed, 2 usage,
    130 interrupted). A ``CommandError`` (``UsageError``: exit 2) or ``MissingExtra`` (exit 2)
    becomes one line on stderr, ``unires COMMAND: error: ...``: the one place commands fail.

    Raises:
        SystemExit: from argparse (``--help``, bad flags).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    from ..extras import MissingExtra

    try:
        return int(args.func(args) or 0)
    except CommandError as e:
        print(f"unires {args.command}: error: {e}", file=sys.stderr)
        return e.code
    except MissingExtra as e:
        print(f"unires {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
