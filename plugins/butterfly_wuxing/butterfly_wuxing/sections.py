"""Sections: versioned templates of typed items (``section_*`` endpoints)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pony.orm import count, desc, select

from butterfly_wuxing import stats
from butterfly_wuxing.base import DEFAULT_PAGE_SIZE, WuxingBase, names_something, reads, writes
from butterfly_wuxing.errors import WuxingError
from butterfly_wuxing.values import ZERO_VALUES, check_name, encode_json, format_time, parse_value, resolve_item_type

#: The most items one section template may hold.
MAX_SECTION_ITEMS = 256
DESCRIPTION_MAX = 512


def template_md5(template: dict[str, dict[str, Any]]) -> str:
    """First 8 hex digits of the md5 of the canonical template (as the original)."""
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.md5(canonical.encode("utf-8"), usedforsecurity=False).hexdigest()[:8]


class SectionOps(WuxingBase):
    """``section_create``, ``section_item_add``/``_delete``, ``section_get``/``_enable``/``_delete``/``_list``."""

    # -- helpers -------------------------------------------------------------------------

    def find_section(self, namespace: str, section_name: str, section_version: str) -> Any:
        """The section row.

        :raises WuxingError: ``ERR_SECTION_IS_NOT_EXIST`` (also for blank names, which name nothing)
        """
        keys = (namespace, section_name, section_version)
        # NOTE: pony strips key text and refuses an empty key with a ValueError.
        section = (
            self.Section.get(namespace=namespace, section_name=section_name, section_version=section_version)
            if names_something(*keys)
            else None
        )
        if section is None:
            raise WuxingError(
                stats.ERR_SECTION_IS_NOT_EXIST, f"no section {namespace}/{section_name}@{section_version}"
            )
        return section

    def template_of(self, section: Any) -> dict[str, dict[str, Any]]:
        """``{item_name: {item_type, item_default, item_description}}`` in creation order."""
        rows = select(s for s in self.SectionItem if s.section == section).order_by(lambda s: s.id)
        return {
            row.item_name: {
                "item_type": row.item_type,
                "item_default": None if row.item_default is None else json.loads(row.item_default),
                "item_description": row.item_description,
            }
            for row in rows
        }

    def _refresh_md5(self, section: Any, template: dict[str, dict[str, Any]], user: str | None) -> None:
        section.section_md5 = template_md5(template)
        section.user = user
        section.u_time = self.timestamp()

    def _editable(self, namespace: str, section_name: str, section_version: str) -> Any:
        section = self.find_section(namespace, section_name, section_version)
        if section.is_enabled:
            raise WuxingError(
                stats.ERR_SECTION_IS_ENABLED, "an enabled section is frozen; create a new section_version instead"
            )
        return section

    # -- API ---------------------------------------------------------------------------

    @writes(stats.ERR_SECTION_IS_EXIST)
    def section_create(
        self, namespace: str, section_name: str, section_version: str, *, user: str | None = None
    ) -> dict[str, Any]:
        """Create an empty, not yet enabled section.

        :return: ``{}``
        :raises WuxingError: ``ERR_NAMESPACE_IS_INVALID``, ``ERR_SECTION_NAME_IS_INVALID``,
            ``ERR_SECTION_VERSION_IS_INVALID``, ``ERR_SECTION_IS_EXIST``
        """
        check_name("namespace", namespace)
        check_name("section_name", section_name)
        check_name("section_version", section_version)
        if self.Section.exists(namespace=namespace, section_name=section_name, section_version=section_version):
            raise WuxingError(
                stats.ERR_SECTION_IS_EXIST, f"section {namespace}/{section_name}@{section_version} exists"
            )
        when = self.timestamp()
        self.Section(
            namespace=namespace,
            section_name=section_name,
            section_version=section_version,
            section_md5=template_md5({}),
            user=user,
            c_time=when,
            u_time=when,
        )
        return {}

    @writes(stats.ERR_SECTION_ITEM_ADD_FAILED)
    def section_item_add(
        self,
        namespace: str,
        section_name: str,
        section_version: str,
        item_name: str,
        item_default: Any = None,
        item_description: str = "",
        item_type: str | None = None,
        *,
        user: str | None = None,
    ) -> dict[str, Any]:
        """Add a typed item to a section that is not enabled yet.

        The type is ``item_type`` or the original's name prefix (``i|`` int, ``f|``
        float, ``b|`` bool, ``s|`` string, ``t|`` text, ``j|`` json).

        :param item_default: checked against the type; ``None`` = the type's zero value
        :return: ``{"item_type": ..., "item_default": ...}``
        :raises WuxingError: ``ERR_ITEM_NAME_IS_INVALID``, ``ERR_SECTION_ITEM_TYPE_INVALID``,
            ``ERR_ITEM_VALUE_INVALID``, ``ERR_SECTION_IS_NOT_EXIST``, ``ERR_SECTION_IS_ENABLED``,
            ``ERR_SECTION_ITEM_IS_EXIST``, ``ERR_SECTION_ITEM_ADD_FAILED`` (template full, or a
            concurrent change to the section)
        """
        check_name("item_name", item_name)
        resolved = resolve_item_type(item_name, item_type)
        default = ZERO_VALUES[resolved] if item_default is None else parse_value(resolved, item_default)
        description = "" if item_description is None else str(item_description)
        if len(description) > DESCRIPTION_MAX:
            raise WuxingError(
                stats.ERR_SECTION_ITEM_ADD_FAILED, f"item_description holds at most {DESCRIPTION_MAX} characters"
            )
        section = self._editable(namespace, section_name, section_version)
        template = self.template_of(section)
        if item_name in template:
            raise WuxingError(stats.ERR_SECTION_ITEM_IS_EXIST, f"item {item_name!r} is already in the section")
        if len(template) >= MAX_SECTION_ITEMS:
            raise WuxingError(stats.ERR_SECTION_ITEM_ADD_FAILED, f"a section holds at most {MAX_SECTION_ITEMS} items")
        self.SectionItem(
            section=section,
            item_name=item_name,
            item_type=resolved,
            item_default=encode_json(default),
            item_description=description,
        )
        template[item_name] = {"item_type": resolved, "item_default": default, "item_description": description}
        self._refresh_md5(section, template, user)
        return {"item_type": resolved, "item_default": default}

    @writes(stats.ERR_SECTION_ITEM_DELETE_FAILED)
    def section_item_delete(
        self, namespace: str, section_name: str, section_version: str, item_name: str, *, user: str | None = None
    ) -> dict[str, Any]:
        """Remove an item from a section that is not enabled yet.

        :raises WuxingError: ``ERR_SECTION_IS_NOT_EXIST``, ``ERR_SECTION_IS_ENABLED``,
            ``ERR_SECTION_ITEM_IS_NOT_EXIST``, ``ERR_SECTION_ITEM_DELETE_FAILED`` (a concurrent
            change to the section)
        """
        section = self._editable(namespace, section_name, section_version)
        row = self.SectionItem.get(section=section, item_name=item_name)
        if row is None:
            raise WuxingError(stats.ERR_SECTION_ITEM_IS_NOT_EXIST, f"no item {item_name!r} in the section")
        row.delete()
        template = self.template_of(section)
        template.pop(item_name, None)
        self._refresh_md5(section, template, user)
        return {}

    @reads
    def section_get(self, namespace: str, section_name: str, section_version: str) -> dict[str, Any]:
        """The section's template and state.

        :return: ``{"section_template": {...}, "is_enabled", "section_md5", "u_time"}``
        :raises WuxingError: ``ERR_SECTION_IS_NOT_EXIST``
        """
        section = self.find_section(namespace, section_name, section_version)
        return {
            "section_template": self.template_of(section),
            "is_enabled": section.is_enabled,
            "section_md5": section.section_md5,
            "user": section.user,
            "c_time": format_time(section.c_time),
            "u_time": format_time(section.u_time),
        }

    @writes(stats.ERR_SECTION_ENABLE_FAILED)
    def section_enable(
        self, namespace: str, section_name: str, section_version: str, *, user: str | None = None
    ) -> dict[str, Any]:
        """Freeze the template and allow instances of it (idempotent).

        :raises WuxingError: ``ERR_SECTION_IS_NOT_EXIST``, ``ERR_SECTION_ENABLE_FAILED``
            (a section without items)
        """
        section = self.find_section(namespace, section_name, section_version)
        if not section.is_enabled:
            template = self.template_of(section)
            if not template:
                raise WuxingError(stats.ERR_SECTION_ENABLE_FAILED, "a section without items cannot be enabled")
            section.is_enabled = True
            self._refresh_md5(section, template, user)
        return {"section_md5": section.section_md5}

    @writes(stats.ERR_SECTION_DELETE_FAILED)
    def section_delete(
        self, namespace: str, section_name: str, section_version: str, *, user: str | None = None
    ) -> dict[str, Any]:
        """Delete a section and its template; refused while instances use it.

        :raises WuxingError: ``ERR_SECTION_IS_NOT_EXIST``, ``ERR_SECTION_DELETE_FAILED``
        """
        section = self.find_section(namespace, section_name, section_version)
        in_use = count(i for i in self.Instance if i.section == section)
        if in_use:
            raise WuxingError(
                stats.ERR_SECTION_DELETE_FAILED,
                f"{in_use} instance(s) still use this section; delete or upgrade them first",
            )
        section.delete()
        return {}

    @reads
    def section_list(
        self, namespace: str | None = None, page_index: int = 1, page_size: int = DEFAULT_PAGE_SIZE
    ) -> dict[str, Any]:
        """Sections, newest change first, optionally of one namespace.

        :return: ``{"total": N, "list": [{namespace, section_name, section_version,
            section_md5, is_enabled, u_time}]}``
        :raises WuxingError: ``ERR_BAD_PARAMS`` (page)
        """
        page_index, page_size = self.check_page(page_index, page_size)
        query = select(s for s in self.Section)
        if namespace:
            query = query.filter(lambda s: s.namespace == namespace)
        total = query.count()
        rows = query.order_by(lambda s: (desc(s.u_time), desc(s.id))).page(page_index, page_size)
        return {
            "total": total,
            "list": [
                {
                    "namespace": s.namespace,
                    "section_name": s.section_name,
                    "section_version": s.section_version,
                    "section_md5": s.section_md5,
                    "is_enabled": s.is_enabled,
                    "user": s.user,
                    "u_time": format_time(s.u_time),
                }
                for s in rows
            ],
        }
