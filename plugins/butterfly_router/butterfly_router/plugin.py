"""Hook implementations of butterfly-router (entry point `router`)."""

from kernel import hookimpl  # noqa: F401
