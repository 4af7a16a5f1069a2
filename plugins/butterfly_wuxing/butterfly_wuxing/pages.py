"""The read-only wuxing browser: namespaces → sections → instances → items with history.

Pages in the shared layout of every Butterfly page (server-rendered, no CDN):

* ``/wuxing/``: every namespace with its sections and instances;
* ``/wuxing/namespace?namespace=``: its sections, each with its instances;
* ``/wuxing/section?namespace=&section_name=&section_version=``: the template and the instances;
* ``/wuxing/instance?namespace=&instance_name=``: the items and their values;
* ``/wuxing/item?item_id=``: one item and its change history.

The same rules as the JSON reads (:mod:`butterfly_wuxing.handlers`): with
butterfly-auth installed a signed-in user is needed unless ``[wuxing] public_read``
(a browser is sent to the sign-in page), and readers without the admin role see the
values of secret-looking items masked (:mod:`butterfly_wuxing.masking`).
"""

from __future__ import annotations

from typing import Any

from butterfly_router import NOT_BLANK, ui
from butterfly_router.openapi import query_parameters
from butterfly_router.ui_filters import pretty
from butterfly_wuxing import masking, stats
from butterfly_wuxing.api import wuxing_of
from butterfly_wuxing.errors import WuxingError
from butterfly_wuxing.handlers import _reader_sees_secrets
from butterfly_wuxing.items import MAX_ID
from butterfly_wuxing.values import format_time
from kernel import BadRequest, NotFound, Response, Unauthorized
from kernel.redaction import MASK

SOURCE = "butterfly_wuxing"
TITLE = "五行 wuxing"
PAGE_SIZE = 20
#: Most namespaces the first page lists.
MAX_NAMESPACES = 500
MISSING = (
    stats.ERR_SECTION_IS_NOT_EXIST,
    stats.ERR_INSTANCE_IS_NOT_EXIST,
    stats.ERR_ITEM_IS_NOT_EXIST,
    stats.ERR_ITEM_IS_NOT_FOUND,
)


class SignInFirst(Exception):
    """Reads need a signed-in user here; the page answers with the sign-in redirect."""


def reader(request: Any) -> bool:
    """Let the caller read (or raise :class:`SignInFirst`); tell whether they see secret values."""
    try:
        return _reader_sees_secrets(request)
    except Unauthorized:
        raise SignInFirst from None


