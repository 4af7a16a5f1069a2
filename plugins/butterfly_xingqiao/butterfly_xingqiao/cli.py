"""``butterfly xingqiao create|status|retry|cancel|list``: jobs of a running instance, over HTTP.

Like ``butterfly ruqi``, the CLI talks to an instance's API through
:class:`kernel.cliclient.ApiClient` (the global ``--url``/``--token``/``-v`` options,
``$BUTTERFLY_URL``/``$BUTTERFLY_TOKEN``, hints on 401/403), so every job is checked,
stored and dispatched by a live instance. Job params use the one syntax of every
command (:mod:`kernel.cliparams`): ``k=v`` (a string the workflow's type hints
convert) and ``k:=json``.
"""

from __future__ import annotations

import json
import sys
import time

from kernel.cliclient import ApiClient
from kernel.cliparams import parse_params

ENDED = ("finished", "failed", "canceled")


def add_commands(subparsers) -> None:
    """Add ``xingqiao`` and its sub-commands to the ``butterfly`` parser."""
    xingqiao = subparsers.add_parser(
        "xingqiao", help="星桥 xingqiao workflows (over HTTP to a running instance)", description=__doc__
    )
    commands = xingqiao.add_subparsers(dest="xingqiao_command", metavar="ACTION")

    create = commands.add_parser("create", help="create a job: create JOB_TYPE k=v k:=json ...")
    create.add_argument("job_type")
    create.add_argument("params", nargs="*", metavar="k=v", help="the workflow's params: k=v or k:=json")
    create.add_argument("--name", dest="job_name", help="job name (unique; also an idempotency key)")
    create.add_argument("--timeout", type=float, dest="job_timeout", help="job_timeout in seconds")
    create.add_argument("--wait", action="store_true", help="wait until the job ends; exit 1 unless it finished")
    create.set_defaults(run=cmd_create)

    status = commands.add_parser("status", help="a job and its tasks")
    status.add_argument("job_id", type=int)
    status.add_argument("--wait", action="store_true", help="wait until the job ends")
    status.set_defaults(run=cmd_status)

    for action, help_text in (("retry", "retry a failed job from where it failed"), ("cancel", "cancel a running job")):
        command = commands.add_parser(action, help=help_text)
        command.add_argument("job_id", type=int)
        command.set_defaults(run=cmd_action, action=action)

    listing = commands.add_parser("list", help="jobs, newest first")
    listing.add_argument("--status", choices=("started", "finished", "failed", "canceled"))
    listing.add_argument("--type", dest="job_type")
    listing.add_argument("--page", type=int, default=1)
    listing.add_argument("--page-size", type=int, default=20)
    listing.set_defaults(run=cmd_list)


def call(args, name: str, params: dict, *, write: bool = False) -> dict:
    """POST (writes) or GET ``/xingqiao/<name>``; the decoded JSON reply, whatever its stat.

    :raises kernel.cliclient.CommandError: the instance cannot be reached or does not answer JSON
    """
    return ApiClient.from_args(args).request(f"/xingqiao/{name}", params, write=write).body


def _failed(reply: dict) -> int:
    """Print a non-OK reply to stderr (with the task each error names); 1."""
    details = "; ".join(
        f"{item['task'] + ' ' if item.get('task') else ''}{item.get('param')}: {item.get('reason')}"
        for item in reply.get("errors", [])
    )
    print(f"error: {reply.get('stat')} {details or reply.get('reason', '')}".rstrip(), file=sys.stderr)
    return 1


def cmd_create(args) -> int:
    """``butterfly xingqiao create JOB_TYPE k=v ...``."""
    params = parse_params(args.params, target=args.job_type)
    reply = call(
        args,
        "create_job",
        {"job_type": args.job_type, "job_name": args.job_name, "job_extra": params, "job_timeout": args.job_timeout},
        write=True,
    )
    if reply.get("stat") != "OK":
        return _failed(reply)
    print(f"job {reply['job_id']} created: {reply['job_name']} ({reply['tasks']} tasks)")
    if args.wait:
        args.job_id = reply["job_id"]
        return cmd_status(args)
    return 0


def cmd_status(args) -> int:
    """``butterfly xingqiao status JOB_ID [--wait]``: exit 0 when the job finished (or still runs without --wait)."""
    while True:
        reply = call(args, "get_job_detail", {"job_id": args.job_id})
        if reply.get("stat") != "OK":
            return _failed(reply)
        job = reply["data"]
        if not getattr(args, "wait", False) or job["job_status"] in ENDED:
            break
        time.sleep(0.5)
    tasks = call(args, "get_tasklist_by_jobid", {"job_id": args.job_id})
    print(
        f"job {job['job_id']} {job['job_type']} {job['job_status']} ret_stat={job['ret_stat'] or '-'} "
        f"tasks {job['tasks_finished']}/{job['tasks_total']} cost {job['job_cost']:.3f}s"
    )
    rows = [["TASK", "ROUTE", "STATUS", "TRIES", "COST", "RET_STAT"]]
    for task in tasks.get("data", {}).get("list", []):
        cost = "-" if task["cost"] is None else f"{task['cost']:.3f}s"
        rows.append(
            [task["task_label"], task["task_cmd"], task["task_status"], task["attempts"], cost, task["ret_stat"]]
        )
    _table(rows)
    if job["ret_data"]:
        print(json.dumps(job["ret_data"], ensure_ascii=False, indent=2))
    return 0 if job["job_status"] in ("finished", "started") else 1


def cmd_action(args) -> int:
    """``butterfly xingqiao retry|cancel JOB_ID``."""
    reply = call(args, f"{args.action}_job", {"job_id": args.job_id}, write=True)
    if reply.get("stat") != "OK":
        return _failed(reply)
    summary = ", ".join(f"{key}={value}" for key, value in reply.items() if key not in ("stat", "job_id"))
    print(f"{args.action}: job {args.job_id} OK ({summary})")
    return 0


def cmd_list(args) -> int:
    """``butterfly xingqiao list``."""
    reply = call(
        args,
        "list_jobs",
        {"job_status": args.status, "job_type": args.job_type, "page_index": args.page, "page_size": args.page_size},
    )
    if reply.get("stat") != "OK":
        return _failed(reply)
    data = reply["data"]
    rows = [["JOB_ID", "TYPE", "STATUS", "TASKS", "RET_STAT", "CREATED", "NAME"]]
    for job in data["list"]:
        rows.append(
            [
                job["job_id"],
                job["job_type"],
                job["job_status"],
                f"{job['tasks_finished']}/{job['tasks_total']}",
                job["ret_stat"] or "-",
                job["c_time"],
                job["job_name"],
            ]
        )
    _table(rows)
    print(f"{data['total']} job(s)")
    return 0


def _table(rows: list[list]) -> None:
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)).rstrip())
