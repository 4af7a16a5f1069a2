"""Changes to existing instances: item updates, section upgrades, validity, deletion."""

from __future__ import annotations

from typing import Any

from butterfly_wuxing import stats
from butterfly_wuxing.base import writes
from butterfly_wuxing.errors import WuxingError
from butterfly_wuxing.instances import InstanceOps
from butterfly_wuxing.values import carry_value


class ChangeOps(InstanceOps):
    """``instance_update_item``, ``instance_update_section``, ``instance_set_valid``, ``instance_delete``."""

    @writes(stats.ERR_ITEM_UPDATE_FAILED)
    def instance_update_item(
        self,
        namespace: str,
        instance_name: str,
        item_name: str,
        item_value: Any,
        item_value_old: Any = None,
        *,
        user: str | None = None,
    ) -> dict[str, Any]:
        """Set one item's value, optionally only if it still equals ``item_value_old``.

        The item row is locked (``SELECT ... FOR UPDATE``; SQLite: the write lock)
        before its value is compared, so concurrent compare-and-sets never lose an
        update: exactly one of two callers that saw the same value succeeds.

        :param item_value: the new value, checked against the item's type
        :param item_value_old: ``None``: set unconditionally; else the expected current value
        :return: ``{"item_id", "item_value", "old_value"}``
        :raises WuxingError: ``ERR_INSTANCE_IS_NOT_EXIST``, ``ERR_INSTANCE_IS_NOT_VALID``,
            ``ERR_ITEM_IS_NOT_EXIST``, ``ERR_ITEM_VALUE_INVALID``, ``ERR_ITEM_UPDATE_FAILED``
        """
        instance = self.find_instance(namespace, instance_name)
        item = self.Item.get_for_update(instance=instance, item_name=item_name)
        if item is None:
            raise WuxingError(stats.ERR_ITEM_IS_NOT_EXIST, f"no item {item_name!r} in {namespace}/{instance_name}")
        return self.update_value(item, item_value, item_value_old, user)

    @writes(stats.ERR_INSTANCE_UPDATE_FAILED)
    def instance_update_section(
        self, namespace: str, instance_name: str, section_version: str, *, user: str | None = None
    ) -> dict[str, Any]:
        """Move an instance to another enabled version of its section, in one transaction.

        New items get their default, removed items are deleted, items whose type
        changed keep their value when it fits the new type (else the default);
        every change is recorded in the history (``create``/``delete``/``upgrade``).

        :return: ``{"added": [...], "removed": [...], "retyped": [...], "section_version"}``
        :raises WuxingError: ``ERR_INSTANCE_IS_NOT_EXIST``, ``ERR_INSTANCE_IS_NOT_VALID``,
            ``ERR_SECTION_IS_NOT_EXIST``, ``ERR_SECTION_IS_NOT_ENABLED``,
            ``ERR_INSTANCE_UPDATE_FAILED`` (a concurrent change)
        """
        instance = self.find_instance(namespace, instance_name, for_update=True)
        target = self.find_section(namespace, instance.section.section_name, section_version)
        if not target.is_enabled:
            raise WuxingError(stats.ERR_SECTION_IS_NOT_ENABLED, f"section version {section_version} is not enabled")
        changes: dict[str, Any] = {"added": [], "removed": [], "retyped": [], "section_version": section_version}
        if target == instance.section:
            return changes
        template = self.template_of(target)
        rows = self.items_of(instance)
        when = self.timestamp()
        for name, row in rows.items():
            if name not in template:
                self.record(row, "delete", self.value_of(row), None, user, when, missing_new=True)
                row.delete()
                changes["removed"].append(name)
        for name, spec in template.items():
            row = rows.get(name)
            if row is None:
                row = self.Item(
                    instance=instance, item_name=name, item_type=spec["item_type"], user=user, c_time=when, u_time=when
                )
                self.set_value(row, spec["item_default"], user, when)
                self.record(row, "create", None, spec["item_default"], user, when, missing_old=True)
                changes["added"].append(name)
            elif row.item_type != spec["item_type"]:
                old = self.value_of(row)
                try:
                    new = carry_value(old, spec["item_type"])
                except WuxingError:
                    new = spec["item_default"]
                self.record(row, "upgrade", old, new, user, when)
                row.item_type = spec["item_type"]
                self.set_value(row, new, user, when)
                changes["retyped"].append(name)
        instance.section = target
        instance.section_md5 = target.section_md5
        instance.user = user
        instance.u_time = when
        return changes

    @writes(stats.ERR_INSTANCE_UPDATE_FAILED)
    def instance_set_valid(
        self, namespace: str, instance_name: str, is_valid: bool, *, user: str | None = None
    ) -> dict[str, Any]:
        """Switch an instance off (reads and updates refused) or back on.

        :raises WuxingError: ``ERR_INSTANCE_IS_NOT_EXIST``
        """
        instance = self.find_instance(namespace, instance_name, for_update=True, must_be_valid=False)
        if instance.is_valid != bool(is_valid):
            instance.is_valid = bool(is_valid)
            instance.user = user
            instance.u_time = self.timestamp()
        return {"is_valid": instance.is_valid}

    @writes(stats.ERR_INSTANCE_DELETE_FAILED)
    def instance_delete(self, namespace: str, instance_name: str, *, user: str | None = None) -> dict[str, Any]:
        """Delete an instance and all its items in one transaction (history keeps a ``delete`` row each).

        :raises WuxingError: ``ERR_INSTANCE_IS_NOT_EXIST``, ``ERR_INSTANCE_DELETE_FAILED``
        """
        instance = self.find_instance(namespace, instance_name, for_update=True, must_be_valid=False)
        when = self.timestamp()
        for row in self.items_of(instance).values():
            self.record(row, "delete", self.value_of(row), None, user, when, missing_new=True)
        instance.delete()
        return {}
