"""Hooks butterfly-mq adds to the kernel's plugin manager (``butterfly_add_hookspecs``)."""

from __future__ import annotations

from kernel import hookspec

# --------------------------------------------------------------------------------------
# consumer: called on an MQ worker thread, once per run of a message
# --------------------------------------------------------------------------------------


@hookspec
def butterfly_mq_message_finished(kernel, message, outcome):
    """A run of a message ended and its outcome is decided, just before it is acknowledged.

    Runs on the MQ worker thread that ran the handler, after the handler returned
    (or failed) and the outcome was classified, *before* the outcome is queued for
    the acknowledgement to Redis. So a crash between this hook and the ack leaves the
    message leased: it is run again and this hook is called again. Implementations
    must therefore be idempotent (compare-and-set on ``message.msg_id`` and
    ``message.attempt``) — in exchange no finished run is ever missed. The same run
    may also be reported twice when its lease expired while it ran and another
    instance ran it too. Exceptions are logged and swallowed; they never stop the
    ack. Keep it short: the worker takes no new message until it returns. Implement it
    with ``@hookimpl(optionalhook=True)`` so your plugin also loads without the MQ.

    :param kernel: the :class:`kernel.app.Kernel` whose consumer ran the message
    :param message: the :class:`butterfly_mq.queue.Popped` message: ``topic``,
        ``msg_id``, ``params_text`` (JSON), ``info`` (metadata: ``reqid`` of the
        producer, ``retries``, ...) and ``attempt`` (1 for the first run)
    :param outcome: the :class:`butterfly_mq.queue.Outcome` about to be recorded:
        ``outcome`` (``finished`` | ``failed`` | ``retry``), ``stat``, ``result_json``
        (the reply as JSON text), ``error``, ``cost_ms``, ``worker``, ``attempt``
    :return: ``None``
    """
