"""The in-process wuxing API: ``wuxing_of(kernel)`` → :class:`Wuxing`.

Every method returns plain JSON-able data and raises
:class:`~butterfly_wuxing.errors.WuxingError` (``.stat``, ``.reason``) when it
refuses; a refused call changes nothing. Methods join the caller's pony
``db_session`` (the request's, inside a handler) or open their own.

Example (a handler)::

    from butterfly_wuxing import wuxing_of

    def bump(req, host: str):
        wx = wuxing_of(req.kernel)
        value = wx.instance_get("ops", host, items="i|restarts")["i|restarts"]
        wx.instance_update_item("ops", host, "i|restarts", value + 1, item_value_old=value, user=req.user)
        return "OK"
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from butterfly_wuxing import stats
from butterfly_wuxing.errors import WuxingError
from butterfly_wuxing.items import ItemOps

if TYPE_CHECKING:
    from kernel import Kernel

#: ``kernel.extensions`` key of the kernel's :class:`Wuxing`.
EXTENSION = "wuxing"
#: the ``[wuxing]`` settings section
SETTINGS_SECTION = "wuxing"


class Wuxing(ItemOps):
    """All wuxing operations on one kernel's store.

    Areas: sections (:mod:`~butterfly_wuxing.sections`), instances
    (:mod:`~butterfly_wuxing.instances`), changes (:mod:`~butterfly_wuxing.changes`),
    items and history (:mod:`~butterfly_wuxing.items`).

    :param db: the store's bound, mapped pony ``Database``
    :param max_page_size: the largest ``page_size`` lists accept
    """

    def ensure_section(
        self,
        namespace: str,
        section_name: str,
        section_version: str,
        items: dict[str, tuple[str, Any, str]],
        *,
        user: str | None = None,
    ) -> bool:
        """Create, fill and enable a section unless it exists — one transaction (for apps
        that own their schema, like ``handlers/demo_fsm``).

        :param items: ``{item_name: (item_type, item_default, item_description)}``
        :return: ``True`` when this call created the section
        :raises WuxingError: a bad name, type or default in ``items``
        """
        from pony.orm import db_session

        with db_session:
            if self.Section.exists(namespace=namespace, section_name=section_name, section_version=section_version):
                return False
            try:
                self.section_create(namespace, section_name, section_version, user=user)
            except WuxingError as exc:
                if exc.stat == stats.ERR_SECTION_IS_EXIST:
                    return False  # NOTE: a concurrent first use created it; theirs is the same
                raise
            for name, (item_type, default, description) in items.items():
                self.section_item_add(
                    namespace, section_name, section_version, name, default, description, item_type, user=user
                )
            self.section_enable(namespace, section_name, section_version, user=user)
            return True


def wuxing_of(kernel: Kernel) -> Wuxing:
    """The kernel's :class:`Wuxing`, built on first use.

    Built lazily because the store maps the entities in its ``trylast``
    ``butterfly_configure``, after wuxing's own configure has run.

    :param kernel: a configured kernel with butterfly-store and butterfly-wuxing enabled
    :return: the :class:`Wuxing`
    :raises kernel.ConfigError: when wuxing or the store is not enabled on this kernel
    """
    wuxing = kernel.extensions.get(EXTENSION)
    if wuxing is not None:
        return wuxing
    from butterfly_store import get_db
    from butterfly_wuxing.models import SECTION
    from kernel import ConfigError

    db = get_db(kernel)
    if SECTION not in db.entities or (SETTINGS_SECTION, "max_page_size") not in kernel.settings.declared:
        raise ConfigError(
            "butterfly-wuxing is not enabled on this kernel (install butterfly-wuxing; check [server] disable_plugins)"
        )
    # NOTE: two threads racing here build two equivalent objects; either is fine.
    wuxing = kernel.extensions.setdefault(EXTENSION, Wuxing(db, kernel.settings.get(SETTINGS_SECTION, "max_page_size")))
    return wuxing
