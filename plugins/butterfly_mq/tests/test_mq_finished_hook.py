"""``butterfly_mq_message_finished``: once per run, before the ack, never blocking it."""

from __future__ import annotations

from butterfly_mq import enqueue
from kernel import hookimpl


def test_hook_sees_every_run_before_its_ack(mq_kernel, mq):
    class Recording(mq.Handlers):
        def __init__(self):
            super().__init__()
            self.calls = []

        @hookimpl
        def butterfly_mq_message_finished(self, kernel, message, outcome):
            state = mq.queue(kernel, message.topic).get(message.msg_id)["state"]
            self.calls.append((message.msg_id, message.attempt, outcome.outcome, outcome.stat, state))
            if message.msg_id == "explodes":
                raise RuntimeError("a broken hook must not stop the ack")

    handlers = Recording()
    kernel = mq_kernel(start=True, handlers=handlers)
    enqueue("/t/ok", {"n": 2}, kernel=kernel, msg_id="fine")
    enqueue("/t/boom", {}, kernel=kernel, msg_id="boom", retries=1)
    enqueue("/t/ok", {"n": 3}, kernel=kernel, msg_id="explodes")
    mq.wait_for(lambda: mq.counts(kernel, "/t/ok")["finished"] == 2 and mq.counts(kernel, "/t/boom")["failed"] == 1)
    calls = sorted(handlers.calls)
    assert calls == [
        ("boom", 1, "retry", "ERR_SERVER_EXCEPTION", "started"),
        ("boom", 2, "failed", "ERR_SERVER_EXCEPTION", "started"),
        ("explodes", 1, "finished", "OK", "started"),
        ("fine", 1, "finished", "OK", "started"),
    ]
    # the exception in the hook was logged and the message was still acknowledged
    assert mq.queue(kernel, "/t/ok").get("explodes")["state"] == "finished"
