"""Butterfly baichuan (百川) message queue and canghai (沧海) dashboard.

``from butterfly_mq import enqueue, enqueue_many, get_message``.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from butterfly_mq.batch import BatchResult, enqueue_many
    from butterfly_mq.producer import enqueue, get_message

#: The one place this distribution's version is written (pyproject.toml reads it).
__version__ = "0.2.0"

__all__ = ["BatchResult", "enqueue", "enqueue_many", "get_message"]

# PERF: the public names load redis-py on first use, not when the plugin is discovered: an
# install with the MQ off starts ~0.2 s faster and ~6 MB smaller (issue 11 budgets).
_HOMES = {"BatchResult": "batch", "enqueue_many": "batch", "enqueue": "producer", "get_message": "producer"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'butterfly_mq' has no attribute {name!r}")
    value = getattr(import_module(f"butterfly_mq.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
