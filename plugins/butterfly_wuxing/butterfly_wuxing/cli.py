"""``butterfly wuxing``: the original ``wuxing_cli.py`` as a subcommand, over HTTP.

It talks to a running instance (``--url``, default ``http://127.0.0.1:8585``) with
the standard library only, so it works from any machine that can reach the server::

    butterfly wuxing create web-1 -n ops -s host -V 1 --items '{"i|cpu": 8}'
    butterfly wuxing get web-1 -n ops detail
    butterfly wuxing list -n ops -s host --extra 'i|cpu,region'
    butterfly wuxing update web-1 'i|cpu' 16 8 -n ops     # 8 = expected old value (CAS)
    butterfly wuxing upgrade web-1 2 -n ops
    butterfly wuxing history web-1 'i|cpu' -n ops
    butterfly wuxing delete web-1 -n ops

Exit codes: 0 OK, 1 the server refused (its stat and reason are printed), 2 usage,
3 the server could not be reached.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8585"
LIST_PAGE_SIZE = 100


class CliError(Exception):
    """A refusal or transport failure; ``code`` is the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def call(args: argparse.Namespace, endpoint: str, params: dict[str, Any], *, write: bool = False) -> Any:
    """Call ``/wuxing/<endpoint>``: reads are GET with a query string, writes POST JSON.

    :return: the reply's ``data``
    :raises CliError: the server refused (code 1) or could not be reached (code 3)
    """
    params = {key: value for key, value in params.items() if value is not None}
    url = f"{args.url.rstrip('/')}/wuxing/{endpoint}"
    headers = {"Accept": "application/json"}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    body = None
    if write:
        body = json.dumps(params).encode("utf-8")
        headers["Content-Type"] = "application/json"
    else:
        url += "?" + urllib.parse.urlencode(params)
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if write else "GET")
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        raw = exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise CliError(f"cannot reach {args.url}: {getattr(exc, 'reason', exc)}", 3) from None
    try:
        reply = json.loads(raw)
    except ValueError:
        raise CliError(f"{url}: the reply is not JSON: {raw[:200]!r}", 1) from None
    stat = reply.get("stat")
    if stat != "OK":
        reason = (
            reply.get("reason")
            or "; ".join(f"{e.get('param')}: {e.get('reason')}" for e in reply.get("errors", []))
            or ""
        )
        raise CliError(f"{stat}: {reason}".rstrip(": "), 1)
    return reply.get("data")


