"""demo_async_job: hand slow work to the 百川 baichuan queue and ask how it went.

``POST /demo_async_job/add_job n=100000`` queues a message for ``/demo_async_job/work``
(validated against ``work``'s signature at enqueue time) and answers at once with
its ``msg_id``; an instance consuming that topic runs ``work`` later, with the
same hooks as an HTTP call (access log method ``QUEUE``, reqid = the msg_id,
parent reqid = this request's). ``/demo_async_job/job_status?msg_id=...``
reports its state and result. Needs ``[mq] redis_url``.

``add_job`` writes to Redis, so it is POST only: a link or a prefetching browser
cannot queue work. ``work`` is public, so what it may compute is bounded (``n`` up
to :data:`MAX_N`) and it adds in small chunks, letting other requests' threads run
between them: a large ``n`` never stalls ``/demo_api/ping``.
"""

from typing import Annotated

from annotated_types import Interval, MaxLen, MinLen

from butterfly_mq import enqueue, get_message
from butterfly_mq.errors import MQError
from butterfly_router import NOT_BLANK, api, retstat

#: The largest ``n`` a demo job accepts (keeps the demo quick).
MAX_N = 10_000_000
#: Integers added per chunk of ``work`` (~1 ms of CPU each).
CHUNK = 50_000
#: What ``n`` may be.
Count = Annotated[int, Interval(ge=0, le=MAX_N)]


@api(methods=("POST",))
def add_job(req, n: Count, delay: Annotated[float, Interval(ge=0, le=86_400)] = 0.0):
    """``POST /demo_async_job/add_job n=1000`` → ``{"stat": "OK", "msg_id": "..."}``.

    :param req: the request
    :param n: sum the integers below ``n`` (0..10,000,000)
    :param delay: seconds before the job may run (at most a day)
    :return: ``(stat, data)``
    """
    try:
        msg_id = enqueue("/demo_async_job/work", {"n": n}, delay=delay or None, kernel=req.kernel)
    except MQError as exc:
        return "ERR_MQ_UNAVAILABLE", {"reason": str(exc)}
    return retstat.OK, {"msg_id": msg_id}


@api(methods=("GET", "HEAD"))
def job_status(req, msg_id: Annotated[str, MinLen(1), MaxLen(128), NOT_BLANK]):
    """``/demo_async_job/job_status?msg_id=...`` → state, attempts, times, result or error.

    :param req: the request
    :param msg_id: the id ``add_job`` returned
    :return: ``(stat, data)``; ``ERR_NOT_FOUND`` for an unknown id
    """
    try:
        message = get_message(msg_id, topic="/demo_async_job/work", kernel=req.kernel)
    except MQError as exc:
        return "ERR_MQ_UNAVAILABLE", {"reason": str(exc)}
    if message is None:
        return retstat.ERR_NOT_FOUND, {"reason": f"no job {msg_id}"}
    fields = ("state", "attempts", "enqueued_at", "started_at", "ended_at", "cost_ms", "stat", "error", "result")
    return retstat.OK, {"msg_id": msg_id, **{key: message.get(key) for key in fields}}


def sum_below(n: int) -> int:
    """The sum of ``range(n)``, added a chunk at a time.

    # NOTE: one ``sum(range(n))`` is a single C call that holds the GIL until it
    # returns (21 s for n = 10**9, deaf even to SIGTERM); between chunks the
    # interpreter hands the GIL to the server's other threads.

    :param n: a non-negative integer
    :return: ``0 + 1 + ... + (n - 1)``
    """
    total = 0
    for start in range(0, n, CHUNK):
        total += sum(range(start, min(start + CHUNK, n)))
    return total


@api
def work(req, n: Count):
    """The job itself (run by the queue; callable over HTTP too): the sum of ``range(n)``.

    :param req: the request (``req.source == "mq"`` when run by the queue)
    :param n: how many integers to add (0..10,000,000)
    :return: ``(stat, data)``
    """
    return retstat.OK, {"n": n, "total": sum_below(n), "source": req.source}
