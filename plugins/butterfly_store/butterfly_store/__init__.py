"""Butterfly store: one pony ``Database`` for every plugin (SQLite, MySQL, PostgreSQL).

``get_db(kernel)`` returns the bound, mapped database; plugins declare entities in
the ``butterfly_store_define_entities(db)`` hook (see :mod:`butterfly_store.hookspecs`).
"""

from butterfly_store.database import EXTENSION, get_db
from butterfly_store.urls import mask_url, parse_store_url

#: The one place this distribution's version is written (pyproject.toml reads it).
__version__ = "0.2.0"

__all__ = ["EXTENSION", "get_db", "mask_url", "parse_store_url"]
