"""Items by id, item search and history (``item_*`` endpoints)."""

from __future__ import annotations

from typing import Any

from pony.orm import desc, raw_sql, select

from butterfly_wuxing import stats
from butterfly_wuxing.base import DEFAULT_PAGE_SIZE, bad_param, reads, writes
from butterfly_wuxing.changes import ChangeOps
from butterfly_wuxing.errors import WuxingError
from butterfly_wuxing.values import COLUMNS, TYPES, format_time, parse_time, parse_value, to_column
from kernel.redaction import is_secret_name

#: client operator → SQL operator (a whitelist: only these strings reach the SQL text)
OPERATORS = {"=": "=", "==": "=", "!=": "<>", "<>": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
#: types whose values only compare for (in)equality
EQUALITY_ONLY = {"text", "json", "bool"}
#: local variable (named in the raw SQL) holding the comparison value of each type
VALUE_PARAMS = {t: f"value_{t}" for t in TYPES}
#: the largest item id (pony's default integer primary key is 32 bits)
MAX_ID = 2**31 - 1
ITEM_ORDERS = {
    "instance_name": (
        lambda i: (i.instance.instance_name, i.id),
        lambda i: (desc(i.instance.instance_name), desc(i.id)),
    ),
    "item_name": (lambda i: (i.item_name, i.id), lambda i: (desc(i.item_name), desc(i.id))),
    "u_time": (lambda i: (i.u_time, i.id), lambda i: (desc(i.u_time), desc(i.id))),
    "c_time": (lambda i: (i.c_time, i.id), lambda i: (desc(i.c_time), desc(i.id))),
    "item_id": (lambda i: i.id, lambda i: desc(i.id)),
}


class ItemOps(ChangeOps):
    """``item_get``, ``item_update``, ``item_list``, ``item_history_list``."""

    def _item_by_id(self, item_id: int, item_type: str | None, *, for_update: bool = False) -> Any:
        # NOTE: ids are 32-bit; pony raises a plain ValueError for anything bigger.
        item = (
            None
            if not 0 < item_id <= MAX_ID
            else (self.Item.get_for_update if for_update else self.Item.get)(id=item_id)
        )
        if item is None:
            raise WuxingError(stats.ERR_ITEM_IS_NOT_FOUND, f"no item with id {item_id}")
        self._check_claimed_type(item.item_type, item_type)
        return item

    @staticmethod
    def _check_claimed_type(actual: str, claimed: str | None) -> None:
        # NOTE: the original let the client pick the type; here it is only checked.
        if claimed is None or claimed == "":
            return
        if claimed not in TYPES:
            raise WuxingError(
                stats.ERR_ITEM_TYPE_NOT_FOUND, f"unknown item_type {claimed!r}; use one of {', '.join(TYPES)}"
            )
        if claimed != actual:
            raise WuxingError(stats.ERR_ITEM_TYPE_MISMATCH, f"the item is of type {actual}, not {claimed}")

    def item_row(self, item: Any) -> dict[str, Any]:
        """One item as lists show it."""
        instance = item.instance
        return {
            "item_id": item.id,
            "namespace": instance.namespace,
            "section_name": instance.section.section_name,
            "section_version": instance.section.section_version,
            "instance_name": instance.instance_name,
            "item_name": item.item_name,
            "item_type": item.item_type,
            "item_value": self.value_of(item),
            "user": item.user,
            "c_time": format_time(item.c_time),
            "u_time": format_time(item.u_time),
        }

    @reads
    def item_get(self, item_id: int, item_type: str | None = None) -> dict[str, Any]:
        """One item by id.

        :param item_type: optional; when given it must be the item's type
        :return: the item row (``item_value``, ``u_time``, names, type)
        :raises WuxingError: ``ERR_ITEM_IS_NOT_FOUND``, ``ERR_ITEM_TYPE_NOT_FOUND``, ``ERR_ITEM_TYPE_MISMATCH``
        """
        return self.item_row(self._item_by_id(item_id, item_type))

    @writes(stats.ERR_ITEM_UPDATE_FAILED)
    def item_update(
        self,
        item_id: int,
        item_value: Any,
        item_value_old: Any = None,
        item_type: str | None = None,
        *,
        user: str | None = None,
    ) -> dict[str, Any]:
        """``instance_update_item`` by item id (compare-and-set when ``item_value_old`` is given).

        :raises WuxingError: ``ERR_ITEM_IS_NOT_FOUND``, ``ERR_ITEM_TYPE_*``, ``ERR_INSTANCE_IS_NOT_VALID``,
            ``ERR_ITEM_VALUE_INVALID``, ``ERR_ITEM_UPDATE_FAILED``
        """
        item = self._item_by_id(item_id, item_type, for_update=True)
        if not item.instance.is_valid:
            raise WuxingError(
                stats.ERR_INSTANCE_IS_NOT_VALID, f"instance {item.instance.instance_name} is switched off"
            )
        return self.update_value(item, item_value, item_value_old, user)

    @reads
    def item_list(
        self,
        namespace: str | None = None,
        section_name: str | None = None,
        instance_name: str | None = None,
        item_name: str | None = None,
        item_value_operator: str | None = None,
        item_value: Any = None,
        start_time: str | None = None,
        end_time: str | None = None,
        sort: str | None = None,
        page_index: int = 1,
        page_size: int = DEFAULT_PAGE_SIZE,
        *,
        values_of_secrets: bool = True,
    ) -> dict[str, Any]:
        """Search items across instances.

        :param item_value_operator: ``=`` (default), ``!=``, ``<``, ``<=``, ``>``, ``>=``;
            text, json and bool items compare for (in)equality only
        :param item_value: compared, per item, after conversion to the item's type
        :param start_time: ``u_time >=`` this (``YYYYmmddHHMMSS``)
        :param end_time: ``u_time <=`` this
        :param sort: ``item_value`` (needs one ``item_name`` of one type), ``instance_name``,
            ``item_name``, ``u_time``, ``c_time``, ``item_id``; ``-`` prefix = descending
        :param values_of_secrets: ``False`` for readers who may not see secret values: a
            value filter or a sort by value then leaves secret-looking items out, so
            neither can be used to guess a secret one comparison at a time
        :return: ``{"total", "list": [{item_id, namespace, section_name, section_version,
            instance_name, item_name, item_type, item_value, user, c_time, u_time}]}``
        :raises WuxingError: ``ERR_ITEM_VALUE_OPERATOR``, ``ERR_TIME_FORMATE_INVALID``,
            ``ERR_ITEM_VALUE_INVALID``, ``ERR_SORT_INVALID``, ``ERR_BAD_PARAMS`` (page)
        """
        page_index, page_size = self.check_page(page_index, page_size)
        operator = None
        if item_value_operator not in (None, "") or item_value is not None:
            operator = OPERATORS.get(item_value_operator or "=")
            if operator is None:
                raise WuxingError(
                    stats.ERR_ITEM_VALUE_OPERATOR,
                    f"operator {item_value_operator!r}: use one of {', '.join(sorted(set(OPERATORS)))}",
                )
            if item_value is None:
                raise WuxingError(stats.ERR_ITEM_VALUE_OPERATOR, "item_value_operator needs an item_value")
        start, end = parse_time(start_time, "start_time"), parse_time(end_time, "end_time")
        sort = sort or "item_id"
        key, descending = sort.lstrip("-"), sort.startswith("-")
        if (key not in ITEM_ORDERS and key != "item_value") or sort.count("-") > 1:
            raise WuxingError(
                stats.ERR_SORT_INVALID,
                f"sort {sort!r}: use one of item_value, {', '.join(sorted(ITEM_ORDERS))}; '-' prefix = descending",
            )

        query = select(i for i in self.Item)
        if namespace:
            query = query.filter(lambda i: i.instance.namespace == namespace)
        if section_name:
            query = query.filter(lambda i: i.instance.section.section_name == section_name)
        if instance_name:
            query = query.filter(lambda i: i.instance.instance_name == instance_name)
        if item_name:
            query = query.filter(lambda i: i.item_name == item_name)
        if start is not None:
            query = query.filter(lambda i: i.u_time >= start)
        if end is not None:
            query = query.filter(lambda i: i.u_time <= end)
        if not values_of_secrets and (operator is not None or key == "item_value"):
            hidden = [name for name in select(i.item_name for i in self.Item).distinct() if is_secret_name(name)]
            if hidden:
                query = query.filter(lambda i: i.item_name not in hidden)
        types: list[str] = []
        if operator is not None or key == "item_value":
            types = sorted(set(select(i.item_type for i in query)))
        if operator is not None:
            query = self._value_filter(query, types, operator, item_value)
        if key == "item_value":
            if not item_name or len(types) != 1:
                raise WuxingError(stats.ERR_SORT_INVALID, "sort by item_value needs item_name naming items of one type")
            order_sql = f"i.{COLUMNS[types[0]]}" + (" DESC" if descending else "")
            query = query.order_by(lambda i: (raw_sql(order_sql), i.id))
        else:
            query = query.order_by(ITEM_ORDERS[key][1 if descending else 0])
        total = query.count()
        return {"total": total, "list": [self.item_row(item) for item in query.page(page_index, page_size)]}

    @reads
    def item_history_list(
        self,
        item_id: int,
        item_type: str | None = None,
        page_index: int = 1,
        page_size: int = DEFAULT_PAGE_SIZE,
        order: str = "desc",
    ) -> dict[str, Any]:
        """The change history of one item (kept after the item is deleted).

        :param item_type: optional; when given it must be the item's type
        :param order: ``desc`` (newest first, default) or ``asc``
        :return: ``{"total", "list": [{id, item_id, namespace, instance_name, item_name,
            item_type, cmd, old_value, new_value, item_value, user, c_time}]}``
        :raises WuxingError: ``ERR_ITEM_IS_NOT_FOUND`` (no item and no history),
            ``ERR_ITEM_TYPE_NOT_FOUND``, ``ERR_ITEM_TYPE_MISMATCH``, ``ERR_BAD_PARAMS``
        """
        page_index, page_size = self.check_page(page_index, page_size)
        if order not in ("asc", "desc"):
            raise bad_param("order", f"expected asc or desc, got {order!r}")
        query = select(h for h in self.History if h.item_id == item_id)
        item = self.Item.get(id=item_id) if 0 < item_id <= MAX_ID else None
        if item is not None:
            actual = item.item_type
        else:
            latest = query.order_by(lambda h: desc(h.id)).first()
            if latest is None:
                raise WuxingError(stats.ERR_ITEM_IS_NOT_FOUND, f"no item and no history with id {item_id}")
            actual = latest.item_type
        self._check_claimed_type(actual, item_type)
        total = query.count()
        query = query.order_by(lambda h: desc(h.id)) if order == "desc" else query.order_by(lambda h: h.id)
        return {"total": total, "list": [self.history_row(h) for h in query.page(page_index, page_size)]}

    @staticmethod
    def _value_filter(query: Any, types: list[str], operator: str, item_value: Any) -> Any:
        """Keep items whose value, compared as their own type, matches."""
        clauses, values = [], {}
        for item_type in types:
            if item_type in EQUALITY_ONLY and operator not in ("=", "<>"):
                continue
            try:
                values[item_type] = to_column(item_type, parse_value(item_type, item_value))
            except WuxingError:
                continue
            # NOTE: only whitelisted names reach the SQL text; the value is a bound parameter.
            clauses.append(
                f"(i.item_type = '{item_type}' AND i.{COLUMNS[item_type]} {operator} ${VALUE_PARAMS[item_type]})"
            )
        if types and not clauses:
            raise WuxingError(
                stats.ERR_ITEM_VALUE_INVALID,
                f"item_value {item_value!r} with operator {operator} fits none of the item types ({', '.join(types)})",
            )
        if not clauses:
            return query
        condition = "(" + " OR ".join(clauses) + ")"  # NOTE: pony pastes raw SQL unparenthesised
        # NOTE: pony reads these locals by name for the $value_<type> parameters.
        value_int, value_float, value_bool = values.get("int"), values.get("float"), values.get("bool")  # noqa: F841
        value_string, value_text, value_json = values.get("string"), values.get("text"), values.get("json")  # noqa: F841
        return query.filter(lambda i: raw_sql(condition))
