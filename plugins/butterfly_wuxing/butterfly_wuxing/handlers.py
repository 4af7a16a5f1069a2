"""HTTP endpoints under ``/wuxing/`` (served by the router through
``butterfly_router_handler_packages``).

Names, parameters and stats follow the original wuxing; replies are
``{"stat": "OK", "data": ...}`` or ``{"stat": "ERR_...", "reason": "..."}`` (also in
``x-reason``). Writes are admin routes (loopback only without butterfly-auth) and
POST-only, so a browser cannot be tricked into one by a link. With butterfly-auth
installed, reads need a signed-in user unless ``[wuxing] public_read = true``;
without it they are open, as in the original. Readers without the admin role see
the values of secret-looking items masked (:mod:`butterfly_wuxing.masking`). The
user recorded in the history is ``req.user`` — the authenticated identity.

Key parameters are checked by the router before the store sees them: an empty,
blank (``"\\x0b"``: the store strips names) or over-long name is a 400
``ERR_BAD_PARAMS`` naming the parameter. The largest ``page_size`` is ``[wuxing]
max_page_size``; the OpenAPI document shows it (see the plugin's ``butterfly_configure``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from annotated_types import Interval, MaxLen, MinLen

from butterfly_router import NOT_BLANK, api
from butterfly_wuxing import masking, stats
from butterfly_wuxing.api import SETTINGS_SECTION, wuxing_of
from butterfly_wuxing.base import split_names
from butterfly_wuxing.errors import WuxingError
from butterfly_wuxing.items import MAX_ID
from kernel import Unauthorized
from kernel.defaults import caller_is_admin

WRITE = {"admin": True, "methods": ("POST",)}

# The column sizes of butterfly_wuxing.models: a longer value is refused before any query.
Namespace = Annotated[str, MinLen(1), MaxLen(16), NOT_BLANK]
SectionName = Annotated[str, MinLen(1), MaxLen(64), NOT_BLANK]
SectionVersion = Annotated[str, MinLen(1), MaxLen(16), NOT_BLANK]
InstanceName = Annotated[str, MinLen(1), MaxLen(64), NOT_BLANK]
ItemName = Annotated[str, MinLen(1), MaxLen(64), NOT_BLANK]
ItemId = Annotated[int, Interval(ge=1, le=MAX_ID)]
ItemType = Annotated[str | None, MaxLen(8)]
Names = Annotated[str | None, MaxLen(10_000)]
Sort = Annotated[str | None, MaxLen(32)]
Page = Annotated[int, Interval(ge=1, le=1_000_000)]
PageSize = Annotated[int, Interval(ge=1, le=10_000)]
#: The list routes, whose ``page_size`` ``[wuxing] max_page_size`` narrows.
LIST_PATHS = ("/wuxing/section_list", "/wuxing/instance_list", "/wuxing/item_list", "/wuxing/item_history_list")
#: the authentication challenge of the auth plugin's 401s
CHALLENGE = ("WWW-Authenticate", 'Bearer realm="butterfly"')


def _reply(req, method: str, *args: Any, **kwargs: Any):
    """Call ``Wuxing.<method>`` and shape the reply (not a route: not ``req``-first by name)."""
    try:
        data = getattr(wuxing_of(req.kernel), method)(*args, **kwargs)
    except WuxingError as exc:
        return exc.stat, {"reason": exc.reason, **exc.data}, [("x-reason", exc.reason)]
    if isinstance(data, dict) and "total" in data and "list" in data:
        req.res.append(f"total_count:{data['total']}")
    return stats.OK, {"data": data}


def _write(req, item_name: Any, method: str, *args: Any, **kwargs: Any):
    """:func:`_reply` for a write, keeping secret values of ``item_name`` out of the access log."""
    try:
        return _reply(req, method, *args, **kwargs)
    finally:
        masking.hide_params(req, item_name)


def _reader_sees_secrets(req) -> bool:
    """Let the caller read, or raise 401; tell whether they may see secret values.

    :raises Unauthorized: butterfly-auth is installed, ``[wuxing] public_read`` is
        off and nobody signed in
    """
    if req.source != "http":
        return True  # NOTE: in-process calls (MQ, ruqi, CLI) are trusted code
    auth_installed = req.kernel.extensions.get("auth") is not None
    if auth_installed and req.user is None and not req.kernel.settings.get(SETTINGS_SECTION, "public_read"):
        raise Unauthorized("wuxing reads need a signed-in user ([wuxing] public_read = false)", headers=[CHALLENGE])
    return caller_is_admin(req)


def _read(req, method: str, mask, *args: Any, **kwargs: Any):
    """:func:`_reply` for a read; ``mask(data)`` hides secret values from non-admins."""
    sees_secrets = _reader_sees_secrets(req)
    reply = _reply(req, method, *args, **kwargs)
    if sees_secrets or reply[0] != stats.OK:
        return reply
    return stats.OK, {"data": mask(reply[1]["data"])}


# -- sections -------------------------------------------------------------------------------


@api(**WRITE)
def section_create(req, namespace: Namespace, section_name: SectionName, section_version: SectionVersion):
    """Create an empty section template (enable it after adding items)."""
    return _reply(req, "section_create", namespace, section_name, section_version, user=req.user)


@api(**WRITE)
def section_item_add(
    req,
    namespace: Namespace,
    section_name: SectionName,
    section_version: SectionVersion,
    item_name: ItemName,
    item_default: Any = None,
    item_description: Annotated[str, MaxLen(512)] = "",
    item_type: ItemType = None,
):
    """Add a typed item (``item_type`` or the name prefix ``i|f|b|s|t|j``) to a section not yet enabled."""
    return _write(
        req,
        item_name,
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
def section_item_delete(
    req, namespace: Namespace, section_name: SectionName, section_version: SectionVersion, item_name: ItemName
):
    """Remove an item from a section not yet enabled."""
    return _reply(req, "section_item_delete", namespace, section_name, section_version, item_name, user=req.user)


@api
def section_get(req, namespace: Namespace, section_name: SectionName, section_version: SectionVersion):
    """A section's template (``{item: {item_type, item_default, item_description}}``) and state."""
    return _read(req, "section_get", masking.section, namespace, section_name, section_version)


