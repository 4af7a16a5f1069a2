"""The ``butterfly`` command (also ``python -m kernel``).

Built-in subcommands: ``run`` (foreground server; ``--dev`` for console lines and
reload, :mod:`kernel.reload`), ``start``/``stop``/``restart``/``status`` (daemon
mode, :mod:`kernel.daemon`), ``routes``, ``plugins``, ``config``, ``call``
(:mod:`kernel.debug`) and ``init`` (:mod:`kernel.init`). Plugins add theirs through
``butterfly_add_commands(subparsers)``; a command sets ``run=func`` with
``func(args) -> int`` and builds its kernel with :func:`load_kernel`. Every parser
of the tree shares the global options and the error handling of
:mod:`kernel.cliargs`.

Exit codes: 0 success, 1 failure (config or plugin errors print
``butterfly: error: <message>``, never a traceback), 2 bad usage, 3 ``status``
when not running and HTTP commands when the server cannot be reached.
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

import structlog

from kernel import logs
from kernel.app import Kernel
from kernel.cliargs import CommandError, CommandParser, UsageError, mask_text, place_leftovers, secret_values
from kernel.daemon import add_daemon_commands
from kernel.debug import add_call_command, route_signature
from kernel.errors import ButterflyError, ConfigError, PluginLoadError
from kernel.hints import warn_unserved_handlers
from kernel.init import add_init_command
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


def load_kernel(
    args: argparse.Namespace, *, serving: bool = False, plugins: Sequence[Any] = (), **overrides: Any
) -> Kernel:
    """Build the kernel from ``--config``, ``--set`` and the ``section.key`` ``overrides``.

    Also configures logging from ``[server] log_level`` / ``log_format``. A one-shot
    command (not ``serving``) shows only warnings on stderr, in console format,
    unless ``-v``; the log files still get every line.

    :param args: the parsed arguments (``config``, ``set``, ``verbose`` are read if present)
    :param serving: the server (``run``): log lines as configured
    :param plugins: extra plugin objects for this kernel (``run --dev`` adds its console lines)
    :param overrides: ``{"section.key": value}``; ``None`` values are ignored
    :return: the configured (not started) kernel
    :raises ConfigError: bad config; :raises PluginLoadError: bad plugin
    """
    merged: dict[str, Any] = parse_set_options(getattr(args, "set", None))
    merged.update({key: value for key, value in overrides.items() if value is not None})
    verbose = bool(getattr(args, "verbose", False))
    if not any(getattr(handler, "_butterfly", False) for handler in logging.getLogger().handlers):
        # NOTE: plugins log while the kernel is built; unconfigured structlog would
        # print to stdout and corrupt `--json` output. Warnings only until configured.
        # NOTE: plugins may lower the root level while they configure (trace): the
        # console handler keeps its own threshold.
        quiet = None if verbose or serving else "WARNING"
        logs.configure("INFO" if verbose else "WARNING", "json" if serving else "console", console_level=quiet)
    kernel = Kernel.create(config_path=getattr(args, "config", None), overrides=merged, plugins=plugins)
    server = kernel.settings.section("server")
    if serving:
        logs.configure(server.log_level, server.log_format, colors=getattr(args, "color", None) or None)
    else:
        # NOTE: one-shot commands print their result, not start-up lines ("database ready").
        logs.configure(server.log_level, "console", console_level=None if verbose else "WARNING")
    return kernel


# -- run ---------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    """``butterfly run``: serve in the foreground until SIGTERM/SIGINT, then drain.

    With ``--workers N`` (or ``[server] workers``) above 1 this process becomes the
    supervisor of N worker processes (:mod:`kernel.workers`); a worker is this same
    command with ``--worker-slot``.

    :param args: the parsed command line
    :return: the exit code
    """
    from kernel import workers
    from kernel.server import Server

    overrides = {
        "server.host": args.host,
        "server.port": args.port,
        "server.log_format": "console" if args.dev else None,
    }
    colors = True if args.color else None
    slot = args.worker_slot
    if slot is None:
        server_settings = workers.server_settings(args, overrides)
        if args.dev and not args.no_reload and args.supervisor_fd is None:
            from kernel import reload

            logs.configure("INFO", "console", colors=colors)
            if reload.reloader_available():
                return reload.run_with_reload(args, args.argv, server_settings.shutdown_timeout)
            structlog.get_logger("butterfly.reload").warning(
                "reload is off: install watchfiles (pip install 'butterfly-kernel[dev]')"
            )
        count = args.workers or server_settings.workers
        if count > 1:
            return workers.supervise(args, server_settings, count)
    else:
        logs.PROCESS_FIELDS.update(worker=slot, pid=os.getpid())
    logs.configure("INFO", "console" if args.dev else "json", colors=colors)
    extra_plugins = []
    if args.dev:
        from kernel.devconsole import RequestLines, want_colors

        extra_plugins.append((RequestLines(sys.stderr, want_colors(sys.stderr, colors)), "dev-console"))
    kernel = load_kernel(args, serving=True, plugins=extra_plugins, **overrides)
    warn_unserved_handlers(kernel)
    # NOTE: plugins start before the socket listens, so a port that accepts means
    # a server that is ready (`butterfly start` relies on it).
    kernel.startup()
    # NOTE: the pid file exists before the port accepts, so whoever sees the port
    # open (tests, `butterfly start`) also finds the pid file.
    pid_file = Path(args.pid_file).absolute() if args.pid_file and slot is None else None
    if pid_file is not None:
        pid_file.parent.mkdir(parents=True, exist_ok=True)
        pid_file.write_text(f"{os.getpid()}\n")
    server_settings = kernel.settings.section("server")
    try:
        try:
            if slot is None:
                server = Server(kernel)
            else:
                server = Server(kernel, sockets=[workers.bind_shared_port(server_settings.host, server_settings.port)])
        except OSError as exc:
            kernel.shutdown()
            raise ButterflyError(f"cannot listen on {server_settings.host}:{server_settings.port}: {exc}") from None
        except BaseException:
            kernel.shutdown()
            raise
        server.install_signal_handlers()
        if args.supervisor_fd is not None:
            workers.connect_to_supervisor(args.supervisor_fd, server.stop)
        server.run()
    finally:
        if pid_file is not None:
            from kernel.daemon import remove_pid_file

            remove_pid_file(pid_file, os.getpid())
    return 0


def positive_count(text: str) -> int:
    """argparse type: an integer ``>= 1``."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {number}")
    return number


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


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The full parser, including plugin commands.

    Every parser of the tree is a :class:`~kernel.cliargs.CommandParser`: the global
    options (``--url``, ``--token``, ``-v``, ``--config``, ``--set``) are accepted
    before or after any subcommand, plugins' included.

    :param argv: the arguments, pre-scanned for ``--config`` so a config file's
        ``[server] disable_plugins`` keeps those plugins from being imported
    :return: the parser
    :raises PluginLoadError: when a plugin cannot be loaded
    """
    parser = CommandParser(
        prog="butterfly",
        root=True,
        description="Butterfly: an RPC-style web and microservice framework.",
        epilog="exit codes: 0 ok, 1 error (butterfly: error: ...), 2 bad usage, 3 not running / server unreachable. "
        "Environment: BUTTERFLY_URL, BUTTERFLY_TOKEN, BUTTERFLY_CONFIG=FILE, BUTTERFLY_<SECTION>_<KEY> settings, "
        "BUTTERFLY_DISABLE_PLUGINS=a,b, BUTTERFLY_PLUGINS=module,module (extra plugin modules).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = subparsers.add_parser(
        "run",
        help="run the server in the foreground",
        description="Serve HTTP until SIGTERM/SIGINT, then drain gracefully: stop "
        "accepting, finish in-flight work, run plugin shutdown "
        "(at most [server] shutdown_timeout seconds). With --workers N, N supervised "
        "processes share the port; a dead one is restarted. With --dev: readable, coloured "
        "console lines (one per request) and a restart whenever a file under [router] "
        "handlers_dir or the config file changes.",
    )
    run.add_argument("--host", help="listen address (default [server] host = 127.0.0.1)")
    run.add_argument("--port", type=int, help="listen port (default [server] port = 8585)")
    run.add_argument(
        "--dev",
        action="store_true",
        help="development: console log lines, a line per request, reload on handler/config changes",
    )
    run.add_argument("--no-reload", action="store_true", help="with --dev: do not watch files")
    run.add_argument("--color", action="store_true", help="colour the console lines even when stderr is not a terminal")
    run.add_argument(
        "--pid-file", metavar="FILE", help="write the process id to FILE while serving (removed on exit; used by start)"
    )
    run.add_argument(
        "--workers",
        type=positive_count,
        metavar="N",
        help="serve with N processes sharing the port (SO_REUSEPORT), supervised (default [server] workers = 1)",
    )
    # internal: how the supervisor starts a worker (kernel.workers), and the reloader its server
    run.add_argument("--worker-slot", type=int, help=argparse.SUPPRESS)
    run.add_argument("--supervisor-fd", type=int, help=argparse.SUPPRESS)
    run.set_defaults(run=cmd_run)

    add_daemon_commands(subparsers)

    listings = (
        ("routes", cmd_routes, "list every route: path, methods, protocol, admin, plugin, signature"),
        ("plugins", cmd_plugins, "list plugins: distribution, version, location, enabled or disabled and why"),
        ("config", cmd_config, "show the effective settings and where each value came from (secrets masked)"),
    )
    for name, func, text in listings:
        listing = subparsers.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
        listing.set_defaults(run=func)

    add_call_command(subparsers)
    add_init_command(subparsers)

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

    Nothing printed here shows a secret of the command line (``--token``,
    ``--password``, ``password=...``): see :func:`kernel.cliargs.secret_values`.

    :param argv: the arguments (default ``sys.argv[1:]``)
    :return: the exit code
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    secrets = secret_values(argv)
    try:
        parser = build_parser(argv)
        args, leftovers = parser.parse_known_args(argv)
        place_leftovers(args, leftovers)
        args.argv = argv
        if not getattr(args, "run", None):
            # NOTE: a command group without its subcommand (``butterfly mq``) shows its own help.
            getattr(args, "command_parser", parser).print_help()
            return 2
        return int(args.run(args) or 0)
    except UsageError as exc:
        if exc.usage:
            print(exc.usage.rstrip("\n"), file=sys.stderr)
        print(mask_text(f"{exc.prog}: error: {exc}", secrets), file=sys.stderr)
        return exc.exit_code
    except CommandError as exc:
        print(mask_text(f"butterfly: error: {exc}", secrets), file=sys.stderr)
        return exc.exit_code
    except ButterflyError as exc:
        print(mask_text(f"butterfly: error: {exc}", secrets), file=sys.stderr)
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
