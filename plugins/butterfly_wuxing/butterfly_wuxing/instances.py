"""Instances of sections and their items (``instance_*`` endpoints)."""

from __future__ import annotations

from typing import Any

from pony.orm import desc, select

from butterfly_wuxing import stats
from butterfly_wuxing.base import DEFAULT_PAGE_SIZE, bad_param, names_something, reads, split_names, writes
from butterfly_wuxing.errors import WuxingError
from butterfly_wuxing.sections import SectionOps
from butterfly_wuxing.values import check_name, format_time, parse_value

#: sort key → (ascending, descending) pony order expressions
INSTANCE_ORDERS = {
    "instance_name": (lambda i: i.instance_name, lambda i: desc(i.instance_name)),
    "u_time": (lambda i: (i.u_time, i.id), lambda i: (desc(i.u_time), desc(i.id))),
    "c_time": (lambda i: (i.c_time, i.id), lambda i: (desc(i.c_time), desc(i.id))),
}
INSTANCE_SORTS = set(INSTANCE_ORDERS)
VALUE_FORMATS = ("simple", "detail")


class InstanceOps(SectionOps):
    """``instance_create``/``_get``/``_list``/``_update_item``/``_update_section``/``_delete``/``_set_valid``."""

    # -- helpers -------------------------------------------------------------------------

    def find_instance(
        self, namespace: str, instance_name: str, *, for_update: bool = False, must_be_valid: bool = True
    ) -> Any:
        """The instance row.

        :param for_update: lock the row (``SELECT ... FOR UPDATE``) until the transaction ends
        :param must_be_valid: refuse instances switched off with ``instance_set_valid``
        :raises WuxingError: ``ERR_INSTANCE_IS_NOT_EXIST`` (also for blank names), ``ERR_INSTANCE_IS_NOT_VALID``
        """
        getter = self.Instance.get_for_update if for_update else self.Instance.get
        found = names_something(namespace, instance_name)
        instance = getter(namespace=namespace, instance_name=instance_name) if found else None
        if instance is None:
            raise WuxingError(stats.ERR_INSTANCE_IS_NOT_EXIST, f"no instance {namespace}/{instance_name}")
        if must_be_valid and not instance.is_valid:
            raise WuxingError(
                stats.ERR_INSTANCE_IS_NOT_VALID,
                f"instance {namespace}/{instance_name} is switched off (instance_set_valid)",
            )
        return instance

    def items_of(self, instance: Any) -> dict[str, Any]:
        """``{item_name: item row}`` of an instance, in creation order."""
        rows = select(i for i in self.Item if i.instance == instance).order_by(lambda i: i.id)
        return {row.item_name: row for row in rows}

    def update_value(self, item: Any, item_value: Any, item_value_old: Any, user: str | None) -> dict[str, Any]:
        """Compare-and-set one (locked) item and record the change.

        :param item_value_old: ``None``: set unconditionally; otherwise the value the
            caller last saw — a different current value refuses the update
        :return: ``{"item_id", "item_value", "old_value"}``
        :raises WuxingError: ``ERR_ITEM_VALUE_INVALID``, ``ERR_ITEM_UPDATE_FAILED``
            (compare-and-set mismatch; ``item_value`` in the reply is the current value)
        """
        new = parse_value(item.item_type, item_value)
        current = self.value_of(item)
        if item_value_old is not None:
            expected = parse_value(item.item_type, item_value_old)
            if expected != current:
                raise WuxingError(
                    stats.ERR_ITEM_UPDATE_FAILED,
                    f"compare-and-set failed: {item.item_name} is no longer {expected!r}",
                    {"item_id": item.id, "item_value": current},
                )
        when = self.timestamp()
        self.set_value(item, new, user, when)
        item.instance.u_time = when
        self.record(item, "update", current, new, user, when)
        return {"item_id": item.id, "item_value": new, "old_value": current}

    # -- API ---------------------------------------------------------------------------

    @writes(stats.ERR_INSTANCE_IS_EXIST)
    def instance_create(
        self,
        namespace: str,
        instance_name: str,
        section_name: str,
        section_version: str,
        items_data: dict[str, Any] | None = None,
        *,
        user: str | None = None,
    ) -> dict[str, Any]:
        """Create an instance of an enabled section with all its items, in one transaction.

        :param items_data: ``{item_name: value}``; missing or ``None`` values take the default
        :return: ``{item_name: value}`` as created
        :raises WuxingError: ``ERR_NAMESPACE_IS_INVALID``, ``ERR_INSTANCE_NAME_IS_INVALID``,
            ``ERR_SECTION_IS_NOT_EXIST``, ``ERR_SECTION_IS_NOT_ENABLED``, ``ERR_INSTANCE_IS_EXIST``,
            ``ERR_ITEM_IS_NOT_EXIST`` (unknown key), ``ERR_ITEM_VALUE_INVALID``
        """
        check_name("namespace", namespace)
        check_name("instance_name", instance_name)
        if items_data is None:
            items_data = {}
        if not isinstance(items_data, dict):
            raise WuxingError(stats.ERR_ITEM_VALUE_INVALID, "items_data must be a JSON object {item_name: value}")
        section = self.find_section(namespace, section_name, section_version)
        if not section.is_enabled:
            raise WuxingError(stats.ERR_SECTION_IS_NOT_ENABLED, "enable the section (section_enable) first")
        if self.Instance.exists(namespace=namespace, instance_name=instance_name):
            raise WuxingError(stats.ERR_INSTANCE_IS_EXIST, f"instance {namespace}/{instance_name} exists")
        template = self.template_of(section)
        unknown = sorted(set(items_data) - set(template))
        if unknown:
            raise WuxingError(
                stats.ERR_ITEM_IS_NOT_EXIST,
                f"items not in section {section_name}@{section_version}: {', '.join(unknown)}",
            )
        values = {}
        for name, spec in template.items():
            given = items_data.get(name)
            try:
                values[name] = spec["item_default"] if given is None else parse_value(spec["item_type"], given)
            except WuxingError as exc:
                raise WuxingError(exc.stat, f"{name}: {exc.reason}") from None
        when = self.timestamp()
        instance = self.Instance(
            namespace=namespace,
            instance_name=instance_name,
            section=section,
            section_md5=section.section_md5,
            user=user,
            c_time=when,
            u_time=when,
        )
        for name, spec in template.items():
            item = self.Item(
                instance=instance, item_name=name, item_type=spec["item_type"], user=user, c_time=when, u_time=when
            )
            self.set_value(item, values[name], user, when)
            self.record(item, "create", None, values[name], user, when, missing_old=True)
        return {"items": values}

    @reads
    def instance_get(
        self, namespace: str, instance_name: str, items: Any = None, value_format: str = "simple"
    ) -> dict[str, Any]:
        """An instance's item values.

        :param items: item names (``"a,b"`` or a list); ``None`` = all
        :param value_format: ``simple`` → ``{name: value}``; ``detail`` →
            ``{name: {item_id, item_name, item_type, item_description, item_value, user, u_time}}``
        :raises WuxingError: ``ERR_INSTANCE_IS_NOT_EXIST``, ``ERR_INSTANCE_IS_NOT_VALID``,
            ``ERR_ITEM_IS_NOT_EXIST``, ``ERR_BAD_PARAMS`` (value_format)
        """
        if value_format not in VALUE_FORMATS:
            raise bad_param("value_format", f"expected one of {', '.join(VALUE_FORMATS)}, got {value_format!r}")
        instance = self.find_instance(namespace, instance_name)
        rows = self.items_of(instance)
        wanted = split_names(items)
        if wanted is not None:
            missing = [name for name in wanted if name not in rows]
            if missing:
                raise WuxingError(stats.ERR_ITEM_IS_NOT_EXIST, f"no items {', '.join(missing)} in {instance_name}")
            rows = {name: rows[name] for name in wanted}
        if value_format == "simple":
            return {name: self.value_of(row) for name, row in rows.items()}
        template = self.template_of(instance.section)
        return {
            name: {
                "item_id": row.id,
                "item_name": name,
                "item_type": row.item_type,
                "item_description": template.get(name, {}).get("item_description", ""),
                "item_value": self.value_of(row),
                "user": row.user,
                "u_time": format_time(row.u_time),
            }
            for name, row in rows.items()
        }

    @reads
    def instance_list(
        self,
        namespace: str,
        section_name: str,
        instance_name: str | None = None,
        section_version: str | None = None,
        section_md5: str | None = None,
        extra_items: Any = None,
        sort: str | None = None,
        page_index: int = 1,
        page_size: int = DEFAULT_PAGE_SIZE,
    ) -> dict[str, Any]:
        """Instances of one section name (any version unless filtered).

        :param instance_name: substring filter
        :param extra_items: item names whose values are added to each row (one query)
        :param sort: ``instance_name``, ``u_time`` or ``c_time``; ``-`` prefix = descending
        :return: ``{"total", "list": [{namespace, instance_name, section_name,
            section_version, section_md5, is_valid, u_time, <extra items>}]}``
        :raises WuxingError: ``ERR_SORT_INVALID``, ``ERR_BAD_PARAMS`` (page)
        """
        page_index, page_size = self.check_page(page_index, page_size)
        sort = sort or "instance_name"
        key = sort.lstrip("-")
        if key not in INSTANCE_SORTS or sort.count("-") > 1:
            raise WuxingError(
                stats.ERR_SORT_INVALID,
                f"sort {sort!r}: use one of {', '.join(sorted(INSTANCE_SORTS))}, '-' prefix = descending",
            )
        query = select(i for i in self.Instance if i.namespace == namespace and i.section.section_name == section_name)
        if instance_name:
            query = query.filter(lambda i: instance_name in i.instance_name)
        if section_version:
            query = query.filter(lambda i: i.section.section_version == section_version)
        if section_md5:
            query = query.filter(lambda i: i.section_md5 == section_md5)
        total = query.count()
        ascending, descending = INSTANCE_ORDERS[key]
        query = query.order_by(descending if sort.startswith("-") else ascending)
        rows = list(query.page(page_index, page_size))
        extra = split_names(extra_items)
        values: dict[tuple[int, str], Any] = {}
        if extra and rows:
            ids = [row.id for row in rows]
            for item in select(it for it in self.Item if it.instance.id in ids and it.item_name in extra):
                values[(item.instance.id, item.item_name)] = self.value_of(item)
        result = []
        for row in rows:
            entry = {name: values.get((row.id, name)) for name in extra or ()}
            entry.update(
                {
                    "namespace": row.namespace,
                    "instance_name": row.instance_name,
                    "section_name": row.section.section_name,
                    "section_version": row.section.section_version,
                    "section_md5": row.section_md5,
                    "is_valid": row.is_valid,
                    "user": row.user,
                    "c_time": format_time(row.c_time),
                    "u_time": format_time(row.u_time),
                }
            )
            result.append(entry)
        return {"total": total, "list": result}
