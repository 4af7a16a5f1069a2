"""Butterfly router: handler discovery, parameter binding, JSON/raw/file protocols, static files, OpenAPI.

Handler code imports from here::

    from butterfly_router import api, http, download, upload, retstat

or, as in the original Butterfly, ``from butterfly_router import funcattr`` and
``@funcattr.api`` (the same decorators under their old names).
"""

from butterfly_router import funcattr, retstat
from butterfly_router.binder import check_params
from butterfly_router.converters import NOT_BLANK
from butterfly_router.decorators import api, download, http, upload

#: The one place this distribution's version is written (pyproject.toml reads it).
__version__ = "0.2.0"

__all__ = ["NOT_BLANK", "api", "check_params", "download", "funcattr", "http", "retstat", "upload"]
