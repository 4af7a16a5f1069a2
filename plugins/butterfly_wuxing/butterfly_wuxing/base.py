"""Shared plumbing of the wuxing API: sessions, transactions, paging, item values, history.

Every public API method runs in a pony ``db_session`` (joining the request's when
there is one). Write methods check everything before they write, so a refusal
(:class:`~butterfly_wuxing.errors.WuxingError`) leaves nothing behind; a
concurrent writer that wins a race (unique key, optimistic check) is reported
with the method's conflict stat after the transaction is rolled back.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, TypeVar

from pony.orm import db_session, flush, rollback
from pony.orm.core import TransactionError

from butterfly_wuxing import models, stats
from butterfly_wuxing.errors import WuxingError
from butterfly_wuxing.values import COLUMNS, encode_json, format_time, from_column, now, to_column

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_PAGE_SIZE = 10


def reads(method: F) -> F:
    """Run an API method inside a ``db_session`` (nested in the request's, if any)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with db_session:
            return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def writes(conflict_stat: str) -> Callable[[F], F]:
    """Run a write method as one transaction step: flush at the end, map races to a stat.

    :param conflict_stat: the stat reported when a concurrent writer got there
        first (a unique key or an optimistic check failed at flush)
    """

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with db_session:
                try:
                    result = method(*args, **kwargs)
                    flush()
                    return result
                except TransactionError as exc:
                    # NOTE: the database refused the whole step; pony needs a rollback
                    # before the session can be used again (this also undoes the
                    # enclosing request's earlier writes — it failed with us).
                    rollback()
                    raise WuxingError(
                        conflict_stat, f"a concurrent change got there first; retry ({type(exc).__name__})"
                    ) from None

        return wrapper  # type: ignore[return-value]

    return decorate


def bad_param(param: str, reason: str) -> WuxingError:
    """An ``ERR_BAD_PARAMS`` refusal shaped like the router's (``errors`` list)."""
    return WuxingError(
        stats.ERR_BAD_PARAMS, f"bad parameter {param}: {reason}", {"errors": [{"param": param, "reason": reason}]}
    )


def names_something(*keys: Any) -> bool:
    """True when every key is text with something besides blanks (the store strips keys, so a
    blank one names no row — and pony refuses to look it up)."""
    return all(isinstance(key, str) and key.strip() for key in keys)


def split_names(value: Any) -> list[str] | None:
    """``"a,b"`` or ``["a", "b"]`` → ``["a", "b"]``; ``None``/empty → ``None``."""
    if value is None or value == "" or value == []:
        return None
    parts = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    names = [part.strip() for part in parts if part.strip()]
    return names or None


class WuxingBase:
    """The entities of one kernel's store, and what every API area shares.

    :param db: the store's bound, mapped pony ``Database``
    :param max_page_size: the largest ``page_size`` a list accepts
    """

    def __init__(self, db: Any, max_page_size: int = 100) -> None:
        self.db = db
        self.max_page_size = max(1, max_page_size)
        self.Section = db.entities[models.SECTION]
        self.SectionItem = db.entities[models.SECTION_ITEM]
        self.Instance = db.entities[models.INSTANCE]
        self.Item = db.entities[models.ITEM]
        self.History = db.entities[models.HISTORY]

    # -- paging ------------------------------------------------------------------------

    def check_page(self, page_index: Any, page_size: Any) -> tuple[int, int]:
        """Check ``page_index >= 1`` and ``1 <= page_size <= max_page_size``.

        :return: ``(page_index, page_size)`` as ints
        :raises WuxingError: ``ERR_BAD_PARAMS`` naming the parameter
        """
        for name, value in (("page_index", page_index), ("page_size", page_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad_param(name, f"expected an integer >= 1, got {value!r}")
        if page_size > self.max_page_size:
            raise bad_param("page_size", f"at most {self.max_page_size} (the [wuxing] max_page_size), got {page_size}")
        return page_index, page_size

    # -- item values -------------------------------------------------------------------

    @staticmethod
    def value_of(item: Any) -> Any:
        """The typed value of an item row."""
        return from_column(item.item_type, getattr(item, COLUMNS[item.item_type]))

    @staticmethod
    def set_value(item: Any, value: Any, user: str | None, when: Any) -> None:
        """Store a checked value in the item's column (clearing the others is unneeded:
        an item's type never changes without its value being rewritten)."""
        for column in set(COLUMNS.values()):
            setattr(item, column, None)
        setattr(item, COLUMNS[item.item_type], to_column(item.item_type, value))
        item.user = user
        item.u_time = when

    def record(
        self,
        item: Any,
        cmd: str,
        old: Any,
        new: Any,
        user: str | None,
        when: Any,
        *,
        missing_old: bool = False,
        missing_new: bool = False,
    ) -> None:
        """Append one history row (values as JSON text; ``None`` when absent)."""
        if item.id is None:
            flush()  # NOTE: a new item gets its id from the INSERT; the history row needs it.
        self.History(
            item_id=item.id,
            namespace=item.instance.namespace,
            instance_name=item.instance.instance_name,
            item_name=item.item_name,
            item_type=item.item_type,
            cmd=cmd,
            old_value=None if missing_old else encode_json(old),
            new_value=None if missing_new else encode_json(new),
            user=user,
            c_time=when,
        )

    @staticmethod
    def history_row(row: Any) -> dict[str, Any]:
        """One history entry as the API shows it (``item_value`` = the new value)."""
        old = None if row.old_value is None else json.loads(row.old_value)
        new = None if row.new_value is None else json.loads(row.new_value)
        return {
            "id": row.id,
            "item_id": row.item_id,
            "namespace": row.namespace,
            "instance_name": row.instance_name,
            "item_name": row.item_name,
            "item_type": row.item_type,
            "cmd": row.cmd,
            "old_value": old,
            "new_value": new,
            "item_value": new,
            "user": row.user,
            "c_time": format_time(row.c_time),
        }

    @staticmethod
    def timestamp() -> Any:
        """The time every row written by one call shares."""
        return now()
