"""Hook implementations of butterfly-trace (entry point `trace`)."""

from kernel import hookimpl  # noqa: F401
