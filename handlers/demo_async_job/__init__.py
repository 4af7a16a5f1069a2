"""demo_async_job: hand slow work to the 百川 baichuan queue and ask how it went.

``/demo_async_job/add_job?n=100000`` queues a message for ``/demo_async_job/work``
(validated against ``work``'s signature at enqueue time) and answers at once with
its ``msg_id``; an instance consuming that topic runs ``work`` later, with the
same hooks as an HTTP call (access log method ``QUEUE``, reqid = the msg_id,
parent reqid = this request's). ``/demo_async_job/job_status?msg_id=...``
reports its state and result. Needs ``[mq] redis_url``.
"""

from butterfly_mq import enqueue, get_message
from butterfly_mq.errors import MQError
from butterfly_router import api, retstat

#: The largest ``n`` a demo job accepts (keeps the demo quick).
MAX_N = 10_000_000


def add_job(req, n: int, delay: float = 0.0):
    """``/demo_async_job/add_job?n=1000`` → ``{"stat": "OK", "msg_id": "..."}``.

    :param req: the request
    :param n: sum the integers below ``n`` (0..10,000,000)
    :param delay: seconds before the job may run
    :return: ``(stat, data)``
    """
    if not 0 <= n <= MAX_N:
        return retstat.ERR_BAD_PARAMS, {"errors": [{"param": "n", "reason": f"must be within 0..{MAX_N}"}]}
    try:
        msg_id = enqueue("/demo_async_job/work", {"n": n}, delay=delay or None)
    except MQError as exc:
        return "ERR_MQ_UNAVAILABLE", {"reason": str(exc)}
    return retstat.OK, {"msg_id": msg_id}


def job_status(req, msg_id: str):
    """``/demo_async_job/job_status?msg_id=...`` → state, attempts, times, result or error.

    :param req: the request
    :param msg_id: the id ``add_job`` returned
    :return: ``(stat, data)``; ``ERR_NOT_FOUND`` for an unknown id
    """
    try:
        message = get_message(msg_id, topic="/demo_async_job/work")
    except MQError as exc:
        return "ERR_MQ_UNAVAILABLE", {"reason": str(exc)}
    if message is None:
        return retstat.ERR_NOT_FOUND, {"reason": f"no job {msg_id}"}
    fields = ("state", "attempts", "enqueued_at", "started_at", "ended_at", "cost_ms", "stat", "error", "result")
    return retstat.OK, {"msg_id": msg_id, **{key: message.get(key) for key in fields}}


@api
def work(req, n: int):
    """The job itself (run by the queue; callable over HTTP too): the sum of ``range(n)``.

    :param req: the request (``req.source == "mq"`` when run by the queue)
    :param n: how many integers to add
    :return: ``(stat, data)``
    """
    return retstat.OK, {"n": n, "total": sum(range(n)), "source": req.source}
