"""``butterfly mq enqueue-many|pause|resume`` (added to the ``mq`` command by :mod:`butterfly_mq.cli`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from typing import IO, Any

from kernel.errors import ConfigError

#: Lines sent per ``enqueue_many`` call (one round trip each) by ``enqueue-many``.
LINES_PER_BATCH = 1000


def add_operation_commands(commands: Any) -> None:
    """Add ``enqueue-many``, ``pause`` and ``resume`` to the ``mq`` subcommands."""
    many = commands.add_parser(
        "enqueue-many",
        help="queue one message per JSON line of a file (or - for stdin), a batch per round trip",
        description=(
            "Each non-blank line is one message: a JSON object of params, or with --envelope "
            '{"params": {...}, "msg_id": "..."}. Lines are sent in batches (one round trip each); '
            "invalid lines are reported on stderr and do not stop the others. Exit 1 when any line "
            "was invalid."
        ),
    )
    many.add_argument("topic", help="/app/handler")
    many.add_argument("file", help="a file of JSON lines, or - for stdin")
    many.add_argument("--envelope", action="store_true", help='lines are {"params": {...}, "msg_id": "..."}')
    many.add_argument("--delay", type=float, help="seconds before the messages may run")
    many.add_argument("--ttl", type=float, help="seconds each may wait in the queue")
    many.add_argument("--retries", type=int, help="retries of failed runs")
    many.add_argument("--batch", type=int, default=LINES_PER_BATCH, help="lines per round trip (default 1000)")
    many.add_argument("--ids", action="store_true", help="print each line's msg_id (empty when invalid)")
    many.set_defaults(run=cmd_enqueue_many)

    pause = commands.add_parser("pause", help="stop every instance popping a queue (its flag in Redis)")
    pause.add_argument("topic", help="/app/handler")
    pause.set_defaults(run=cmd_pause)
    resume = commands.add_parser(
        "resume", help="let every instance pop a queue again (also lifts [mq] paused on every instance)"
    )
    resume.add_argument("topic", help="/app/handler")
    resume.set_defaults(run=cmd_resume)


def _service(args: argparse.Namespace):
    from butterfly_mq.cli import _service as service_of

    return service_of(args)


def _topic(topic: str) -> str:
    from butterfly_mq.keys import check_topic

    try:
        return check_topic(topic)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def read_messages(lines: IO[str], envelope: bool) -> Iterator[tuple[int, Any, str | None, str]]:
    """``(line number, params, msg_id, problem)`` per non-blank line; ``problem`` is empty
    when the line is usable (params are then checked by ``enqueue_many``)."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            yield number, None, None, f"not JSON: {exc}"
            continue
        if not envelope:
            yield number, value, None, ""
        elif not isinstance(value, dict) or set(value) - {"params", "msg_id"}:
            yield number, None, None, 'expected {"params": {...}, "msg_id": "..."}'
        else:
            yield number, value.get("params", {}), value.get("msg_id"), ""


def cmd_enqueue_many(args: argparse.Namespace) -> int:
    """Send the file's messages in batches; print a summary (and the ids with ``--ids``)."""
    from butterfly_mq.batch import enqueue_many
    from butterfly_mq.dashboard import consumers_of
    from kernel.errors import HTTPError

    topic = _topic(args.topic)
    if args.batch < 1:
        raise ConfigError("--batch must be at least 1")
    service = _service(args)
    progress = sys.stderr.isatty()
    totals = {"enqueued": 0, "exists": 0, "duplicate": 0, "invalid": 0}
    try:
        stream = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
    except OSError as exc:
        raise ConfigError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    try:
        pending: list[tuple[int, Any, str | None]] = []

        def flush() -> None:
            if not pending:
                return
            result = enqueue_many(
                topic,
                [params for _, params, _ in pending],
                kernel=service.kernel,
                msg_ids=[msg_id for _, _, msg_id in pending],
                delay=args.delay,
                ttl=args.ttl,
                retries=args.retries,
            )
            for (number, _, _), item in zip(pending, result.items, strict=True):
                totals[item.status] += 1
                if item.status == "invalid":
                    detail = f" {json.dumps(item.errors)}" if item.errors else ""
                    print(f"line {number}: ERR_BAD_PARAMS: {item.reason}{detail}", file=sys.stderr)
                if args.ids:
                    print(item.msg_id if item.status != "invalid" else "")
            pending.clear()
            if progress:
                print(f"\r{sum(totals.values()):,} messages sent ...", end="", file=sys.stderr, flush=True)

        for number, params, msg_id, problem in read_messages(stream, args.envelope):
            if problem:
                totals["invalid"] += 1
                print(f"line {number}: {problem}", file=sys.stderr)
                if args.ids:
                    print("")
                continue
            pending.append((number, params, msg_id))
            if len(pending) >= args.batch:
                flush()
        flush()
    except HTTPError as exc:
        print(f"butterfly mq: {exc.stat}: {exc.reason}", file=sys.stderr)
        return 1
    finally:
        if stream is not sys.stdin:
            stream.close()
        if progress:
            print(file=sys.stderr)
    summary = ", ".join(f"{count:,} {status}" for status, count in totals.items())
    print(f"{topic}: {summary}", file=sys.stderr if args.ids else sys.stdout)
    if not consumers_of(service, topic):
        print(
            f"butterfly mq: warning: no live instance consumes {topic}; "
            "the messages were accepted and wait until one does",
            file=sys.stderr,
        )
    return 1 if totals["invalid"] else 0


def cmd_pause(args: argparse.Namespace) -> int:
    """Set the queue's pause flag in Redis (every instance stops popping it)."""
    topic = _topic(args.topic)
    _service(args).pause(topic)
    print(f"paused {topic} on every instance")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    """Clear the queue's pause flag and lift every instance's own pause of it."""
    topic = _topic(args.topic)
    _service(args).resume(topic)
    print(f"resumed {topic} on every instance (running instances that paused it by [mq] paused resume it too)")
    return 0
