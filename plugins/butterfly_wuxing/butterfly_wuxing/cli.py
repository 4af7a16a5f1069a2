"""``butterfly wuxing``: the original ``wuxing_cli.py`` as a subcommand, sections included.

It talks to a running instance over HTTP (:class:`kernel.cliclient.ApiClient`:
``--url`` or ``$BUTTERFLY_URL``, else the config's ``[server] host:port``; writes
need a loopback address or an admin's ``--token``)::

    # a section: a versioned template of typed items (prefix i| int, f| float,
    # b| bool, s| string, t| text, j| json), then enabled for instances
    butterfly wuxing section create host -n ops -V 1 'i|cpu:=4' 's|region=bj' --enable
    butterfly wuxing section add-item host 'i|disk' -n ops -V 2 --default 100 --description GB
    butterfly wuxing section enable host -n ops -V 2
    butterfly wuxing section list -n ops
    butterfly wuxing section get host -n ops -V 1

    # instances of a section, and their items
    butterfly wuxing create web-1 -n ops -s host -V 1 'i|cpu=8'
    butterfly wuxing get web-1 -n ops detail
    butterfly wuxing list -n ops -s host --extra 'i|cpu,s|region'
    butterfly wuxing update web-1 'i|cpu' 16 8 -n ops     # 8 = expected old value (CAS)
    butterfly wuxing upgrade web-1 2 -n ops
    butterfly wuxing history web-1 'i|cpu' -n ops
    butterfly wuxing delete web-1 -n ops

Item values use the parameter syntax of every command (:mod:`kernel.cliparams`):
``name=text`` (the server converts it to the item's type) or ``name:=json``.
Exit codes: 0 OK, 1 the server refused (its stat and reason are printed), 2 usage,
3 the server could not be reached.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from kernel.cliargs import UsageError
from kernel.cliclient import ApiClient
from kernel.cliparams import parse_params

LIST_PAGE_SIZE = 100
#: How many characters of a value a table cell shows.
CELL_WIDTH = 60


def call(args: argparse.Namespace, endpoint: str, params: dict[str, Any], *, write: bool = False) -> Any:
    """Call ``/wuxing/<endpoint>``: reads are GET with a query string, writes POST JSON.

    :return: the reply's ``data``
    :raises kernel.cliargs.CommandError: the server refused (exit 1) or could not be
        reached (exit 3)
    """
    return ApiClient.from_args(args).call(f"/wuxing/{endpoint}", params, write=write).get("data")


def show(value: Any) -> str:
    """A value for a table cell (strings bare, everything else as JSON)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def format_table(headers: list[str], rows: list[list[Any]]) -> str:
    """Left-aligned columns with a header rule; long cells are cut at 60 characters."""
    cells = [
        [show(cell) if len(show(cell)) <= CELL_WIDTH else show(cell)[: CELL_WIDTH - 3] + "..." for cell in row]
        for row in rows
    ]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip(), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines)


def _need(args: argparse.Namespace, *names: str) -> None:
    missing = [f"--{name.replace('_', '-')}" for name in names if not getattr(args, name, None)]
    if missing:
        raise UsageError(f"{args.action} needs {', '.join(missing)}", prog="butterfly wuxing")


def _section_key(args: argparse.Namespace) -> dict[str, Any]:
    _need(args, "namespace", "section_version")
    return {"namespace": args.namespace, "section_name": args.name, "section_version": args.section_version}


