"""Static files under ``/static/`` from ``[router] static_dir``.

The URL rest is checked segment by segment before touching the file system:
empty, ``.``/``..`` and dot-file segments, backslashes, NUL, encoded slashes in
the raw URI and percent-encoded dot segments all answer 404 — so do symlinks
that resolve outside the directory, directories and missing files. A client can
never tell "outside" from "missing".
"""

from __future__ import annotations

import os
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from butterfly_router.files import etag_of, file_response, guess_type, inside, last_modified
from kernel import Forbidden, NotFound, Response

PREFIX = "/static/"
_BAD_RAW = ("%2f", "%5c", "%00")
_BAD_CHARS = ("\\", "\x00")


def _segments(rest: str, raw_uri: str) -> list[str] | None:
    """The safe path segments of ``rest``, or ``None`` when anything looks like an escape."""
    lowered = raw_uri.lower()
    if any(bad in lowered for bad in _BAD_RAW):
        return None
    segments = rest.split("/")
    for segment in segments:
        if not segment or segment.startswith(".") or any(ch in segment for ch in _BAD_CHARS):
            return None
        if "%" in segment:
            # NOTE: a server that did not decode the path (or a double encoding) must not
            # smuggle ".." or "/" through: refuse anything that decodes to them.
            decoded = unquote(segment)
            if decoded.startswith(".") or any(ch in decoded for ch in ("/", *_BAD_CHARS)):
                return None
    return segments


def _not_modified(request: Any, etag: str, mtime: float) -> bool:
    """RFC 7232: If-None-Match wins; If-Modified-Since only without it."""
    if_none_match = request.header("If-None-Match")
    if if_none_match is not None:
        if if_none_match.strip() == "*":
            return True
        tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
        return etag in tags
    if_modified_since = request.header("If-Modified-Since")
    if if_modified_since:
        try:
            since = parsedate_to_datetime(if_modified_since).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return False
        return int(mtime) <= since
    return False


class StaticFiles:
    """The ``/static/`` prefix route's endpoint.

    :param root: the static directory
    :param max_age: ``Cache-Control: max-age`` seconds; ``0`` means ``no-cache``
    """

    def __init__(self, root: Path, max_age: int = 0) -> None:
        self.root = str(root)
        self.__qualname__ = f"StaticFiles({self.root})"  # for route listings
        self.cache_control = f"public, max-age={max_age}" if max_age > 0 else "no-cache"

    def __call__(self, request: Any) -> Response:
        """Serve one static file (GET/HEAD), 304 when the client's copy is current."""
        rest = request.path[len(PREFIX) :]
        raw_uri = request.environ.get("REQUEST_URI") or request.environ.get("RAW_URI") or ""
        segments = _segments(rest, raw_uri) if rest else None
        if segments is None:
            raise NotFound("file not found")
        root_real = os.path.realpath(self.root)
        candidate = os.path.realpath(os.path.join(root_real, *segments))
        if not inside(root_real, candidate):
            raise NotFound("file not found")
        try:
            info = os.stat(candidate)
        except (OSError, ValueError):
            raise NotFound("file not found") from None
        if not os.path.isfile(candidate):
            raise NotFound("file not found")
        etag = etag_of(info)
        headers = [("ETag", etag), ("Last-Modified", last_modified(info)), ("Cache-Control", self.cache_control)]
        if _not_modified(request, etag, info.st_mtime):
            return Response(304, headers, b"")
        headers.insert(0, ("Content-Type", guess_type(candidate)))
        try:
            return file_response(request, candidate, info, headers)
        except Forbidden:
            raise NotFound("file not found") from None
