"""Hook implementations of butterfly-store (entry point `store`)."""

from kernel import hookimpl  # noqa: F401
