"""``butterfly ruqi ...``: manage the jobs of a running instance over its HTTP API.

The CLI talks HTTP (:class:`kernel.cliclient.ApiClient`: ``--url`` or
``$BUTTERFLY_URL``, else the config's ``[server] host:port``) rather than opening the
store itself, so ``run`` executes on a live scheduler and every write goes through
the same checks, admin policy and access log as the API. Writes need a loopback
address or, with butterfly-auth, an admin's token (``--token`` or
``$BUTTERFLY_TOKEN``; ``butterfly auth add-token USER`` makes one)::

    butterfly ruqi add greet --trigger interval --rule 30s --type handler \\
        --target /demo_api/hello str_info=hi
    butterfly ruqi list | get greet | run greet | history greet | pause greet | resume greet | remove greet

A job's payload is given with the parameter syntax of every command
(:mod:`kernel.cliparams`): ``k=v`` (a string) and ``k:=json``, after ``--payload
JSON`` if both are given. Exit codes: 0 OK, 1 refused, 2 usage, 3 unreachable.
"""

from __future__ import annotations

import json

from kernel.cliclient import ApiClient
from kernel.cliparams import parse_params


def add_commands(subparsers) -> None:
    """Add ``ruqi`` and its sub-commands to the ``butterfly`` parser."""
    ruqi = subparsers.add_parser(
        "ruqi",
        help="如期 ruqi scheduled jobs (over HTTP to a running instance)",
        description="Manage ruqi jobs on a running instance (--url, --token: see the global options).",
    )
    commands = ruqi.add_subparsers(dest="ruqi_command", metavar="ACTION")

    listing = commands.add_parser("list", help="list jobs and their next run")
    listing.add_argument("--name", help="only jobs whose name contains this")
    listing.add_argument("--page", type=int, default=1)
    listing.add_argument("--page-size", type=int, default=50)
    listing.set_defaults(run=cmd_list)

    add = commands.add_parser(
        "add",
        help="add a job",
        epilog="example: butterfly ruqi add greet --trigger interval --rule 30s --type handler "
        "--target /demo_api/hello str_info=hi",
    )
    add.add_argument("job_id")
    add.add_argument(
        "payload_params", nargs="*", metavar="k=v|k:=json", help="the job's payload (the handler's parameters)"
    )
    add.add_argument("--trigger", required=True, choices=("cron", "interval", "date"))
    add.add_argument("--rule", required=True, help='e.g. "0 */5 * * * *", "30s", "now"')
    add.add_argument("--type", required=True, dest="job_type", help="http, mq, handler, script, ...")
    add.add_argument("--target", required=True, help="URL, topic, route path or script path")
    add.add_argument("--name", dest="job_name")
    add.add_argument("--payload", help="the payload as one JSON object (k=v words override its keys)")
    add.add_argument("--options", help="JSON object (http: method/headers/expected_status; script: args/env)")
    add.add_argument("--timezone")
    add.add_argument("--timeout", type=float)
    add.add_argument("--misfire-grace", type=float)
    add.add_argument("--coalesce", action="store_true", default=None)
    add.add_argument("--max-concurrent", type=int)
    add.set_defaults(run=cmd_add, leftovers="payload_params")

    show = commands.add_parser("get", help="one job: its settings, next runs and last run")
    show.add_argument("job_id")
    show.set_defaults(run=cmd_get)

    for action, help_text in (
        ("remove", "delete a job"),
        ("pause", "pause a job"),
        ("resume", "resume a job"),
        ("run", "run a job now on the instance"),
    ):
        command = commands.add_parser(action, help=help_text)
        command.add_argument("job_id")
        command.set_defaults(run=cmd_job_action, action=action)

    history = commands.add_parser("history", help="recent runs")
    history.add_argument("job_id", nargs="?")
    history.add_argument("--status")
    history.add_argument("--page", type=int, default=1)
    history.add_argument("--page-size", type=int, default=20)
    history.set_defaults(run=cmd_history)

    status = commands.add_parser("status", help="scheduler and instances")
    status.set_defaults(run=cmd_status)


def call(args, name: str, params: dict, *, write: bool = False) -> dict:
    """Call ``/ruqi/<name>`` and return the reply's ``data`` (writes POST JSON, reads GET).

    :raises kernel.cliargs.CommandError: refused (exit 1, with a hint on 401/403) or
        unreachable (exit 3)
    """
    return ApiClient.from_args(args).call(f"/ruqi/{name}", params, write=write).get("data") or {}


def _print_json(data) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


def cmd_list(args) -> int:
    """``butterfly ruqi list``."""
    data = call(args, "get_jobs", {"job_name": args.name, "page_index": args.page, "page_size": args.page_size})
    rows = [["JOB_ID", "TRIGGER", "RULE", "TYPE", "TARGET", "STATE", "NEXT RUN"]]
    rows += [
        [
            j["job_id"],
            j["job_trigger"],
            j["rule"],
            j["job_type"],
            j["target"],
            "paused" if j["paused"] else "active",
            j["next_run_time"] or "-",
        ]
        for j in data["list"]
    ]
    _table(rows)
    print(f"{data['total']} job(s)")
    return 0


def cmd_add(args) -> int:
    """``butterfly ruqi add JOB_ID --trigger T --rule R --type T --target X [k=v ...]``."""
    payload = None
    if args.payload is not None or args.payload_params:
        payload = parse_params(args.payload_params, json_object=args.payload, json_option="--payload")
    params = {
        "job_id": args.job_id,
        "job_trigger": args.trigger,
        "rule": args.rule,
        "job_type": args.job_type,
        "target": args.target,
        "job_name": args.job_name,
        "payload": payload,
        "options": args.options,
        "timezone": args.timezone,
        "timeout": args.timeout,
        "misfire_grace": args.misfire_grace,
        "coalesce": args.coalesce,
        "max_concurrent": args.max_concurrent,
    }
    job = call(args, "add_job", params, write=True)
    print(f"added {job.get('job_id', args.job_id)}; next run {job.get('next_run_time') or '-'}")
    return 0


def cmd_get(args) -> int:
    """``butterfly ruqi get JOB_ID``."""
    _print_json(call(args, "get_job", {"job_id": args.job_id}))
    return 0


def cmd_job_action(args) -> int:
    """``butterfly ruqi remove|pause|resume|run JOB_ID``."""
    data = call(args, f"{args.action}_job", {"job_id": args.job_id}, write=True)
    if args.action == "run":
        _print_json(data)
    else:
        print(f"{args.action}: {args.job_id} OK")
    return 0


def cmd_history(args) -> int:
    """``butterfly ruqi history [JOB_ID]``."""
    data = call(
        args,
        "get_history",
        {"job_id": args.job_id, "status": args.status, "page_index": args.page, "page_size": args.page_size},
    )
    rows = [["FIRE_ID", "JOB_ID", "SCHEDULED", "STATUS", "DURATION", "INSTANCE"]]
    rows += [
        [
            r["fire_id"],
            r["job_id"],
            r["scheduled_time"],
            r["status"],
            "-" if r["duration"] is None else f"{r['duration']:.3f}s",
            r["instance_id"],
        ]
        for r in data["list"]
    ]
    _table(rows)
    print(f"{data['total']} run(s)")
    return 0


def cmd_status(args) -> int:
    """``butterfly ruqi status``."""
    _print_json(call(args, "status", {}))
    return 0