@api(**WRITE)
def section_enable(req, namespace: Namespace, section_name: SectionName, section_version: SectionVersion):
    """Freeze a section's template and allow instances of it."""
    return _reply(req, "section_enable", namespace, section_name, section_version, user=req.user)


@api(**WRITE)
def section_delete(req, namespace: Namespace, section_name: SectionName, section_version: SectionVersion):
    """Delete a section no instance uses."""
    return _reply(req, "section_delete", namespace, section_name, section_version, user=req.user)


@api
def section_list(
    req, namespace: Annotated[str | None, MaxLen(16)] = None, page_index: Page = 1, page_size: PageSize = 10
):
    """Sections, newest change first."""
    _reader_sees_secrets(req)  # NOTE: no values in this list; only the sign-in check applies
    return _reply(req, "section_list", namespace, page_index, page_size)


# -- instances ------------------------------------------------------------------------------


@api(**WRITE)
def instance_create(
    req,
    namespace: Namespace,
    instance_name: InstanceName,
    section_name: SectionName,
    section_version: SectionVersion,
    items_data: dict | None = None,
):
    """Create an instance with all its items (``items_data`` overrides defaults), in one transaction."""
    return _write(
        req, None, "instance_create", namespace, instance_name, section_name, section_version, items_data, user=req.user
    )


@api
def instance_get(
    req,
    namespace: Namespace,
    instance_name: InstanceName,
    items: Names = None,
    value_format: Literal["simple", "detail"] = "simple",
):
    """An instance's values (``items="a,b"`` to pick some)."""
    return _read(
        req,
        "instance_get",
        lambda data: masking.instance_values(data, value_format),
        namespace,
        instance_name,
        items,
        value_format,
    )


