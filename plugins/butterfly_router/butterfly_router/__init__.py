"""Butterfly router: handler discovery, parameter binding, JSON/raw/file protocols, static files, OpenAPI.

Handler code imports from here::

    from butterfly_router import api, http, download, upload, retstat
"""

from butterfly_router import retstat
from butterfly_router.binder import check_params
from butterfly_router.decorators import api, download, http, upload

#: The one place this distribution's version is written (pyproject.toml reads it).
__version__ = "0.2.0"

__all__ = ["api", "check_params", "download", "http", "retstat", "upload"]
