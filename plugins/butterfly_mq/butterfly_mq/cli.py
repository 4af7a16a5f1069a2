"""``butterfly mq enqueue|status|requeue|doctor``.

``enqueue`` takes the parameter syntax of every command (:mod:`kernel.cliparams`):
``k=v`` (a string, converted by the handler's type hints when it runs), ``k:=json``,
and bare values bound to the handler's parameters in signature order when the
topic is a route of this install.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kernel.errors import ConfigError


def add_commands(subparsers: Any) -> None:
    """Add the ``mq`` command and its subcommands."""
    mq = subparsers.add_parser(
        "mq",
        help="百川 baichuan message queue: enqueue, status, requeue, doctor",
        description="Operate the Butterfly message queue ([mq] redis_url).",
    )
    commands = mq.add_subparsers(dest="mq_command", metavar="SUBCOMMAND")
    mq.set_defaults(run=lambda args: mq.print_help() or 2)

    enqueue = commands.add_parser(
        "enqueue",
        help="queue a message: butterfly mq enqueue /app/h k=v k:=json ...",
        epilog="example: butterfly mq enqueue /demo_api/hello str_info=hi --delay 10",
    )
    enqueue.add_argument("topic", help="/app/handler")
    enqueue.add_argument(
        "params",
        nargs="*",
        metavar="VALUE|k=v|k:=json",
        help="k=v is a string, k:=json a JSON value; bare values bind in the handler's signature order",
    )
    enqueue.add_argument("--json-params", dest="json_params", help="the params as one JSON object (k=v wins)")
    # NOTE: the option's old name; kept so existing scripts work.
    enqueue.add_argument("--json", dest="json_params", help=argparse.SUPPRESS)
    enqueue.add_argument("--delay", type=float, help="seconds before it may run")
    enqueue.add_argument("--ttl", type=float, help="seconds it may wait in the queue")
    enqueue.add_argument("--retries", type=int, help="retries of failed runs")
    enqueue.add_argument("--msg-id", help="idempotency key / message id")
    enqueue.set_defaults(run=cmd_enqueue, leftovers="params")

    status = commands.add_parser("status", help="counts per queue and state, instances")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(run=cmd_status)

    requeue = commands.add_parser("requeue", help="run messages again: one id, or every failed/dead one")
    requeue.add_argument("msg_id", nargs="?", help="the message to requeue")
    requeue.add_argument("--queue", help="/app/handler (required with --all)")
    requeue.add_argument("--all", choices=("failed", "dead"), help="requeue every message in this state")
    requeue.set_defaults(run=cmd_requeue)

    doctor = commands.add_parser("doctor", help="check the endpoint supports every command the MQ uses")
    doctor.add_argument("--redis-url", help="endpoint to check (default [mq] redis_url)")
    doctor.add_argument("--proxy-config", help="a nutcracker yml to check (hash_tag, auto_eject_hosts)")
    doctor.set_defaults(run=cmd_doctor)


def _service(args: argparse.Namespace):
    from kernel.cli import load_kernel

    service = load_kernel(args).extensions.get("mq")
    if service is None:
        raise ConfigError("the MQ is off: set [mq] redis_url (or BUTTERFLY_MQ_REDIS_URL)")
    return service


def cmd_enqueue(args: argparse.Namespace) -> int:
    """Queue one message and print its id."""
    from butterfly_mq.producer import enqueue
    from kernel.cliparams import parse_params
    from kernel.debug import route_parameters
    from kernel.errors import HTTPError

    service = _service(args)
    route = service.kernel.routes.lookup(args.topic)
    signature = route_parameters(route) if route is not None else None
    params = parse_params(args.params, json_object=args.json_params, signature=signature, target=args.topic)
    try:
        msg_id = enqueue(
            args.topic,
            params,
            kernel=service.kernel,
            msg_id=args.msg_id,
            delay=args.delay,
            ttl=args.ttl,
            retries=args.retries,
        )
    except HTTPError as exc:
        print(f"butterfly mq: {exc.stat}: {exc.reason} {json.dumps(exc.data) if exc.data else ''}", file=sys.stderr)
        return 1
    print(msg_id)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print counts per queue and the instances."""
    from butterfly_mq.dashboard import queues_overview
    from butterfly_mq.keys import STATES

    service = _service(args)
    queues, instances = queues_overview(service), service.registry_list()
    if args.json:
        print(json.dumps({"queues": queues, "instances": instances}, indent=2))
        return 0
    width = max([len(q["name"]) for q in queues] + [5])
    print(f"{'queue':<{width}} " + " ".join(f"{s:>9}" for s in STATES) + "  oldest(s)  done/min")
    for q in queues:
        oldest = "-" if q["oldest_age"] is None else f"{q['oldest_age']:.1f}"
        print(
            f"{q['name']:<{width}} "
            + " ".join(f"{q[s]:>9}" for s in STATES)
            + f"  {oldest:>9}  {q['throughput_per_min']:>8}"
            + ("  PAUSED" if q["paused"] else "")
        )
    print(
        f"\ninstances: {sum(1 for i in instances if i['alive'])} alive, "
        f"{sum(1 for i in instances if not i['alive'])} dead or stopped"
    )
    for i in instances:
        print(f"  {'alive' if i['alive'] else 'gone ':5}  {i['name']}  last heartbeat {i['heartbeat_age']}s ago")
    return 0


