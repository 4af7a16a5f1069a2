"""``butterfly init``: a starter project for someone who installed Butterfly from pip.

Writes, into the current directory (or ``DIR``):

* ``handlers/hello/__init__.py`` — one JSON handler, ``/hello/greet``;
* ``butterfly.toml`` — every setting the installed plugins declare, commented out
  with its default and help (built from the plugins' ``butterfly_add_settings``,
  so it matches what is installed; no plugin is configured or started);
* ``tests/test_hello.py`` — tests with the kernel's test kit.

The files are package data (``kernel/templates/init``). Existing files are never
overwritten without ``--force``: the command refuses and names them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import textwrap
from importlib import resources
from pathlib import Path
from typing import Any

from kernel.cliargs import CommandError
from kernel.plugins import disabled_plugins, extra_plugin_modules, make_plugin_manager
from kernel.settings import Settings

#: template (package data, under ``templates/init``) → file written in the project
FILES = {
    "handlers/hello/__init__.py.tmpl": "handlers/hello/__init__.py",
    "butterfly.toml.tmpl": "butterfly.toml",
    "tests/test_hello.py.tmpl": "tests/test_hello.py",
}


#: Columns of the help comments in the starter ``butterfly.toml``.
HELP_WIDTH = 92


def template_text(name: str) -> str:
    """The text of template ``name`` (a path under ``kernel/templates/init``)."""
    return resources.files("kernel").joinpath("templates", "init", *name.split("/")).read_text(encoding="utf-8")


def toml_value(value: Any) -> str:
    """``value`` as a TOML literal (strings, numbers, booleans, lists of them).

    :param value: a setting's default
    :return: the TOML text
    :raises TypeError: for anything else
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        # NOTE: JSON string escapes (\", \\, \n, \uXXXX) are valid in TOML basic strings.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def declared_settings() -> list[dict[str, Any]]:
    """Every setting the enabled plugins declare, with its default (not the environment's).

    :return: rows of :meth:`kernel.settings.Settings.describe` (secrets masked)
    """
    pm, _ = make_plugin_manager(disabled=disabled_plugins(os.environ), plugin_modules=extra_plugin_modules(os.environ))
    # NOTE: an empty environment and no file: the starter config shows defaults, never
    # values (or secrets) of the shell that ran `butterfly init`.
    settings = Settings({}, {}, {}, None)
    pm.hook.butterfly_add_hookspecs.call_historic(kwargs={"pluginmanager": pm})
    pm.hook.butterfly_add_settings.call_historic(kwargs={"settings": settings})
    return settings.describe()


def config_text() -> str:
    """The starter ``butterfly.toml``: the header template, then every setting commented out."""
    lines = [template_text("butterfly.toml.tmpl").rstrip("\n")]
    section = None
    # the kernel's [server] first, then the plugins' tables alphabetically
    rows = sorted(declared_settings(), key=lambda row: (row["section"] != "server", row["section"], row["key"]))
    for row in rows:
        if row["section"] != section:
            section = row["section"]
            owner = f"    declared by {row['owner']}" if row["owner"] and row["owner"] != section else ""
            lines += ["", f"# [{section}]{owner}"]
        help_text = " ".join(str(row["help"]).split())
        if help_text:
            lines += textwrap.wrap(help_text, HELP_WIDTH, initial_indent="#   ", subsequent_indent="#   ")
        value = row["value"]
        try:
            shown = "" if value is None else toml_value(value)
        except TypeError:
            shown = ""
        lines.append(f"# {row['key']} = {shown}".rstrip() + ("    # unset" if value is None else ""))
    return "\n".join(lines) + "\n"


def project_files() -> dict[str, str]:
    """``{relative path: text}`` of every file ``init`` writes."""
    files = {}
    for template, target in FILES.items():
        files[target] = config_text() if target == "butterfly.toml" else template_text(template)
    return files


def write_project(directory: Path, *, force: bool = False) -> list[str]:
    """Write the starter project into ``directory``.

    :param directory: the project directory (created if missing)
    :param force: overwrite files that exist
    :return: the paths written, relative to ``directory``
    :raises CommandError: when files exist and ``force`` is off (nothing is written)
    """
    files = project_files()
    existing = [name for name in files if (directory / name).exists()]
    if existing and not force:
        raise CommandError(
            f"{', '.join(existing)} already exist{'s' if len(existing) == 1 else ''} in {directory}; "
            "nothing was written (--force overwrites)"
        )
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(files)


def cmd_init(args: argparse.Namespace) -> int:
    """``butterfly init [DIR] [--force]``.

    :param args: the parsed command line
    :return: the exit code
    """
    directory = Path(args.directory)
    written = write_project(directory, force=args.force)
    where = "" if directory.resolve() == Path.cwd().resolve() else f"cd {args.directory}\n  "
    print(f"created {', '.join(written)}")
    print(
        "next:\n"
        f"  {where}butterfly run --dev                # serve on http://127.0.0.1:8585, reload on changes\n"
        "  curl 'http://127.0.0.1:8585/hello/greet?name=Ada'\n"
        "  butterfly call /hello/greet Ada    # the same handler, in-process\n"
        "  python -m pytest tests             # its tests (pip install pytest)"
    )
    from kernel.reload import reloader_available

    if not reloader_available():
        print("reload on changes needs watchfiles: pip install 'butterfly-kernel[dev]'", file=sys.stderr)
    return 0


def add_init_command(subparsers: Any) -> None:
    """Register ``butterfly init`` on ``subparsers``.

    :param subparsers: the ``butterfly`` sub-parsers action
    :return: ``None``
    """
    init = subparsers.add_parser(
        "init",
        help="write a starter project (handlers/hello, butterfly.toml, tests) here",
        description="Write a starter project: handlers/hello/__init__.py (one handler), butterfly.toml "
        "(every installed plugin's settings, commented, with defaults) and tests/test_hello.py "
        "(tests with the kernel's test kit). Refuses to overwrite files.",
    )
    init.add_argument("directory", nargs="?", default=".", help="where (default: the current directory)")
    init.add_argument("--force", action="store_true", help="overwrite files that already exist")
    init.set_defaults(run=cmd_init)
