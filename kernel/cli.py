"""The ``butterfly`` command (also ``python -m kernel``).

Subcommands: ``run`` (foreground server). Plugins add theirs through
``butterfly_add_commands(subparsers)``; a command sets ``run=func`` with
``func(args) -> int`` and builds its kernel with :func:`load_kernel`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from kernel import logs
from kernel.app import Kernel
from kernel.errors import ButterflyError
from kernel.plugins import make_plugin_manager
from kernel.settings import as_list, read_config_file


def load_kernel(args: argparse.Namespace, **overrides) -> Kernel:
    """Build the kernel from ``--config`` and the ``section.key`` ``overrides``.

    Also configures logging from ``[server] log_level`` / ``log_format``.
    """
    overrides = {key: value for key, value in overrides.items() if value is not None}
    kernel = Kernel.create(config_path=getattr(args, "config", None), overrides=overrides)
    server = kernel.settings.section("server")
    logs.configure(server.log_level, server.log_format)
    return kernel


def cmd_run(args: argparse.Namespace) -> int:
    """``butterfly run``: serve in the foreground until SIGTERM/SIGINT."""
    from kernel.server import serve

    logs.configure("INFO", "console" if args.dev else "json")
    kernel = load_kernel(args, **{"server.host": args.host, "server.port": args.port,
                                  "server.log_format": "console" if args.dev else None})
    serve(kernel)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full parser, including plugin commands."""
    parser = argparse.ArgumentParser(
        prog="butterfly",
        description="Butterfly: an RPC-style web and microservice framework.",
    )
    parser.add_argument("--config", metavar="FILE", default=os.environ.get("BUTTERFLY_CONFIG"),
                        help="config file (default: ./butterfly.toml if present)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = subparsers.add_parser("run", help="run the server in the foreground",
                                description="Serve HTTP until SIGTERM/SIGINT, then drain gracefully.")
    run.add_argument("--host", help="listen address (default [server] host = 127.0.0.1)")
    run.add_argument("--port", type=int, help="listen port (default [server] port = 8585)")
    run.add_argument("--dev", action="store_true", help="readable console logs instead of JSON lines")
    run.set_defaults(run=cmd_run)

    pm, _ = make_plugin_manager(disabled=_disabled_plugins())
    pm.hook.butterfly_add_commands(subparsers=subparsers)
    return parser


def _disabled_plugins() -> set[str]:
    disabled = set(as_list(os.environ.get("BUTTERFLY_DISABLE_PLUGINS", "")))
    try:
        data, _ = read_config_file(os.environ.get("BUTTERFLY_CONFIG"))
        disabled |= set(as_list(data.get("server", {}).get("disable_plugins", [])))
    except (ButterflyError, ValueError):
        pass  # reported properly when the kernel is built
    return disabled


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "run", None):
            parser.print_help()
            return 2
        return int(args.run(args) or 0)
    except ButterflyError as exc:
        print(f"butterfly: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