def cmd_requeue(args: argparse.Namespace) -> int:
    """Requeue one message, or every failed/dead message of a queue."""
    from butterfly_mq.queue import Queue, find_message, registered_topics

    service = _service(args)
    client, prefix = service.client, service.config.prefix
    if args.all:
        if not args.queue:
            raise ConfigError("--all needs --queue /app/handler")
        queue, count = Queue(client, args.queue, prefix), 0
        while True:
            _, messages = queue.page(args.all, 0, 500)
            done = sum(1 for m in messages if queue.requeue(m["id"]) == 1)
            count += done
            if not done:
                break
        print(f"requeued {count} {args.all} messages of {args.queue}")
        return 0
    if not args.msg_id:
        raise ConfigError("give a msg_id, or --all failed|dead --queue /app/handler")
    topics = [args.queue] if args.queue else registered_topics(client, prefix)
    message = find_message(client, args.msg_id, topics, prefix)
    if message is None:
        print(f"butterfly mq: no message {args.msg_id}", file=sys.stderr)
        return 1
    status = Queue(client, message["topic"], prefix).requeue(args.msg_id)
    if status != 1:
        print(
            f"butterfly mq: {args.msg_id} is {message['state']}; only finished, failed, dead and scheduled "
            "messages can be requeued",
            file=sys.stderr,
        )
        return 1
    print(f"requeued {args.msg_id}")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    """Check the endpoint; exit 1 when a command the MQ needs is missing."""
    from butterfly_mq.connection import redact_url
    from butterfly_mq.doctor import check_endpoint, looks_like_twemproxy, proxy_config_warnings

    if args.redis_url:
        url, prefix = args.redis_url, "bc"
    else:
        service = _service(args)
        url, prefix = service.config.redis_url, service.config.prefix
    print(f"checking {redact_url(url)}")
    results = check_endpoint(url, prefix)
    for name, ok, detail in results:
        print(f"  {'ok     ' if ok else 'MISSING'}  {name}{'  — ' + detail if detail else ''}")
    warnings = proxy_config_warnings(args.proxy_config) if args.proxy_config else []
    if looks_like_twemproxy(url):
        print(
            '  note     INFO is refused: this looks like Twemproxy. Make sure its pool has hash_tag: "{}" and '
            "auto_eject_hosts: false (an ejected server's queues get split); pass --proxy-config to check."
        )
    for warning in warnings:
        print(f"  WARNING  {warning}")
    failed = [name for name, ok, _ in results if not ok]
    print("all commands supported" if not failed else f"{len(failed)} check(s) failed: {', '.join(failed)}")
    return 1 if failed or warnings else 0