def call(method: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a :class:`~butterfly_wuxing.api.Wuxing` method; its refusals become 404/400 pages."""
    try:
        return method(*args, **kwargs)
    except WuxingError as exc:
        error = NotFound if exc.stat in MISSING else BadRequest
        raise error(exc.reason) from None


def browser_page(view):
    """Wrap a page view: a caller who must sign in first is sent to the sign-in page."""

    def endpoint(request: Any) -> Response:
        try:
            return view(request)
        except SignInFirst:
            redirect = ui.sign_in_redirect(request)
            if redirect is None:
                raise
            return redirect

    endpoint.__name__ = endpoint.__qualname__ = view.__name__
    endpoint.__doc__ = view.__doc__
    return endpoint


def shown_value(value: Any) -> dict[str, Any]:
    """How a value is shown: ``{"text", "block", "masked", "empty"}`` (JSON and long text in a block)."""
    if value is None or value == "":
        return {"text": "", "block": False, "masked": False, "empty": True}
    if value == MASK:
        return {"text": MASK, "block": False, "masked": True, "empty": False}
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dict | list):
        text = pretty(value)
    else:
        text = str(value)
    return {"text": text, "block": "\n" in text or len(text) > 80, "masked": False, "empty": False}


def render(request: Any, template: str, title: str, **context: Any) -> Response:
    """Render a wuxing page in the shared layout."""
    return ui.render(request, template, source=SOURCE, title=title, show=shown_value, **context)


# -- pages ----------------------------------------------------------------------------


@browser_page
def namespaces_page(request: Any) -> Response:
    """``/wuxing/``: every namespace, with its section and instance counts."""
    reader(request)
    wx = wuxing_of(request.kernel)
    from pony.orm import count, db_session, select

    with db_session:
        sections = dict(select((s.namespace, count(s)) for s in wx.Section)[:MAX_NAMESPACES])
        instances = dict(select((i.namespace, count(i)) for i in wx.Instance)[:MAX_NAMESPACES])
    rows = [
        {"namespace": name, "sections": sections.get(name, 0), "instances": instances.get(name, 0)}
        for name in sorted(set(sections) | set(instances))
    ]
    return render(request, "wuxing_namespaces.html", TITLE, namespaces=rows)


@browser_page
def namespace_page(request: Any) -> Response:
    """``/wuxing/namespace?namespace=``: the namespace's sections, newest change first."""
    reader(request)
    namespace = ui.required_text(request, "namespace", max_length=16)
    index = ui.query_int(request, "page", 1, 1, 1_000_000)
    wx = wuxing_of(request.kernel)
    listing = call(wx.section_list, namespace, index, min(PAGE_SIZE, wx.max_page_size))
    from pony.orm import count, db_session, select

    with db_session:
        used = {
            (section_name, version): number
            for section_name, version, number in select(
                (i.section.section_name, i.section.section_version, count(i))
                for i in wx.Instance
                if i.namespace == namespace
            )
        }
    for row in listing["list"]:
        row["instances"] = used.get((row["section_name"], row["section_version"]), 0)
    return render(
        request,
        "wuxing_namespace.html",
        f"{namespace} · {TITLE}",
        namespace=namespace,
        sections=listing,
        page=index,
        pages=max(1, -(-listing["total"] // min(PAGE_SIZE, wx.max_page_size))),
    )


@browser_page
def section_page(request: Any) -> Response:
    """``/wuxing/section?namespace=&section_name=&section_version=``: template and instances."""
    sees_secrets = reader(request)
    namespace = ui.required_text(request, "namespace", max_length=16)
    name = ui.required_text(request, "section_name", max_length=64)
    version = ui.required_text(request, "section_version", max_length=16)
    index = ui.query_int(request, "page", 1, 1, 1_000_000)
    wx = wuxing_of(request.kernel)
    section = call(wx.section_get, namespace, name, version)
    if not sees_secrets:
        section = masking.section(section)
    size = min(PAGE_SIZE, wx.max_page_size)
    instances = call(wx.instance_list, namespace, name, None, version, None, None, "instance_name", index, size)
    return render(
        request,
        "wuxing_section.html",
        f"{name} {version} · {TITLE}",
        namespace=namespace,
        section_name=name,
        section_version=version,
        section=section,
        instances=instances,
        page=index,
        pages=max(1, -(-instances["total"] // size)),
    )


def instance_facts(wx: Any, namespace: str, instance_name: str) -> dict[str, Any]:
    """An instance's section, state and times (also for instances switched off)."""
    from pony.orm import db_session

    with db_session:
        instance = call(wx.find_instance, namespace, instance_name, must_be_valid=False)
        return {
            "namespace": namespace,
            "instance_name": instance_name,
            "section_name": instance.section.section_name,
            "section_version": instance.section.section_version,
            "section_md5": instance.section_md5,
            "is_valid": instance.is_valid,
            "user": instance.user,
            "c_time": format_time(instance.c_time),
            "u_time": format_time(instance.u_time),
        }


@browser_page
def instance_page(request: Any) -> Response:
    """``/wuxing/instance?namespace=&instance_name=``: the instance's items and values."""
    sees_secrets = reader(request)
    namespace = ui.required_text(request, "namespace", max_length=16)
    instance_name = ui.required_text(request, "instance_name", max_length=64)
    index = ui.query_int(request, "page", 1, 1, 1_000_000)
    wx = wuxing_of(request.kernel)
    facts = instance_facts(wx, namespace, instance_name)
    template = call(wx.section_get, namespace, facts["section_name"], facts["section_version"])["section_template"]
    size = wx.max_page_size
    items = call(wx.item_list, namespace, None, instance_name, sort="item_name", page_index=index, page_size=size)
    if not sees_secrets:
        items = masking.rows(items, masking.item_row)
    for row in items["list"]:
        row["item_description"] = template.get(row["item_name"], {}).get("item_description", "")
    return render(
        request,
        "wuxing_instance.html",
        f"{instance_name} · {TITLE}",
        instance=facts,
        items=items,
        page=index,
        pages=max(1, -(-items["total"] // size)),
    )


@browser_page
def item_page(request: Any) -> Response:
    """``/wuxing/item?item_id=``: one item and its history, newest change first."""
    sees_secrets = reader(request)
    item_id = ui.query_int(request, "item_id", 0, 1, MAX_ID)
    if not item_id:
        raise BadRequest("item_id: required", data={"errors": [{"param": "item_id", "reason": "required"}]})
    index = ui.query_int(request, "page", 1, 1, 1_000_000)
    wx = wuxing_of(request.kernel)
    size = min(PAGE_SIZE, wx.max_page_size)
    history = call(wx.item_history_list, item_id, None, index, size, "desc")
    try:
        item = wx.item_get(item_id)
    except WuxingError:
        item = None  # NOTE: a deleted item keeps its history
    if not sees_secrets:
        history = masking.rows(history, masking.history_row)
        item = masking.item_row(item) if item is not None else None
    latest = history["list"][0] if history["list"] else {}
    return render(
        request,
        "wuxing_item.html",
        f"item {item_id} · {TITLE}",
        item_id=item_id,
        item=item,
        latest=latest,
        history=history,
        page=index,
        pages=max(1, -(-history["total"] // size)),
    )


_TEXT = {"type": "string", "minLength": 1, "pattern": NOT_BLANK.pattern}
_PAGE = {"type": "integer", "minimum": 1, "maximum": 1_000_000, "default": 1}
#: With butterfly-auth and ``[wuxing] public_read = false``, a caller not signed in is sent to sign in.
_SIGN_IN = {
    "302": {
        "description": "not signed in (butterfly-auth, [wuxing] public_read = false): off to the sign-in page",
        "headers": {"Location": {"schema": {"type": "string"}}},
    }
}


def _page_openapi(*, required: tuple[str, ...] = (), **schemas: dict[str, Any]) -> dict[str, Any]:
    return {**query_parameters(required=required, **schemas), "responses": _SIGN_IN}


#: The query parameters each page reads, and its answers, for the OpenAPI document.
OPENAPI = {
    "/wuxing": {"responses": _SIGN_IN},
    "/wuxing/namespace": _page_openapi(required=("namespace",), namespace={**_TEXT, "maxLength": 16}, page=_PAGE),
    "/wuxing/section": _page_openapi(
        required=("namespace", "section_name", "section_version"),
        namespace={**_TEXT, "maxLength": 16},
        section_name={**_TEXT, "maxLength": 64},
        section_version={**_TEXT, "maxLength": 16},
        page=_PAGE,
    ),
    "/wuxing/instance": _page_openapi(
        required=("namespace", "instance_name"),
        namespace={**_TEXT, "maxLength": 16},
        instance_name={**_TEXT, "maxLength": 64},
        page=_PAGE,
    ),
    "/wuxing/item": _page_openapi(
        required=("item_id",), item_id={"type": "integer", "minimum": 1, "maximum": MAX_ID}, page=_PAGE
    ),
}
ROUTES = {
    "/wuxing": namespaces_page,
    "/wuxing/namespace": namespace_page,
    "/wuxing/section": section_page,
    "/wuxing/instance": instance_page,
    "/wuxing/item": item_page,
}
