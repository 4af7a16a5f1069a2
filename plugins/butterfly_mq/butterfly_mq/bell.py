"""The bell: wake an idle consumer when a message is marked ready, without polling.

Every ready mark also appends to a capped stream (``bc:{ready}:bell``, see
:mod:`butterfly_mq.ready`). The bell thread blocks on it with ``XREAD BLOCK`` and sets the
poller's wake event when a new entry arrives, so an idle poller need not read the ready index
20 times a second: pick-up is at once, and an idle instance wakes only for its sweeps.

The poller trusts the bell only while it is **armed**: connected and blocked on the stream,
reading from an entry id it already knows, so no mark can slip between two reads. When it
is not armed (starting, Redis down) the poller polls every ``pickup_interval`` as before.

Every enqueue rings every idle consumer, also those that do not consume its topic. So after
a ring the bell rests ``pickup_interval`` before it listens again (reading on from the last
entry it saw, so nothing is missed): under a stream of enqueues an idle instance wakes at most
``1 / pickup_interval`` times a second — as often as it polled before — while the first
message after a quiet spell is announced at once.

Twemproxy serves no blocking commands (it closes the connection). When ``XREAD`` fails twice
while ``PING`` answers, the bell gives up for good and the poller keeps polling; a Redis
that is down is retried with backoff instead.
"""

from __future__ import annotations

import threading
from typing import Any

import redis
import structlog

from butterfly_mq.backoff import Backoff
from butterfly_mq.connection import ERRORS

log = structlog.get_logger("butterfly.mq")
#: How long one ``XREAD`` blocks (ms); below the client's 5 s socket timeout.
BLOCK_MS = 3000
#: Refusals of ``XREAD`` (while ``PING`` answers) before the bell gives up.
REFUSALS = 2


class Bell:
    """One consumer's bell thread.

    :param client: the consumer's Redis client (a blocked ``XREAD`` holds one of its connections)
    :param stream: the bell stream's key
    :param wake: called when the bell rings, is armed or is disarmed (the poller's wake event)
    :param rest: seconds the bell rests after a ring (``[mq] pickup_interval``)
    """

    def __init__(self, client: Any, stream: str, wake: Any, rest: float = 0.05) -> None:
        self.client = client
        self.stream = stream
        self.wake = wake
        self.rest = rest
        #: True while blocked on the stream from a known id: the poller may sleep.
        self.armed = False
        #: True once the endpoint turned out not to serve XREAD BLOCK (Twemproxy).
        self.unsupported = False
        self.rings = 0
        self.stopping = threading.Event()
        self.backoff = Backoff("mq-bell", base=0.2, cap=5.0, logger=log)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the bell thread."""
        self._thread = threading.Thread(target=self._loop, name="mq-bell", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop ringing (the thread ends after its current ``XREAD``, at most :data:`BLOCK_MS`)."""
        self.stopping.set()
        self._disarm()

    def _disarm(self) -> None:
        if self.armed:
            self.armed = False
            self.wake()  # NOTE: the poller goes back to polling at once

    def _loop(self) -> None:
        refusals = 0
        while not self.stopping.is_set():
            try:
                last = self._latest_id()
                self.armed = True
                # NOTE: marks up to ``last`` were made before we were armed; one round of the
                # poller after this point reads them from the ready index.
                self.wake()
                while not self.stopping.is_set():
                    last = self._wait(last)
                    refusals = 0
            except Exception as exc:  # noqa: BLE001 - the bell must outlive any error
                self._disarm()
                if self.stopping.is_set():
                    return  # NOTE: the client was closed under a blocked XREAD: a normal stop
                if isinstance(exc, ERRORS) and not isinstance(exc, redis.TimeoutError) and self._answers_ping():
                    refusals += 1
                    if refusals >= REFUSALS or isinstance(exc, redis.ResponseError):
                        self.unsupported = True
                        log.info(
                            "mq_bell_unsupported",
                            error=f"{type(exc).__name__}: {exc}",
                            note="the endpoint does not serve XREAD BLOCK (Twemproxy?); "
                            "idle consumers poll every [mq] pickup_interval instead",
                        )
                        return
                    continue
                self.stopping.wait(self.backoff.failed(exc))
                continue
            self.backoff.succeeded()

    def _latest_id(self) -> str:
        """The id of the newest entry (``0-0`` for an empty or missing stream)."""
        newest = self.client.xrevrange(self.stream, count=1)
        self.backoff.succeeded()
        return newest[0][0] if newest else "0-0"

    def _wait(self, last: str) -> str:
        """Block until an entry newer than ``last`` arrives (or :data:`BLOCK_MS` passed);
        ring when one did. Returns the newest id seen."""
        reply = self.client.xread({self.stream: last}, block=BLOCK_MS)
        if not reply:
            return last
        entries = reply[0][1]  # NOTE: RESP2 (connect() never speaks RESP3): [[stream, entries]]
        if entries:
            self.rings += 1
            self.wake()
            self.stopping.wait(self.rest)  # PERF: at most one ring per rest (see the module docstring)
            return entries[-1][0]
        return last

    def _answers_ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except Exception:  # noqa: BLE001 - any failure means "no"
            return False
