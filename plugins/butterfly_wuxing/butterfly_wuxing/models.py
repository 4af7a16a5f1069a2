"""The wuxing entities, declared on the shared store in ``butterfly_store_define_entities``.

namespace → versioned **section** (a template of typed items) → **instance** of a
section → **items** with values → **history** of every change. Unlike the
original, the template is rows (one per item, so two concurrent ``section_item_add``
cannot lose each other's item), items reference their instance, and one history
table keeps old and new values as JSON text whatever the type.
"""

from __future__ import annotations

import datetime
from typing import Any

#: Entity names in ``db.entities``.
SECTION, SECTION_ITEM, INSTANCE, ITEM, HISTORY = (
    "WuxingSection",
    "WuxingSectionItem",
    "WuxingInstance",
    "WuxingItem",
    "WuxingHistory",
)


def define_entities(db: Any) -> None:
    """Declare the wuxing entities on ``db`` (a fresh, unbound pony ``Database``).

    :param db: the store's database
    :return: ``None``
    """
    from pony.orm import LongStr, Optional, PrimaryKey, Required, Set, composite_index, composite_key

    class WuxingSection(db.Entity):
        _table_ = "wuxing_section"
        id = PrimaryKey(int, auto=True)
        namespace = Required(str, 16)
        section_name = Required(str, 64)
        section_version = Required(str, 16)
        #: first 8 hex digits of the md5 of the canonical template
        section_md5 = Optional(str, 8)
        is_enabled = Required(bool, default=False)
        user = Optional(str, 128, nullable=True)
        c_time = Required(datetime.datetime, precision=6)
        u_time = Required(datetime.datetime, precision=6)
        items = Set("WuxingSectionItem", cascade_delete=True)
        instances = Set("WuxingInstance")
        composite_key(namespace, section_name, section_version)

    class WuxingSectionItem(db.Entity):
        _table_ = "wuxing_section_item"
        id = PrimaryKey(int, auto=True)
        section = Required(WuxingSection)
        item_name = Required(str, 64)
        item_type = Required(str, 8)
        #: the default value as canonical JSON text
        item_default = Optional(LongStr, nullable=True, lazy=False)
        item_description = Optional(str, 512)
        composite_key(section, item_name)

    class WuxingInstance(db.Entity):
        _table_ = "wuxing_instance"
        id = PrimaryKey(int, auto=True)
        namespace = Required(str, 16)
        instance_name = Required(str, 64)
        section = Required(WuxingSection)
        section_md5 = Optional(str, 8)
        is_valid = Required(bool, default=True)
        user = Optional(str, 128, nullable=True)
        c_time = Required(datetime.datetime, precision=6)
        u_time = Required(datetime.datetime, precision=6)
        items = Set("WuxingItem", cascade_delete=True)
        composite_key(namespace, instance_name)

    class WuxingItem(db.Entity):
        _table_ = "wuxing_item"
        id = PrimaryKey(int, auto=True)
        instance = Required(WuxingInstance)
        item_name = Required(str, 64)
        item_type = Required(str, 8)
        value_int = Optional(int, size=64, nullable=True)
        value_float = Optional(float, nullable=True)
        value_bool = Optional(bool, nullable=True)
        value_string = Optional(str, 128, nullable=True)
        # NOTE: LongStr (TEXT / LONGTEXT) but not lazy: a lazy column costs one extra
        # query per text item on every instance_get.
        value_text = Optional(LongStr, nullable=True, lazy=False)
        user = Optional(str, 128, nullable=True)
        c_time = Required(datetime.datetime, precision=6)
        u_time = Required(datetime.datetime, precision=6)
        composite_key(instance, item_name)
        composite_index(item_name, u_time)

    class WuxingHistory(db.Entity):
        _table_ = "wuxing_history"
        id = PrimaryKey(int, auto=True)
        # NOTE: plain ids and names, not relations: the audit trail outlives the item.
        item_id = Required(int, size=64, index=True)
        namespace = Required(str, 16)
        instance_name = Required(str, 64)
        item_name = Required(str, 64)
        item_type = Required(str, 8)
        #: create / update / upgrade / delete
        cmd = Required(str, 16)
        old_value = Optional(LongStr, nullable=True, lazy=False)
        new_value = Optional(LongStr, nullable=True, lazy=False)
        user = Optional(str, 128, nullable=True)
        c_time = Required(datetime.datetime, precision=6)