@api
def instance_list(
    req,
    namespace: Namespace,
    section_name: SectionName,
    instance_name: Annotated[str | None, MaxLen(64)] = None,
    section_version: Annotated[str | None, MaxLen(16)] = None,
    section_md5: Annotated[str | None, MaxLen(8)] = None,
    extra_items: Names = None,
    sort: Sort = None,
    page_index: Page = 1,
    page_size: PageSize = 10,
):
    """Instances of a section (filters, ``extra_items`` values, sort, pagination)."""
    return _read(
        req,
        "instance_list",
        lambda data: masking.instance_list(data, split_names(extra_items) or []),
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
    req,
    namespace: Namespace,
    instance_name: InstanceName,
    item_name: ItemName,
    item_value: Any,
    item_value_old: Any = None,
):
    """Set an item; with ``item_value_old`` only if it still has that value (compare-and-set)."""
    return _write(
        req,
        item_name,
        "instance_update_item",
        namespace,
        instance_name,
        item_name,
        item_value,
        item_value_old,
        user=req.user,
    )


@api(**WRITE)
def instance_update_section(req, namespace: Namespace, instance_name: InstanceName, section_version: SectionVersion):
    """Move an instance to another enabled version of its section."""
    return _reply(req, "instance_update_section", namespace, instance_name, section_version, user=req.user)


@api(**WRITE)
def instance_set_valid(req, namespace: Namespace, instance_name: InstanceName, is_valid: bool):
    """Switch an instance off (reads and updates refused with ERR_INSTANCE_IS_NOT_VALID) or on."""
    return _reply(req, "instance_set_valid", namespace, instance_name, is_valid, user=req.user)


@api(**WRITE)
def instance_delete(req, namespace: Namespace, instance_name: InstanceName):
    """Delete an instance and its items (their history stays)."""
    return _reply(req, "instance_delete", namespace, instance_name, user=req.user)


# -- items ----------------------------------------------------------------------------------


@api
def item_get(req, item_id: ItemId, item_type: ItemType = None):
    """One item by id (``item_type``, if sent, must match)."""
    return _read(req, "item_get", masking.item_row, item_id, item_type)


@api(**WRITE)
def item_update(req, item_id: ItemId, item_value: Any, item_value_old: Any = None, item_type: ItemType = None):
    """Set an item by id (compare-and-set with ``item_value_old``)."""
    try:
        item_name = wuxing_of(req.kernel).item_get(item_id)["item_name"]
    except WuxingError:
        item_name = None  # NOTE: no such item: the write below refuses it and logs no value
    return _write(req, item_name, "item_update", item_id, item_value, item_value_old, item_type, user=req.user)


@api
def item_list(
    req,
    namespace: Annotated[str | None, MaxLen(16)] = None,
    section_name: Annotated[str | None, MaxLen(64)] = None,
    instance_name: Annotated[str | None, MaxLen(64)] = None,
    item_name: Annotated[str | None, MaxLen(64)] = None,
    item_value_operator: Annotated[str | None, MaxLen(2)] = None,
    item_value: Any = None,
    start_time: Annotated[str | None, MaxLen(40)] = None,
    end_time: Annotated[str | None, MaxLen(40)] = None,
    sort: Sort = None,
    page_index: Page = 1,
    page_size: PageSize = 10,
):
    """Search items by names, value (``item_value_operator``) and ``u_time`` range.

    Readers without the admin role see secret-looking items with masked values, and
    their value filters and value sorts leave those items out.
    """
    sees_secrets = _reader_sees_secrets(req)
    reply = _reply(
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
        values_of_secrets=sees_secrets,
    )
    if sees_secrets or reply[0] != stats.OK:
        return reply
    return stats.OK, {"data": masking.rows(reply[1]["data"], masking.item_row)}


@api
def item_history_list(
    req,
    item_id: ItemId,
    item_type: ItemType = None,
    page_index: Page = 1,
    page_size: PageSize = 10,
    order: Literal["asc", "desc"] = "desc",
):
    """An item's change history: who, when, old and new value."""
    return _read(
        req,
        "item_history_list",
        lambda data: masking.rows(data, masking.history_row),
        item_id,
        item_type,
        page_index,
        page_size,
        order,
    )
