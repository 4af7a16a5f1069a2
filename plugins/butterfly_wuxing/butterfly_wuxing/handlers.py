"""HTTP endpoints under ``/wuxing/`` (served by the router through
``butterfly_router_handler_packages``).

Names, parameters and stats follow the original wuxing; replies are
``{"stat": "OK", "data": ...}`` or ``{"stat": "ERR_...", "reason": "..."}`` (also in
``x-reason``). Reads are open; writes are admin routes (loopback only without
butterfly-auth) and POST-only, so a browser cannot be tricked into one by a link.
The user recorded in the history is ``req.user`` — the authenticated identity.
"""

from __future__ import annotations

from typing import Any, Literal

from butterfly_router import api
from butterfly_wuxing import stats
from butterfly_wuxing.api import wuxing_of
from butterfly_wuxing.errors import WuxingError

WRITE = {"admin": True, "methods": ("POST",)}


def _reply(req, method: str, *args: Any, **kwargs: Any):
    """Call ``Wuxing.<method>`` and shape the reply (not a route: not ``req``-first by name)."""
    try:
        data = getattr(wuxing_of(req.kernel), method)(*args, **kwargs)
    except WuxingError as exc:
        return exc.stat, {"reason": exc.reason, **exc.data}, [("x-reason", exc.reason)]
    if isinstance(data, dict) and "total" in data and "list" in data:
        req.res.append(f"total_count:{data['total']}")
    return stats.OK, {"data": data}


# -- sections -------------------------------------------------------------------------------


@api(**WRITE)
def section_create(req, namespace: str, section_name: str, section_version: str):
    """Create an empty section template (enable it after adding items)."""
    return _reply(req, "section_create", namespace, section_name, section_version, user=req.user)


@api(**WRITE)
def section_item_add(
    req,
    namespace: str,
    section_name: str,
    section_version: str,
    item_name: str,
    item_default: Any = None,
    item_description: str = "",
    item_type: str | None = None,
):
    """Add a typed item (``item_type`` or the name prefix ``i|f|b|s|t|j``) to a section not yet enabled."""
    return _reply(
        req,
        "section_item_add",
        namespace,
        section_name,
        section_version,
        item_name,
        item_default,
        item_description,
        item_type,
        user=req.user,
    )


@api(**WRITE)
def section_item_delete(req, namespace: str, section_name: str, section_version: str, item_name: str):
    """Remove an item from a section not yet enabled."""
    return _reply(req, "section_item_delete", namespace, section_name, section_version, item_name, user=req.user)


@api
def section_get(req, namespace: str, section_name: str, section_version: str):
    """A section's template (``{item: {item_type, item_default, item_description}}``) and state."""
    return _reply(req, "section_get", namespace, section_name, section_version)


@api(**WRITE)
def section_enable(req, namespace: str, section_name: str, section_version: str):
    """Freeze a section's template and allow instances of it."""
    return _reply(req, "section_enable", namespace, section_name, section_version, user=req.user)


@api(**WRITE)
def section_delete(req, namespace: str, section_name: str, section_version: str):
    """Delete a section no instance uses."""
    return _reply(req, "section_delete", namespace, section_name, section_version, user=req.user)


@api
def section_list(req, namespace: str | None = None, page_index: int = 1, page_size: int = 10):
    """Sections, newest change first."""
    return _reply(req, "section_list", namespace, page_index, page_size)


# -- instances ------------------------------------------------------------------------------


@api(**WRITE)
def instance_create(
    req, namespace: str, instance_name: str, section_name: str, section_version: str, items_data: dict | None = None
):
    """Create an instance with all its items (``items_data`` overrides defaults), in one transaction."""
    return _reply(
        req, "instance_create", namespace, instance_name, section_name, section_version, items_data, user=req.user
    )


@api
def instance_get(
    req,
    namespace: str,
    instance_name: str,
    items: str | None = None,
    value_format: Literal["simple", "detail"] = "simple",
):
    """An instance's values (``items="a,b"`` to pick some)."""
    return _reply(req, "instance_get", namespace, instance_name, items, value_format)


@api
def instance_list(
    req,
    namespace: str,
    section_name: str,
    instance_name: str | None = None,
    section_version: str | None = None,
    section_md5: str | None = None,
    extra_items: str | None = None,
    sort: str | None = None,
    page_index: int = 1,
    page_size: int = 10,
):
    """Instances of a section (filters, ``extra_items`` values, sort, pagination)."""
    return _reply(
        req,
        "instance_list",
        namespace,
        section_name,
        instance_name,
        section_version,
        section_md5,
        extra_items,
        sort,
        page_index,
        page_size,
    )


@api(**WRITE)
def instance_update_item(
    req, namespace: str, instance_name: str, item_name: str, item_value: Any, item_value_old: Any = None
):
    """Set an item; with ``item_value_old`` only if it still has that value (compare-and-set)."""
    return _reply(
        req, "instance_update_item", namespace, instance_name, item_name, item_value, item_value_old, user=req.user
    )


@api(**WRITE)
def instance_update_section(req, namespace: str, instance_name: str, section_version: str):
    """Move an instance to another enabled version of its section."""
    return _reply(req, "instance_update_section", namespace, instance_name, section_version, user=req.user)


@api(**WRITE)
def instance_set_valid(req, namespace: str, instance_name: str, is_valid: bool):
    """Switch an instance off (reads and updates refused with ERR_INSTANCE_IS_NOT_VALID) or on."""
    return _reply(req, "instance_set_valid", namespace, instance_name, is_valid, user=req.user)


@api(**WRITE)
def instance_delete(req, namespace: str, instance_name: str):
    """Delete an instance and its items (their history stays)."""
    return _reply(req, "instance_delete", namespace, instance_name, user=req.user)


# -- items ----------------------------------------------------------------------------------


@api
def item_get(req, item_id: int, item_type: str | None = None):
    """One item by id (``item_type``, if sent, must match)."""
    return _reply(req, "item_get", item_id, item_type)


@api(**WRITE)
def item_update(req, item_id: int, item_value: Any, item_value_old: Any = None, item_type: str | None = None):
    """Set an item by id (compare-and-set with ``item_value_old``)."""
    return _reply(req, "item_update", item_id, item_value, item_value_old, item_type, user=req.user)


@api
def item_list(
    req,
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
    page_size: int = 10,
):
    """Search items by names, value (``item_value_operator``) and ``u_time`` range."""
    return _reply(
        req,
        "item_list",
        namespace,
        section_name,
        instance_name,
        item_name,
        item_value_operator,
        item_value,
        start_time,
        end_time,
        sort,
        page_index,
        page_size,
    )


@api
def item_history_list(
    req,
    item_id: int,
    item_type: str | None = None,
    page_index: int = 1,
    page_size: int = 10,
    order: Literal["asc", "desc"] = "desc",
):
    """An item's change history: who, when, old and new value."""
    return _reply(req, "item_history_list", item_id, item_type, page_index, page_size, order)
