"""Hiding the values of secret-looking items from readers who are not admins, and from logs.

An item looks secret when its name does (:func:`kernel.redaction.is_secret_name`:
``s|db_password``, ``api_key``, ``t|ssh_private_key``...). Its value, default and
history values are replaced by :data:`MASK` in the replies of readers without the
admin role; its name, type and times stay visible, and an empty value stays empty
(so a reader can tell it is unset). The in-process API (:mod:`butterfly_wuxing.api`)
is trusted code and always sees the values.

The access log writes a request's parameters when it ends: a write to a secret item
would put its value there (the parameter is ``item_value``, not ``password``), so
:func:`hide_params` replaces those parameters before the request finishes.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from kernel.redaction import MASK, is_secret_name, mask_secrets

if TYPE_CHECKING:
    from kernel import Request

#: Parameters that carry an item's value (or default) in write requests.
VALUE_PARAMS = ("item_value", "item_value_old", "item_default")


def masked(value: Any) -> Any:
    """:data:`MASK` for a set value; ``None`` and ``""`` stay as they are."""
    return value if value is None or value == "" else MASK


def instance_values(data: dict[str, Any], value_format: str) -> dict[str, Any]:
    """An ``instance_get`` reply with secret items' values masked.

    :param data: ``{name: value}`` (simple) or ``{name: {..., "item_value"}}`` (detail)
    :param value_format: ``simple`` or ``detail``
    """
    if value_format == "simple":
        return {name: masked(value) if is_secret_name(name) else value for name, value in data.items()}
    return {
        name: {**row, "item_value": masked(row["item_value"])} if is_secret_name(name) else row
        for name, row in data.items()
    }


def section(data: dict[str, Any]) -> dict[str, Any]:
    """A ``section_get`` reply with secret items' defaults masked."""
    template = {
        name: {**spec, "item_default": masked(spec.get("item_default"))} if is_secret_name(name) else spec
        for name, spec in data.get("section_template", {}).items()
    }
    return {**data, "section_template": template}


def instance_list(data: dict[str, Any], extra_items: list[str]) -> dict[str, Any]:
    """An ``instance_list`` reply with the secret ones of ``extra_items`` masked."""
    secret = [name for name in extra_items if is_secret_name(name)]
    if not secret:
        return data
    rows = [{**row, **{name: masked(row.get(name)) for name in secret if name in row}} for row in data["list"]]
    return {**data, "list": rows}


def item_row(row: dict[str, Any]) -> dict[str, Any]:
    """An item (``item_get``, ``item_list`` rows) with its value masked when it looks secret."""
    return {**row, "item_value": masked(row["item_value"])} if is_secret_name(row.get("item_name")) else row


def history_row(row: dict[str, Any]) -> dict[str, Any]:
    """A history entry with its old and new values masked when the item looks secret."""
    if not is_secret_name(row.get("item_name")):
        return row
    return {
        **row,
        "old_value": masked(row["old_value"]),
        "new_value": masked(row["new_value"]),
        "item_value": masked(row["item_value"]),
    }


def rows(data: dict[str, Any], mask_row) -> dict[str, Any]:
    """A ``{"total", "list"}`` reply with ``mask_row`` applied to every row."""
    return {**data, "list": [mask_row(row) for row in data["list"]]}


def hide_params(request: Request, item_name: Any) -> None:
    """Mask the value parameters of a write to ``item_name`` in what the access log will write.

    :param request: the write request (its parsed parameters are changed in place;
        the handler has already bound them)
    :param item_name: the item written, or ``None`` when the request names several
        (``items_data`` is then masked key by key)
    """
    params = request.parsed_params()
    if not params:
        return
    if item_name is not None and is_secret_name(item_name):
        for name in VALUE_PARAMS:
            if name in params:
                params[name] = masked(params[name])
    items_data = params.get("items_data")
    if isinstance(items_data, dict):
        params["items_data"] = mask_secrets(items_data)
    elif isinstance(items_data, str) and items_data:
        # NOTE: JSON text from a query string or form; text that is not an object is masked whole.
        try:
            decoded = json.loads(items_data)
        except ValueError:
            decoded = None
        params["items_data"] = json.dumps(mask_secrets(decoded)) if isinstance(decoded, dict) else MASK
