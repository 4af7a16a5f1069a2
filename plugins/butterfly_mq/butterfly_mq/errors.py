"""The MQ's exceptions (all :class:`kernel.ButterflyError`)."""

from __future__ import annotations

from kernel import ButterflyError


class MQError(ButterflyError):
    """Base class of every error the MQ raises on purpose."""


class MQNotConfigured(MQError):
    """No Redis URL: neither ``redis_url=``, a running kernel with ``[mq] redis_url``, nor
    ``BUTTERFLY_MQ_REDIS_URL``."""


class MQUnavailable(MQError):
    """Redis did not answer; the message was not acknowledged and may be sent again
    with the same ``msg_id`` (enqueue is idempotent per id)."""
