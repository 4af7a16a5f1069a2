"""The ``butterfly`` command (also ``python -m kernel``).

Built-in subcommands: ``run`` (foreground server), ``start``/``stop``/``restart``/
``status`` (daemon mode, :mod:`kernel.daemon`), ``routes``, ``plugins``, ``config``
and ``call`` (:mod:`kernel.debug`). Plugins add theirs through
``butterfly_add_commands(subparsers)``; a command sets ``run=func`` with
``func(args) -> int`` and builds its kernel with :func:`load_kernel`.

Exit codes: 0 success, 1 failure (config or plugin errors print
``butterfly: error: <message>``, never a traceback), 2 bad usage, 3 ``status``
when not running.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kernel import logs
from kernel.app import Kernel
from kernel.daemon import add_daemon_commands
from kernel.debug import add_call_command, route_signature
from kernel.errors import ButterflyError, ConfigError, PluginLoadError
from kernel.hints import warn_unserved_handlers
from kernel.plugins import disabled_plugins, extra_plugin_modules, make_plugin_manager
from kernel.settings import read_config_file

#: ``scheme://user:password@host`` → the password part, masked in ``butterfly config``.
URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^:/@\s]*:)(?P<password>[^@\s]+)(?P<tail>@)")
MASK = "********"


def parse_set_options(assignments: Sequence[str] | None) -> dict[str, str]:
    """Turn ``--set section.key=value`` options into settings overrides.

    :param assignments: the raw option values
    :return: ``{"section.key": "value"}``
    :raises ConfigError: for an option without ``=`` or without a ``section.``
    """
    overrides: dict[str, str] = {}
    for item in assignments or []:
        name, sep, value = item.partition("=")
        if not sep or "." not in name.strip("."):
            raise ConfigError(f"bad --set {item!r}: expected section.key=value")
        overrides[name.strip()] = value
    return overrides


def load_kernel(args: argparse.Namespace, **overrides: Any) -> Kernel:
    """Build the kernel from ``--config``, ``--set`` and the ``section.key`` ``overrides``.

    Also configures logging from ``[server] log_level`` / ``log_format``.

    :param args: the parsed arguments (``config`` and ``set`` are read if present)
    :param overrides: ``{"section.key": value}``; ``None`` values are ignored
    :return: the configured (not started) kernel
    :raises ConfigError: bad config; :raises PluginLoadError: bad plugin
    """
    merged: dict[str, Any] = parse_set_options(getattr(args, "set", None))
    merged.update({key: value for key, value in overrides.items() if value is not None})
    if not any(getattr(handler, "_butterfly", False) for handler in logging.getLogger().handlers):
        # NOTE: plugins log while the kernel is built; unconfigured structlog would
        # print to stdout and corrupt `--json` output. Warnings only until configured.
        logs.configure("WARNING", "json")
    kernel = Kernel.create(config_path=getattr(args, "config", None), overrides=merged)
    server = kernel.settings.section("server")
    logs.configure(server.log_level, server.log_format)
    return kernel


# -- run ---------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    """``butterfly run``: serve in the foreground until SIGTERM/SIGINT, then drain.

    :param args: the parsed command line
    :return: the exit code
    """
    from kernel.server import Server

    logs.configure("INFO", "console" if args.dev else "json")
    kernel = load_kernel(
        args,
        **{"server.host": args.host, "server.port": args.port, "server.log_format": "console" if args.dev else None},
    )
    warn_unserved_handlers(kernel)
    # NOTE: plugins start before the socket listens, so a port that accepts means
    # a server that is ready (`butterfly start` relies on it).
    kernel.startup()
    # NOTE: the pid file exists before the port accepts, so whoever sees the port
    # open (tests, `butterfly start`) also finds the pid file.
    pid_file = Path(args.pid_file).absolute() if args.pid_file else None
    if pid_file is not None:
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{os.getpid()}\n")
    try:
        try:
            server = Server(kernel)
        except OSError as exc:
            kernel.shutdown()
            server_settings = kernel.settings.section("server")
            raise ButterflyError(f"cannot listen on {server_settings.host}:{server_settings.port}: {exc}") from None
        except BaseException:
            kernel.shutdown()
            raise
        server.install_signal_handlers()
        server.run()
    finally:
        if pid_file is not None:
            from kernel.daemon import remove_pid_file

            remove_pid_file(pid_file, os.getpid())
    return 0


# -- routes, plugins, config ------------------------------------------------------------------


def print_table(rows: list[dict[str, Any]], columns: Sequence[str], out=None) -> None:
    """Print ``rows`` as an aligned text table (the last column is not padded).

    :param rows: one dict per row
    :param columns: the keys to show, in order; also the headings
    :param out: the stream (default stdout)
    :return: ``None``
    """
    out = out or sys.stdout
    cells = [[str(column).upper() for column in columns]]
    cells += [["" if row.get(column) is None else str(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(line[index]) for line in cells) for index in range(len(columns))]
    for line in cells:
        padded = [cell.ljust(width) for cell, width in zip(line[:-1], widths[:-1])] + [line[-1]]
        print("  ".join(padded).rstrip(), file=out)


def print_rows(rows: list[dict[str, Any]], columns: Sequence[str], as_json: bool) -> None:
    """Print ``rows`` as JSON (every key) or as a table of ``columns``.

    :param rows: one dict per row
    :param columns: the table's columns
    :param as_json: print JSON with every key instead
    :return: ``None``
    """
    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False, default=str))
    else:
        print_table(rows, columns)


def cmd_routes(args: argparse.Namespace) -> int:
    """``butterfly routes``: every route with its methods, protocol, owner and signature.

    :param args: the parsed command line
    :return: the exit code
    """
    kernel = load_kernel(args)
    rows = [
        {
            "path": route.path + ("*" if route.prefix else ""),
            "methods": ",".join(sorted(route.methods)) if route.methods else "any",
            "kind": route.kind,
            "admin": "admin" if route.admin else "-",
            "plugin": route.plugin or "-",
            "handler": route.name,
            "signature": route_signature(route),
        }
        for route in kernel.routes
    ]
    print_rows(rows, ("path", "methods", "kind", "admin", "plugin", "handler", "signature"), args.json)
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    """``butterfly plugins``: each plugin, its distribution, version, and whether it is on.

    :param args: the parsed command line
    :return: the exit code
    """
    kernel = load_kernel(args)
    rows = [
        {
            "name": info.name,
            "dist": info.dist,
            "version": info.version,
            "status": "enabled" if info.enabled else "disabled",
            "reason": info.reason,
            "module": info.module,
            "location": info.location,
        }
        for info in kernel.plugins
    ]
    print_rows(rows, ("name", "dist", "version", "status", "reason", "location"), args.json)
    return 0


def mask_value(value: Any) -> Any:
    """Mask passwords inside URLs (``mysql://u:********@h/db``).

    :param value: a setting's value
    :return: the value, with any URL password replaced by ``********``
    """
    if isinstance(value, str):
        return URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}{m['tail']}", value)
    if isinstance(value, list):
        return [mask_value(item) for item in value]
    return value


def cmd_config(args: argparse.Namespace) -> int:
    """``butterfly config``: the effective settings, where each came from, secrets masked.

    :param args: the parsed command line
    :return: the exit code
    """
    kernel = load_kernel(args)
    settings = kernel.settings
    origins = {"file": f"file {settings.config_path}", "cli": "cli", "default": "default"}
    rows = []
    for row in settings.describe():
        origin = f"env {row['env']}" if row["origin"] == "env" else origins.get(row["origin"], row["origin"])
        value = mask_value(row["value"])
        rows.append({**row, "value": value, "origin": origin})
    if not args.json:
        for row in rows:
            value = row["value"]
            row["value"] = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    print_rows(rows, ("section", "key", "value", "origin", "help"), args.json)
    return 0


# -- the parser --------------------------------------------------------------------------------


def _common_options(*, suppress: bool) -> argparse.ArgumentParser:
    """``--config`` and ``--set``, accepted before or after the subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    # NOTE: SUPPRESS on the subcommands, so they do not overwrite a value given before them.
    config_default = argparse.SUPPRESS if suppress else os.environ.get("BUTTERFLY_CONFIG")
    common.add_argument(
        "--config",
        metavar="FILE",
        default=config_default,
        help="config file (default: $BUTTERFLY_CONFIG, else ./butterfly.toml if present)",
    )
    common.add_argument(
        "--set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        default=argparse.SUPPRESS if suppress else None,
        help="override one setting (repeatable); wins over the file and the environment",
    )
    return common


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The full parser, including plugin commands.

    :param argv: the arguments, pre-scanned for ``--config`` so a config file's
        ``[server] disable_plugins`` keeps those plugins from being imported
    :return: the parser
    :raises PluginLoadError: when a plugin cannot be loaded
    """
    parser = argparse.ArgumentParser(
        prog="butterfly",
        parents=[_common_options(suppress=False)],
        description="Butterfly: an RPC-style web and microservice framework.",
        epilog="exit codes: 0 ok, 1 error (butterfly: error: ...), 2 bad usage, 3 status: not running. "
        "Environment: BUTTERFLY_<SECTION>_<KEY> settings, BUTTERFLY_DISABLE_PLUGINS=a,b, "
        "BUTTERFLY_PLUGINS=module,module (extra plugin modules), BUTTERFLY_CONFIG=FILE.",
    )
    common = _common_options(suppress=True)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = subparsers.add_parser(
        "run",
        parents=[common],
        help="run the server in the foreground",
        description="Serve HTTP until SIGTERM/SIGINT, then drain gracefully: stop "
        "accepting, finish in-flight work, run plugin shutdown "
        "(at most [server] shutdown_timeout seconds).",
    )
    run.add_argument("--host", help="listen address (default [server] host = 127.0.0.1)")
    run.add_argument("--port", type=int, help="listen port (default [server] port = 8585)")
    run.add_argument("--dev", action="store_true", help="readable console logs instead of JSON lines")
    run.add_argument(
        "--pid-file", metavar="FILE", help="write the process id to FILE while serving (removed on exit; used by start)"
    )
    run.set_defaults(run=cmd_run)

    add_daemon_commands(subparsers, [common])

    listings = (
        ("routes", cmd_routes, "list every route: path, methods, protocol, admin, plugin, signature"),
        ("plugins", cmd_plugins, "list plugins: distribution, version, location, enabled or disabled and why"),
        ("config", cmd_config, "show the effective settings and where each value came from (secrets masked)"),
    )
    for name, func, text in listings:
        listing = subparsers.add_parser(name, parents=[common], help=text, description=text[0].upper() + text[1:] + ".")
        listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
        listing.set_defaults(run=func)

    add_call_command(subparsers, [common])

    pm, _ = make_plugin_manager(disabled=_disabled_plugins(argv), plugin_modules=extra_plugin_modules(os.environ))
    # NOTE: one implementation at a time, so a failing plugin is named (no traceback).
    for impl in reversed(pm.hook.butterfly_add_commands.get_hookimpls()):
        try:
            impl.function(*[{"subparsers": subparsers}[name] for name in impl.argnames])
        except Exception as exc:
            raise PluginLoadError(
                f'plugin "{impl.plugin_name}" failed to add its commands: {type(exc).__name__}: {exc}',
                plugin_name=impl.plugin_name,
            ) from exc
    return parser


def _config_path(argv: Sequence[str] | None) -> str | None:
    scan = argparse.ArgumentParser(add_help=False)
    scan.add_argument("--config", default=os.environ.get("BUTTERFLY_CONFIG"))
    known, _ = scan.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    return known.config


def _disabled_plugins(argv: Sequence[str] | None) -> dict[str, str]:
    configured: Any = []
    try:
        data, _ = read_config_file(_config_path(argv))
        configured = data.get("server", {}).get("disable_plugins", [])
        return disabled_plugins(os.environ, configured)
    except (ButterflyError, ValueError, AttributeError):
        # reported properly when the kernel is built
        return disabled_plugins(os.environ)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``butterfly``; returns the exit code.

    :param argv: the arguments (default ``sys.argv[1:]``)
    :return: the exit code
    """
    try:
        parser = build_parser(argv)
        args, extras = parser.parse_known_args(argv)
        if extras:
            # NOTE: `call /p a=1 --trace b=2`: argparse cannot interleave a positional
            # list with options, so the words after an option arrive here.
            if getattr(args, "extra_params", False) and not any(word.startswith("-") for word in extras):
                args.params = [*args.params, *extras]
            else:
                parser.error(f"unrecognized arguments: {' '.join(extras)}")
        if not getattr(args, "run", None):
            parser.print_help()
            return 2
        return int(args.run(args) or 0)
    except ButterflyError as exc:
        print(f"butterfly: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # NOTE: `butterfly routes | head`: stop quietly, and keep Python from
        # complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
