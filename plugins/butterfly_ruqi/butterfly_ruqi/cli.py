"""``butterfly ruqi ...``: manage jobs of a running instance over its HTTP API.

The CLI talks HTTP (``--url``, default ``http://127.0.0.1:8585``) rather than
opening the store itself, so ``run`` executes on a live scheduler and every
write goes through the same checks, admin policy and access log as the API.
Admin writes need a loopback address or, with butterfly-auth, ``--token``.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.parse
import urllib.request

from kernel import ButterflyError

DEFAULT_URL = "http://127.0.0.1:8585"


def add_commands(subparsers) -> None:
    """Add ``ruqi`` and its sub-commands to the ``butterfly`` parser."""
    ruqi = subparsers.add_parser(
        "ruqi", help="如期 ruqi scheduled jobs (over HTTP to a running instance)", description=__doc__
    )
    ruqi.add_argument("--url", default=DEFAULT_URL, help=f"base URL of an instance (default {DEFAULT_URL})")
    ruqi.add_argument("--token", help="bearer token for admin writes (butterfly-auth)")
    ruqi.set_defaults(run=lambda args: (ruqi.print_help(), 2)[1])
    commands = ruqi.add_subparsers(dest="ruqi_command", metavar="ACTION")

    listing = commands.add_parser("list", help="list jobs and their next run")
    listing.add_argument("--name", help="only jobs whose name contains this")
    listing.add_argument("--page", type=int, default=1)
    listing.add_argument("--page-size", type=int, default=50)
    listing.set_defaults(run=cmd_list)

    add = commands.add_parser("add", help="add a job")
    add.add_argument("job_id")
    add.add_argument("--trigger", required=True, choices=("cron", "interval", "date"))
    add.add_argument("--rule", required=True, help='e.g. "0 */5 * * * *", "30s", "now"')
    add.add_argument("--type", required=True, dest="job_type", help="http, mq, handler, script, ...")
    add.add_argument("--target", required=True, help="URL, topic, route path or script path")
    add.add_argument("--name", dest="job_name")
    add.add_argument("--payload", help="JSON object")
    add.add_argument("--options", help="JSON object (http: method/headers/expected_status; script: args/env)")
    add.add_argument("--timezone")
    add.add_argument("--timeout", type=float)
    add.add_argument("--misfire-grace", type=float)
    add.add_argument("--coalesce", action="store_true", default=None)
    add.add_argument("--max-concurrent", type=int)
    add.set_defaults(run=cmd_add)

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
    """POST (writes) or GET ``/ruqi/<name>`` and return the decoded reply.

    :raises kernel.ButterflyError: (exit code 1) when the instance cannot be reached or answers non-JSON
    """
    params = {k: v for k, v in params.items() if v is not None}
    url = f"{args.url.rstrip('/')}/ruqi/{name}"
    headers = {"Accept": "application/json"}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    if write:
        request = urllib.request.Request(
            url,
            data=json.dumps(params).encode(),
            method="POST",
            headers={**headers, "Content-Type": "application/json"},
        )
    else:
        query = urllib.parse.urlencode(params)
        request = urllib.request.Request(f"{url}?{query}" if query else url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            body = reply.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise ButterflyError(f"ruqi: cannot reach {args.url}: {getattr(exc, 'reason', exc)}") from None
    try:
        return json.loads(body)
    except ValueError:
        raise ButterflyError(f"ruqi: {url} did not answer JSON: {body[:200]!r}") from None


def _finish(reply: dict, show=None) -> int:
    if reply.get("stat") != "OK":
        errors = "; ".join(f"{e.get('param')}: {e.get('reason')}" for e in reply.get("errors", []))
        print(f"error: {reply.get('stat')} {errors}".rstrip(), file=sys.stderr)
        return 1
    (show or (lambda r: print(json.dumps(r.get("data", {}), indent=2, ensure_ascii=False))))(reply)
    return 0


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())


def cmd_list(args) -> int:
    """``butterfly ruqi list``."""
    reply = call(args, "get_jobs", {"job_name": args.name, "page_index": args.page, "page_size": args.page_size})

    def show(reply):
        data = reply["data"]
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

    return _finish(reply, show)


def cmd_add(args) -> int:
    """``butterfly ruqi add``."""
    params = {
        "job_id": args.job_id,
        "job_trigger": args.trigger,
        "rule": args.rule,
        "job_type": args.job_type,
        "target": args.target,
        "job_name": args.job_name,
        "payload": args.payload,
        "options": args.options,
        "timezone": args.timezone,
        "timeout": args.timeout,
        "misfire_grace": args.misfire_grace,
        "coalesce": args.coalesce,
        "max_concurrent": args.max_concurrent,
    }
    return _finish(call(args, "add_job", params, write=True))


def cmd_job_action(args) -> int:
    """``butterfly ruqi remove|pause|resume|run JOB_ID``."""
    return _finish(
        call(args, f"{args.action}_job", {"job_id": args.job_id}, write=True),
        None if args.action == "run" else (lambda reply: print(f"{args.action}: {args.job_id} OK")),
    )


def cmd_history(args) -> int:
    """``butterfly ruqi history [JOB_ID]``."""
    reply = call(
        args,
        "get_history",
        {"job_id": args.job_id, "status": args.status, "page_index": args.page, "page_size": args.page_size},
    )

    def show(reply):
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
            for r in reply["data"]["list"]
        ]
        _table(rows)
        print(f"{reply['data']['total']} run(s)")

    return _finish(reply, show)


def cmd_status(args) -> int:
    """``butterfly ruqi status``."""
    return _finish(call(args, "status", {}))
