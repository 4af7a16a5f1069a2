"""The decorators under the names the original Butterfly used: ``funcattr.api`` and friends.

For handlers written for (or by users of) the original::

    from butterfly_router import funcattr, retstat

    @funcattr.api
    def test_handler(req, info):
        return retstat.OK, {"data": info}

They are the same objects as ``butterfly_router.api`` etc., not wrappers; the
original's ``api_download``/``api_upload`` names are kept too.
"""

from butterfly_router.decorators import api, download, http, upload

#: The original's name for ``@download``.
api_download = download
#: The original's name for ``@upload``.
api_upload = upload

__all__ = ["api", "api_download", "api_upload", "download", "http", "upload"]
