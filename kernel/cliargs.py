"""One grammar for ``butterfly`` and every plugin's subcommands.

Every parser of the command tree is a :class:`CommandParser`, so every level
accepts the global options — ``--url``, ``--token``, ``-v/--verbose``,
``--config``, ``--set`` — before or after its subcommand::

    butterfly --token T ruqi add job ...      # the same as
    butterfly ruqi add job ... --token T

Plugins get this for free: ``subparsers.add_parser(...)`` builds a
:class:`CommandParser` (argparse builds sub-parsers of the parent's class). A
plugin option with the same name as a global one wins on its own parser.

Usage errors never echo a secret: :class:`CommandParser` raises
:class:`UsageError` instead of printing, and :func:`main <kernel.cli.main>` masks
the values of ``--token``/``--password``-like options and ``k=v`` words with
secret-looking keys (:func:`kernel.redaction.is_secret_name`) before printing.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from kernel.errors import ButterflyError
from kernel.redaction import MASK, is_secret_name

#: Base URL of the server that HTTP commands (ruqi, wuxing) talk to.
URL_ENV = "BUTTERFLY_URL"
#: Bearer token (an API token or a JWT) that HTTP commands send.
TOKEN_ENV = "BUTTERFLY_TOKEN"
CONFIG_ENV = "BUTTERFLY_CONFIG"
#: Exit code of a usage error (argparse's).
EXIT_USAGE = 2
#: Secrets shorter than this are not searched for in messages (they would mask common letters).
MIN_MASKED_LENGTH = 3
_OPTION_WITH_VALUE = re.compile(r"^(--?[A-Za-z0-9][\w-]*)=(.*)$", re.DOTALL)


class CommandError(ButterflyError):
    """A command failed; ``exit_code`` is what ``butterfly`` exits with.

    :param message: printed as ``butterfly: error: <message>``
    :param exit_code: 1 refused or failed, 2 bad usage, 3 server unreachable
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class UsageError(CommandError):
    """The command line cannot be understood (exit code 2).

    :param message: what is wrong
    :param usage: the usage line of the parser that refused it, if any
    :param prog: that parser's name (``butterfly ruqi add``)
    """

    def __init__(self, message: str, *, usage: str = "", prog: str = "butterfly") -> None:
        super().__init__(message, EXIT_USAGE)
        self.usage = usage
        self.prog = prog


class CommandParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` with the global options and quiet errors.

    :param root: the top-level parser: its global options carry the real defaults
        (environment variables); on every other parser they default to "not given"
        so a value given before the subcommand is not overwritten
    :param environ: where ``BUTTERFLY_URL`` / ``BUTTERFLY_TOKEN`` / ``BUTTERFLY_CONFIG``
        come from (default ``os.environ``); only the root reads it
    """

    def __init__(self, *args: Any, root: bool = False, environ: Mapping[str, str] | None = None, **kwargs: Any):
        # NOTE: "resolve": a plugin that defines its own --url or -v on its parser wins there.
        kwargs.setdefault("conflict_handler", "resolve")
        super().__init__(*args, **kwargs)
        add_global_options(self, environ=(os.environ if environ is None else environ) if root else None)
        # NOTE: the deepest parser's default wins, so ``args.command_parser`` is the parser
        # of the command that runs (its usage line goes with errors found after parsing).
        self.set_defaults(command_parser=self)

    def add_subparsers(self, **kwargs: Any) -> Any:
        """:meth:`argparse.ArgumentParser.add_subparsers`, remembered for :meth:`command_paths`."""
        action = super().add_subparsers(**kwargs)
        self.subcommands = action
        return action

    def command_paths(self) -> list[tuple[str, ...]]:
        """Every command below this parser: ``[("ruqi",), ("ruqi", "add"), ...]``."""
        paths: list[tuple[str, ...]] = []
        action = getattr(self, "subcommands", None)
        for name, sub in (action.choices if action is not None else {}).items():
            paths.append((name,))
            if isinstance(sub, CommandParser):
                paths += [(name, *rest) for rest in sub.command_paths()]
        return paths

    def error(self, message: str) -> NoReturn:
        """Raise :class:`UsageError` (printed, with secrets masked, by ``main``)."""
        raise UsageError(message, usage=self.format_usage(), prog=self.prog)


def add_global_options(parser: argparse.ArgumentParser, *, environ: Mapping[str, str] | None) -> None:
    """Add ``--url``, ``--token``, ``-v``, ``--config``, ``--set`` to ``parser``.

    :param parser: any parser of the command tree
    :param environ: the environment for the defaults (the root parser), or ``None``
        for sub-parsers, whose defaults are :data:`argparse.SUPPRESS`
    :return: ``None``
    """
    root = environ is not None
    env: Mapping[str, str] = environ or {}

    def default(value: Any) -> Any:
        return value if root else argparse.SUPPRESS

    group = parser.add_argument_group("global options (before or after the command)")
    group.add_argument(
        "--url",
        default=default(env.get(URL_ENV)),
        metavar="URL",
        help=f"server that ruqi/wuxing commands talk to (default ${URL_ENV}, else [server] host:port)",
    )
    group.add_argument(
        "--token",
        default=default(env.get(TOKEN_ENV)),
        metavar="TOKEN",
        help=f"bearer token for the server (default ${TOKEN_ENV}); get one with: butterfly auth add-token USER",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default(False),
        help="show log lines and HTTP requests on stderr",
    )
    group.add_argument(
        "--config",
        metavar="FILE",
        default=default(env.get(CONFIG_ENV)),
        help=f"config file (default ${CONFIG_ENV}, else ./butterfly.toml if present)",
    )
    group.add_argument(
        "--set",
        action="append",
        metavar="SECTION.KEY=VALUE",
        default=default(None),
        help="override one setting (repeatable); wins over the file and the environment",
    )


# -- secrets in messages --------------------------------------------------------------------


def secret_values(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """The secrets a command line carries, longest first.

    The value after a secret-named option (``--token T``, ``--password P``), of
    ``--token=T``, of a ``k=v`` / ``k:=json`` word whose key looks secret, and of
    ``$BUTTERFLY_TOKEN``.

    :param argv: the command line
    :param environ: the environment (default ``os.environ``)
    :return: the values to mask in anything printed
    """
    environ = os.environ if environ is None else environ
    found: list[str] = []
    previous_is_secret = False
    for word in argv:
        if previous_is_secret:
            found.append(word)
            previous_is_secret = False
            continue
        option = _OPTION_WITH_VALUE.match(word)
        if option:
            if is_secret_name(option[1].lstrip("-")):
                found.append(option[2])
            continue
        if word.startswith("-"):
            previous_is_secret = is_secret_name(word.lstrip("-")) and not word.endswith("-stdin")
            continue
        key, sep, value = word.partition("=")
        if sep and is_secret_name(key.rstrip(":")):
            found.append(value)
    if environ.get(TOKEN_ENV):
        found.append(environ[TOKEN_ENV])
    return sorted({value for value in found if len(value) >= MIN_MASKED_LENGTH}, key=len, reverse=True)


def mask_text(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every occurrence of each of ``secrets`` replaced by ``********``.

    :param text: a message about to be printed
    :param secrets: from :func:`secret_values`
    :return: the masked text
    """
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


# -- words argparse could not place ----------------------------------------------------------


def place_leftovers(args: argparse.Namespace, leftovers: list[str]) -> None:
    """Give words argparse left over to the command that collects them.

    argparse cannot interleave a list of positionals with options: in
    ``butterfly call /p a=1 --trace b=2`` the ``b=2`` arrives here. A command that
    declares ``set_defaults(leftovers="params")`` gets such words appended to
    ``args.params``; anything else is an error.

    :param args: the parsed namespace
    :param leftovers: the words ``parse_known_args`` did not use
    :raises UsageError: for words no command collects, and for unknown options
    """
    if not leftovers:
        return
    dest = getattr(args, "leftovers", None)
    unknown_options = [word for word in leftovers if word.startswith("-") and not _looks_negative(word)]
    if dest is None or unknown_options:
        message = f"unrecognized arguments: {' '.join(leftovers)}"
        parser = getattr(args, "command_parser", None)
        if parser is not None:
            parser.error(message)
        raise UsageError(message)
    setattr(args, dest, [*(getattr(args, dest, None) or []), *leftovers])


def _looks_negative(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True
