"""Serving files safely: confinement to a directory, streaming, metadata headers.

Shared by static files (``/static/``) and ``@download`` handlers. Every path is
resolved with :func:`os.path.realpath` (symlinks followed) and must stay inside
the real root directory; only regular files are served.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from email.utils import formatdate
from typing import Any, BinaryIO
from urllib.parse import quote

from kernel import Forbidden, NotFound, Response

CHUNK_SIZE = 64 * 1024
#: Types guessed from a compression suffix (``.tar.gz``): name the container,
#: since we do not send a ``Content-Encoding``.
ENCODING_TYPES = {"gzip": "application/gzip", "bzip2": "application/x-bzip2", "xz": "application/x-xz"}
TEXT_TYPES = ("text/", "application/javascript", "application/json", "image/svg+xml", "application/xml")


class FileChunks:
    """A WSGI body that streams an open file in chunks and closes it at the end.

    :param handle: a file opened in binary mode (owned: closed by :meth:`close`)
    :param chunk_size: bytes per chunk
    """

    def __init__(self, handle: BinaryIO, chunk_size: int = CHUNK_SIZE) -> None:
        self.handle = handle
        self.chunk_size = chunk_size

    def __iter__(self):
        read, size = self.handle.read, self.chunk_size
        while chunk := read(size):
            yield chunk

    def close(self) -> None:
        """Close the file (the WSGI server calls this after sending)."""
        self.handle.close()


def inside(root_real: str, candidate_real: str) -> bool:
    """True when ``candidate_real`` is ``root_real`` or below it (both real paths)."""
    return candidate_real == root_real or candidate_real.startswith(root_real.rstrip(os.sep) + os.sep)


def resolve_inside(root: str | os.PathLike[str], relative: str | os.PathLike[str]) -> tuple[str, os.stat_result]:
    """Resolve ``relative`` under ``root`` to a regular file that really is inside it.

    :param root: the allowed directory
    :param relative: a path relative to ``root`` (or absolute, then it must be inside)
    :return: the real path and its ``stat``
    :raises Forbidden: the path leaves ``root`` (``..``, absolute elsewhere, symlinks)
    :raises NotFound: no regular file there
    """
    root_real = os.path.realpath(root)
    try:
        candidate = os.path.realpath(os.path.join(root_real, os.fspath(relative)))
    except ValueError:  # NUL in the path
        raise NotFound("file does not exist") from None
    if not inside(root_real, candidate):
        raise Forbidden("path is outside the allowed directory")
    try:
        info = os.stat(candidate)
    except (OSError, ValueError):
        raise NotFound("file does not exist") from None
    if not stat.S_ISREG(info.st_mode):
        raise NotFound("file does not exist")
    return candidate, info


def guess_type(name: str) -> str:
    """The Content-Type for a file name (``application/octet-stream`` when unknown)."""
    mime, encoding = mimetypes.guess_type(name, strict=False)
    if encoding is not None:
        return ENCODING_TYPES.get(encoding, "application/octet-stream")
    if mime is None:
        return "application/octet-stream"
    if mime.startswith(TEXT_TYPES):
        return f"{mime}; charset=utf-8"
    return mime


def etag_of(info: os.stat_result) -> str:
    """A strong ETag from size and modification time (nanoseconds)."""
    return f'"{info.st_size:x}-{info.st_mtime_ns:x}"'


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII ``filename`` fallback and an RFC 5987 ``filename*``."""
    name = name.replace("\r", "").replace("\n", "") or "download"
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def file_response(
    request: Any, path: str, info: os.stat_result, headers: list[tuple[str, str]], *, status: int = 200
) -> Response:
    """Stream the file at ``path`` (already confined and stat-ed).

    ``HEAD`` gets the headers only. Uses the server's ``wsgi.file_wrapper`` when
    there is one (waitress sends it efficiently), else :class:`FileChunks`.

    :param request: the :class:`kernel.Request`
    :param path: the real path of a regular file
    :param info: its ``stat``
    :param headers: headers to send (Content-Type, ETag, ...); Content-Length is added
    :return: the response
    :raises Forbidden: the file cannot be opened for reading
    """
    headers.append(("Content-Length", str(info.st_size)))
    if request.method == "HEAD":
        return Response(status, headers, b"")
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the WSGI server through close()
    except PermissionError:
        raise Forbidden("no permission to read this file") from None
    except OSError:
        raise NotFound("file does not exist") from None
    wrapper = request.environ.get("wsgi.file_wrapper")
    body = wrapper(handle, CHUNK_SIZE) if wrapper is not None else FileChunks(handle)
    return Response(status, headers, body)


def last_modified(info: os.stat_result) -> str:
    """The ``Last-Modified`` value (RFC 7231 date) for a ``stat`` result."""
    return formatdate(info.st_mtime, usegmt=True)