def show(value: Any) -> str:
    """A value for a table cell (strings bare, everything else as JSON)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def format_table(headers: list[str], rows: list[list[Any]]) -> str:
    """Left-aligned columns with a header rule; long cells are cut at 60 characters."""
    cells = [[show(cell) if len(show(cell)) <= 60 else show(cell)[:57] + "..." for cell in row] for row in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _need(args: argparse.Namespace, *names: str) -> None:
    missing = [f"--{name.replace('_', '-')}" for name in names if not getattr(args, name)]
    if missing:
        raise CliError(f"{args.action} needs {', '.join(missing)}", 2)


# -- commands ---------------------------------------------------------------------------------


def cmd_create(args: argparse.Namespace) -> str:
    _need(args, "namespace", "section", "section_version")
    try:
        items = json.loads(args.items) if args.items else None
    except ValueError:
        raise CliError("--items must be a JSON object, e.g. '{\"i|cpu\": 8}'", 2) from None
    data = call(
        args,
        "instance_create",
        {
            "namespace": args.namespace,
            "instance_name": args.instance,
            "section_name": args.section,
            "section_version": args.section_version,
            "items_data": items,
        },
        write=True,
    )
    return f"created {args.namespace}/{args.instance}\n" + format_table(
        ["ITEM", "VALUE"], [[name, value] for name, value in data["items"].items()]
    )


def cmd_get(args: argparse.Namespace) -> str:
    _need(args, "namespace")
    data = call(
        args, "instance_get", {"namespace": args.namespace, "instance_name": args.instance, "value_format": args.format}
    )
    if args.format == "simple":
        return format_table(["ITEM", "VALUE"], [[name, value] for name, value in data.items()])
    return format_table(
        ["ITEM", "TYPE", "VALUE", "ID", "USER", "UPDATED", "DESCRIPTION"],
        [
            [name, d["item_type"], d["item_value"], d["item_id"], d["user"] or "-", d["u_time"], d["item_description"]]
            for name, d in data.items()
        ],
    )


def cmd_list(args: argparse.Namespace) -> str:
    _need(args, "namespace", "section")
    extra = [name.strip() for name in (args.extra or "").split(",") if name.strip()]
    rows, page = [], 1
    while True:
        data = call(
            args,
            "instance_list",
            {
                "namespace": args.namespace,
                "section_name": args.section,
                "section_version": args.section_version,
                "extra_items": ",".join(extra) or None,
                "page_index": page,
                "page_size": LIST_PAGE_SIZE,
            },
        )
        rows += [
            [row["instance_name"], row["section_version"], row["section_md5"], row["u_time"]]
            + [row.get(name) for name in extra]
            for row in data["list"]
        ]
        if not data["list"] or len(rows) >= data["total"]:
            break
        page += 1
    return format_table(["INSTANCE", "VERSION", "MD5", "UPDATED", *extra], rows) + f"\n{len(rows)} instance(s)"


def cmd_update(args: argparse.Namespace) -> str:
    _need(args, "namespace")
    data = call(
        args,
        "instance_update_item",
        {
            "namespace": args.namespace,
            "instance_name": args.instance,
            "item_name": args.item,
            "item_value": args.value,
            "item_value_old": args.old,
        },
        write=True,
    )
    return f"{args.instance} {args.item}: {show(data['old_value'])} -> {show(data['item_value'])}"


def cmd_upgrade(args: argparse.Namespace) -> str:
    _need(args, "namespace")
    data = call(
        args,
        "instance_update_section",
        {"namespace": args.namespace, "instance_name": args.instance, "section_version": args.version},
        write=True,
    )
    return (
        format_table(
            ["CHANGE", "ITEMS"], [[kind, ", ".join(data[kind]) or "-"] for kind in ("added", "removed", "retyped")]
        )
        + f"\n{args.instance} now uses section version {data['section_version']}"
    )


def cmd_delete(args: argparse.Namespace) -> str:
    _need(args, "namespace")
    call(args, "instance_delete", {"namespace": args.namespace, "instance_name": args.instance}, write=True)
    return f"deleted {args.namespace}/{args.instance}"


def cmd_history(args: argparse.Namespace) -> str:
    _need(args, "namespace")
    detail = call(
        args,
        "instance_get",
        {"namespace": args.namespace, "instance_name": args.instance, "items": args.item, "value_format": "detail"},
    )
    data = call(args, "item_history_list", {"item_id": detail[args.item]["item_id"], "page_size": args.limit})
    return (
        format_table(
            ["TIME", "CMD", "OLD", "NEW", "USER"],
            [[h["c_time"], h["cmd"], h["old_value"], h["new_value"], h["user"] or "-"] for h in data["list"]],
        )
        + f"\n{len(data['list'])} of {data['total']} change(s), newest first"
    )


def run(args: argparse.Namespace) -> int:
    """Dispatch ``butterfly wuxing <action>``; print the result or the refusal."""
    try:
        print(args.handler(args))
    except CliError as exc:
        print(f"butterfly wuxing: {exc}", file=sys.stderr)
        return exc.code
    return 0


def _common_options(default: Any = None) -> argparse.ArgumentParser:
    """The options every action takes; ``default=SUPPRESS`` for the per-action copies."""

    def pick(value: Any) -> Any:
        return value if default is None else default

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=pick(DEFAULT_URL), help=f"the Butterfly server (default {DEFAULT_URL})")
    common.add_argument("--token", default=pick(None), help="API token / JWT for admin writes from another host")
    common.add_argument("--timeout", type=float, default=pick(10.0), help="seconds per HTTP request (default 10)")
    common.add_argument("-n", "--namespace", default=pick(None), help="namespace (at most 16 characters)")
    common.add_argument("-s", "--section", default=pick(None), help="section name (create, list)")
    common.add_argument(
        "-V",
        "--section-version",
        dest="section_version",
        default=pick(None),
        help="section version (create; a filter for list)",
    )
    return common


def add_command(subparsers: Any) -> None:
    """Add ``wuxing`` and its actions to the ``butterfly`` parser."""
    parser = subparsers.add_parser(
        "wuxing",
        help="五行 wuxing: instances of typed config sections (over HTTP)",
        parents=[_common_options()],
        description="Create, show, list, update, upgrade and delete wuxing instances on a running server.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, handler, help_text: str) -> argparse.ArgumentParser:
        # NOTE: the shared options are accepted after the action too; SUPPRESS keeps the
        # sub-parser from overwriting values given before it with its defaults.
        sub = actions.add_parser(name, help=help_text, parents=[_common_options(argparse.SUPPRESS)])
        sub.set_defaults(handler=handler, run=run)
        return sub

    create = action("create", cmd_create, "create an instance of a section")
    create.add_argument("instance")
    create.add_argument("--items", help="initial values as a JSON object (others take defaults)")
    get = action("get", cmd_get, "show an instance's values")
    get.add_argument("instance")
    get.add_argument("format", nargs="?", choices=("simple", "detail"), default="simple")
    lister = action("list", cmd_list, "list the instances of a section (all pages)")
    lister.add_argument("--extra", help="comma-separated item names to show as columns")
    update = action("update", cmd_update, "set an item (with OLD: only if it still has that value)")
    update.add_argument("instance")
    update.add_argument("item")
    update.add_argument("value")
    update.add_argument("old", nargs="?", help="expected current value (compare-and-set)")
    upgrade = action("upgrade", cmd_upgrade, "move an instance to another section version")
    upgrade.add_argument("instance")
    upgrade.add_argument("version")
    delete = action("delete", cmd_delete, "delete an instance")
    delete.add_argument("instance")
    history = action("history", cmd_history, "show an item's change history")
    history.add_argument("instance")
    history.add_argument("item")
    history.add_argument("--limit", type=int, default=20, help="newest N changes (default 20)")
    parser.set_defaults(run=lambda args: (parser.print_help(), 2)[1])
