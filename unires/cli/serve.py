"""``unires serve``: a local web page to restore photos (see unires/app)."""

from __future__ import annotations

import argparse
import ipaddress
import sys

from .common import add_model_arguments, load_pipeline, tile_settings_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``unires serve``."""
    from ..app import DEFAULT_MAX_OUTPUT_MEGAPIXELS  # light: no torch, no Gradio

    p = sub.add_parser(
        "serve",
        help="restore photos in a local web page",
        description="Start a web page (Gradio) to upload a photo, mix the task weights with "
        "sliders, restore and compare. Listens on localhost only unless --host says otherwise. "
        'Needs the app extra: pip install -e ".[app]".',
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: localhost)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    p.add_argument(
        "--examples",
        default="demo-output",
        metavar="DIR",
        help="folder whose lq.png `make demo` wrote, offered as an example (default demo-output)",
    )
    p.add_argument(
        "--max-megapixels",
        type=float,
        default=DEFAULT_MAX_OUTPUT_MEGAPIXELS,
        metavar="MP",
        help=f"largest result in megapixels (default {DEFAULT_MAX_OUTPUT_MEGAPIXELS:g})",
    )
    p.add_argument(
        "--queue-size", type=int, default=32, metavar="N", help="most requests kept waiting"
    )
    add_model_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``unires serve``: the web page, until interrupted; 0.

    Raises:
        UsageError: a port, size limit or queue size out of range; or the model does not load.
        MissingExtra: Gradio (the ``app`` extra) is not installed.
        CommandError: the server does not start, e.g. its port is taken (exit 1).
    """
    from ..extras import require
    from . import CommandError, UsageError

    if not 0 <= args.port <= 65535:
        raise UsageError("--port must be between 0 and 65535")
    if not args.max_megapixels > 0:
        raise UsageError("--max-megapixels must be positive")
    if args.queue_size < 1:
        raise UsageError("--queue-size must be at least 1")
    require("app", "unires serve (the web app, Gradio)")
    if not _is_loopback(args.host):
        print(
            f"warning: listening on {args.host}: anyone who can reach this machine can use it",
            file=sys.stderr,
        )
    pipe = load_pipeline(args)
    from ..app.server import serve

    try:
        serve(
            pipe,
            host=args.host,
            port=args.port,
            examples_dir=args.examples,
            max_output_megapixels=args.max_megapixels,
            queue_size=args.queue_size,
            tiles=tile_settings_from_args(args),
        )
    except OSError as e:
        taken = "Cannot find empty port" in str(e)
        message = f"port {args.port} is in use: choose another with --port" if taken else e
        raise CommandError(str(message)) from None
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
