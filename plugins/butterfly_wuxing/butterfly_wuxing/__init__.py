"""Butterfly wuxing (五行): typed config and monitoring data with history.

In-process API: ``wuxing_of(kernel)`` returns the :class:`~butterfly_wuxing.api.Wuxing`
of a kernel; refusals raise :class:`~butterfly_wuxing.errors.WuxingError`.
"""

from butterfly_wuxing.errors import WuxingError


def wuxing_of(kernel):
    """The kernel's :class:`~butterfly_wuxing.api.Wuxing` (see :func:`butterfly_wuxing.api.wuxing_of`).

    :param kernel: a configured kernel with butterfly-wuxing enabled
    :return: the :class:`~butterfly_wuxing.api.Wuxing`
    """
    from butterfly_wuxing.api import wuxing_of as _wuxing_of

    return _wuxing_of(kernel)


#: The one place this distribution's version is written (pyproject.toml reads it).
__version__ = "0.2.0"

__all__ = ["WuxingError", "wuxing_of"]
