"""Hook implementations of butterfly-wuxing (entry point `wuxing`)."""

from kernel import hookimpl  # noqa: F401
