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

    doctor = commands.add_parser(
        "doctor",
        help="check the endpoint for real: mode, every command and script, key placement, queues",
        description="Exit 0 when every check passes, 1 on any problem.",
    )
    doctor.add_argument("--redis-url", help="endpoint to check (default [mq] redis_url)")
    doctor.add_argument(
        "--cluster",
        action="store_true",
        help="with --redis-url: it names a Redis Cluster node (default: [mq] redis_cluster)",
    )
    doctor.add_argument("--prefix", help="with --redis-url: the MQ key prefix (default bc)")
    doctor.add_argument("--proxy-config", help="the nutcracker yml of the pool: check it and look at every backend")
    doctor.set_defaults(run=cmd_doctor)

    from butterfly_mq.cli_ops import add_operation_commands

    add_operation_commands(commands)


def _service(args: argparse.Namespace):
    from kernel.cli import load_kernel

    service = load_kernel(args).extensions.get("mq")
    if service is None:
        raise ConfigError("the MQ is off: set [mq] redis_url (or BUTTERFLY_MQ_REDIS_URL)")
    return service


def cmd_enqueue(args: argparse.Namespace) -> int:
    """Queue one message and print its id (a warning on stderr when no live instance consumes it)."""
    from butterfly_mq.dashboard import consumers_of
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
    if not consumers_of(service, args.topic):
        print(
            f"butterfly mq: warning: no live instance consumes {args.topic}; "
            "the message was accepted and waits until one does",
            file=sys.stderr,
        )
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
            + ("" if q["consumers"] else "  NO CONSUMER")
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
    """Check the endpoint; exit 1 on any problem."""
    from butterfly_mq.connection import redact_url
    from butterfly_mq.doctor import check_endpoint, describe

    if args.redis_url:
        url, prefix, cluster, topics = args.redis_url, args.prefix or "bc", args.cluster, []
    else:
        service = _service(args)
        config = service.config
        url, prefix, cluster, topics = config.redis_url, config.prefix, config.redis_cluster, list(config.queues)
    print(f"checking {redact_url(url)}")
    report = check_endpoint(url, prefix, cluster=cluster, proxy_config=args.proxy_config, topics=topics)
    print(describe(report))
    return 1 if report.problems else 0
