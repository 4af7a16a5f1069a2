"""Hook implementations of butterfly-ruqi (entry point `ruqi`)."""

from kernel import hookimpl  # noqa: F401
