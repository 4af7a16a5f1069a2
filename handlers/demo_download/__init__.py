"""demo_download: ``@download`` handlers, streamed by the router.

A ``@download`` handler returns a path relative to ``[router] download_dir``
(default ``<data_dir>/downloads``) or ``(path, download_name)``; the router streams
it with a guessed Content-Type, Content-Length and Content-Disposition, and refuses
anything outside that directory (``..``, absolute paths, symlinks out: 403/404).

The demo file ships inside this package (``files/butterfly-demo.html``); the first
request copies it into ``<download_dir>/demo/`` so there is something to serve on a
fresh checkout.
"""

import os
import tempfile
from pathlib import Path

# NOTE: imported under another name: the handler below is called ``download``
# (for the original's URL) and would otherwise shadow the decorator.
from butterfly_router import download as file_route

DEMO_SOURCE = Path(__file__).with_name("files") / "butterfly-demo.html"
#: Where the demo file is placed, relative to the download directory.
DEMO_RELATIVE = "demo/butterfly-demo.html"


def _download_dir(kernel) -> Path:
    """The router's resolved ``[router] download_dir`` (an absolute path).

    The default lies inside ``[server] data_dir``; the kernel creates that one
    (private, mode 0700) before anything is written below it.
    """
    directory = Path(kernel.extensions["router"].download_dir)
    if directory.is_relative_to(kernel.data_dir) and not kernel.data_dir.exists():
        kernel.ensure_data_dir()
    return directory


def _ensure_demo_file(download_dir: Path) -> None:
    """Copy the shipped demo file into ``download_dir/demo/`` unless it is already there.

    Written to a temporary file and renamed into place, so a concurrent request
    never streams a half-written copy.
    """
    target = download_dir / DEMO_RELATIVE
    content = DEMO_SOURCE.read_bytes()
    try:
        if target.is_file() and not target.is_symlink() and target.read_bytes() == content:
            return
    except OSError:
        pass  # unreadable: rewrite it below
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".butterfly-demo-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@file_route
def download(req):
    """``/demo_download/download`` → ``butterfly-demo.html`` as an attachment.

    :param req: the request
    :return: ``(path, download_name)`` relative to the download directory
    """
    _ensure_demo_file(_download_dir(req.kernel))
    return DEMO_RELATIVE, "butterfly-demo.html"


@file_route
def file(req, name: str):
    """``/demo_download/file?name=demo/butterfly-demo.html`` → any file of the download directory.

    The router confines ``name`` to the download directory: ``../etc/passwd``,
    absolute paths and symlinks leading out are refused, missing files are 404.

    :param req: the request
    :param name: a path relative to the download directory
    :return: the path, served under its own base name
    """
    _ensure_demo_file(_download_dir(req.kernel))
    return name
