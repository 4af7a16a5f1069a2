"""Butterfly ruqi (如期): highly available scheduled jobs"""

#: The one place this distribution's version is written (pyproject.toml reads it).
__version__ = "0.2.0"