def _all_pages(args: argparse.Namespace, endpoint: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    page = 1
    while True:
        data = call(args, endpoint, {**params, "page_index": page, "page_size": LIST_PAGE_SIZE})
        rows += data["list"]
        if not data["list"] or len(rows) >= data["total"]:
            return rows
        page += 1


# -- sections ---------------------------------------------------------------------------------


def cmd_section_create(args: argparse.Namespace) -> str:
    key = _section_key(args)
    items = parse_params(args.items)
    call(args, "section_create", key, write=True)
    for name, default in items.items():
        call(args, "section_item_add", {**key, "item_name": name, "item_default": default}, write=True)
    if args.enable:
        call(args, "section_enable", key, write=True)
    state = "enabled" if args.enable else "not enabled yet: add items, then `section enable`"
    created = f"created section {args.namespace}/{args.name} version {args.section_version} ({state})"
    return f"{created}\n{_template_table(args)}" if items else created


def cmd_section_add_item(args: argparse.Namespace) -> str:
    data = call(
        args,
        "section_item_add",
        {
            **_section_key(args),
            "item_name": args.item,
            "item_default": args.default,
            "item_description": args.description,
            "item_type": args.type,
        },
        write=True,
    )
    return f"added {args.item} ({data['item_type']}, default {show(data['item_default'])})"


def cmd_section_delete_item(args: argparse.Namespace) -> str:
    call(args, "section_item_delete", {**_section_key(args), "item_name": args.item}, write=True)
    return f"removed {args.item} from {args.namespace}/{args.name} version {args.section_version}"


def cmd_section_enable(args: argparse.Namespace) -> str:
    call(args, "section_enable", _section_key(args), write=True)
    return f"enabled {args.namespace}/{args.name} version {args.section_version}: instances may use it now"


def cmd_section_delete(args: argparse.Namespace) -> str:
    call(args, "section_delete", _section_key(args), write=True)
    return f"deleted section {args.namespace}/{args.name} version {args.section_version}"


def _template_table(args: argparse.Namespace) -> str:
    data = call(args, "section_get", _section_key(args))
    rows = [
        [name, d["item_type"], d["item_default"], d["item_description"]] for name, d in data["section_template"].items()
    ]
    state = "enabled" if data["is_enabled"] else "not enabled"
    return format_table(["ITEM", "TYPE", "DEFAULT", "DESCRIPTION"], rows) + f"\n{len(rows)} item(s), {state}"


def cmd_section_get(args: argparse.Namespace) -> str:
    return _template_table(args)


def cmd_section_list(args: argparse.Namespace) -> str:
    rows = _all_pages(args, "section_list", {"namespace": args.namespace})
    return (
        format_table(
            ["NAMESPACE", "SECTION", "VERSION", "MD5", "ENABLED", "UPDATED"],
            [
                [
                    r["namespace"],
                    r["section_name"],
                    r["section_version"],
                    r["section_md5"],
                    r["is_enabled"],
                    r["u_time"],
                ]
                for r in rows
            ],
        )
        + f"\n{len(rows)} section(s)"
    )


# -- instances --------------------------------------------------------------------------------


def cmd_create(args: argparse.Namespace) -> str:
    _need(args, "namespace", "section", "section_version")
    items = None
    if args.values or args.items is not None:
        items = parse_params(args.values, json_object=args.items, json_option="--items")
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
    if len(args.view) > 1 or (args.view and args.view[0] not in ("simple", "detail")):
        raise UsageError(
            f"get takes one view, simple or detail; got {' '.join(args.view)}", prog="butterfly wuxing get"
        )
    view = args.view[0] if args.view else "simple"
    data = call(
        args, "instance_get", {"namespace": args.namespace, "instance_name": args.instance, "value_format": view}
    )
    if view == "simple":
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
    found = _all_pages(
        args,
        "instance_list",
        {
            "namespace": args.namespace,
            "section_name": args.section,
            "section_version": args.section_version,
            "extra_items": ",".join(extra) or None,
        },
    )
    rows = [
        [row["instance_name"], row["section_version"], row["section_md5"], row["u_time"]] + [row.get(n) for n in extra]
        for row in found
    ]
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
    if args.item not in detail:
        raise UsageError(f"{args.instance} has no item {args.item!r}", prog="butterfly wuxing history")
    data = call(args, "item_history_list", {"item_id": detail[args.item]["item_id"], "page_size": args.limit})
    return (
        format_table(
            ["TIME", "CMD", "OLD", "NEW", "USER"],
            [[h["c_time"], h["cmd"], h["old_value"], h["new_value"], h["user"] or "-"] for h in data["list"]],
        )
        + f"\n{len(data['list'])} of {data['total']} change(s), newest first"
    )


def run(args: argparse.Namespace) -> int:
    """Dispatch ``butterfly wuxing <action>``; print the result (refusals raise)."""
    print(args.handler(args))
    return 0


# -- the parser -------------------------------------------------------------------------------


def _scope_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``-n``, ``-s``, ``-V``: accepted on ``wuxing`` and after each action."""

    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    parser.add_argument("-n", "--namespace", default=default(None), help="namespace (at most 16 characters)")
    parser.add_argument("-s", "--section", default=default(None), help="section name (create, list)")
    parser.add_argument(
        "-V",
        "--section-version",
        dest="section_version",
        default=default(None),
        help="section version (sections; create; a filter for list)",
    )


def add_command(subparsers: Any) -> None:
    """Add ``wuxing`` and its actions to the ``butterfly`` parser."""
    parser = subparsers.add_parser(
        "wuxing",
        help="五行 wuxing: typed config sections and their instances (over HTTP)",
        description="Create sections (typed templates) and instances of them, show, list, update, upgrade "
        "and delete them on a running server (--url, --token: see the global options).",
    )
    _scope_options(parser, top=True)
    actions = parser.add_subparsers(dest="action", metavar="ACTION")

    def action(group, name: str, handler, help_text: str, **kwargs: Any) -> argparse.ArgumentParser:
        # NOTE: SUPPRESS keeps the sub-parser from overwriting -n/-s/-V given before it.
        sub = group.add_parser(name, help=help_text, **kwargs)
        _scope_options(sub, top=False)
        sub.set_defaults(handler=handler, run=run, action=name)
        return sub

    section = actions.add_parser("section", help="section templates: create, add-item, enable, list, get, ...")
    _scope_options(section, top=False)
    section_actions = section.add_subparsers(dest="section_action", metavar="ACTION")
    create_section = action(
        section_actions,
        "create",
        cmd_section_create,
        "create a section version, optionally with items (name=default) and --enable",
    )
    create_section.add_argument("name", help="section name")
    create_section.add_argument(
        "items", nargs="*", metavar="ITEM=DEFAULT", help='items to add, typed by name prefix (i|cpu=4, s|region:="bj")'
    )
    create_section.add_argument("--enable", action="store_true", help="enable it once the items are added")
    create_section.set_defaults(leftovers="items")
    add_item = action(
        section_actions, "add-item", cmd_section_add_item, "add a typed item to a section not enabled yet"
    )
    add_item.add_argument("name", help="section name")
    add_item.add_argument("item", help="item name; the prefix i| f| b| s| t| j| gives the type")
    add_item.add_argument("--type", choices=("int", "float", "bool", "string", "text", "json"), help="without a prefix")
    add_item.add_argument("--default", help="default value (converted to the item's type)")
    add_item.add_argument("--description", default="", help="what the item is")
    delete_item = action(section_actions, "delete-item", cmd_section_delete_item, "remove an item (not enabled yet)")
    delete_item.add_argument("name", help="section name")
    delete_item.add_argument("item")
    for name, handler, text in (
        ("enable", cmd_section_enable, "freeze a section version and allow instances of it"),
        ("get", cmd_section_get, "show a section version's items"),
        ("delete", cmd_section_delete, "delete a section version no instance uses"),
    ):
        action(section_actions, name, handler, text).add_argument("name", help="section name")
    action(section_actions, "list", cmd_section_list, "list sections (all pages; -n to filter)")

    create = action(actions, "create", cmd_create, "create an instance of a section (-s, -V)")
    create.add_argument("instance")
    create.add_argument("values", nargs="*", metavar="ITEM=VALUE", help="initial values (others take defaults)")
    create.add_argument("--items", help="initial values as one JSON object (ITEM=VALUE words override it)")
    create.set_defaults(leftovers="values")
    get = action(actions, "get", cmd_get, "show an instance's values (simple) or details (detail)")
    get.add_argument("instance")
    get.add_argument("view", nargs="*", metavar="simple|detail", help="what to show (default simple)")
    get.set_defaults(leftovers="view")
    lister = action(actions, "list", cmd_list, "list the instances of a section (all pages)")
    lister.add_argument("--extra", help="comma-separated item names to show as columns")
    update = action(actions, "update", cmd_update, "set an item (with OLD: only if it still has that value)")
    update.add_argument("instance")
    update.add_argument("item")
    update.add_argument("value")
    update.add_argument("old", nargs="?", help="expected current value (compare-and-set)")
    upgrade = action(actions, "upgrade", cmd_upgrade, "move an instance to another section version")
    upgrade.add_argument("instance")
    upgrade.add_argument("version")
    delete = action(actions, "delete", cmd_delete, "delete an instance")
    delete.add_argument("instance")
    history = action(actions, "history", cmd_history, "show an item's change history")
    history.add_argument("instance")
    history.add_argument("item")
    history.add_argument("--limit", type=int, default=20, help="newest N changes (default 20)")
