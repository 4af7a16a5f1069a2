"""Butterfly trace: request ids, access/error logs, timing points, runtime log level"""

#: The one place this distribution's version is written (pyproject.toml reads it).
__version__ = "0.2.0"
