"""Butterfly baichuan (百川) message queue and canghai (沧海) dashboard.

``from butterfly_mq import enqueue, enqueue_many, get_message``.
"""

from __future__ import annotations

from butterfly_mq.batch import BatchResult, enqueue_many
from butterfly_mq.producer import enqueue, get_message

#: The one place this distribution's version is written (pyproject.toml reads it).
__version__ = "0.2.0"

__all__ = ["BatchResult", "enqueue", "enqueue_many", "get_message"]
