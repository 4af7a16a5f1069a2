"""Root conftest: every test directory in the repo uses the kernel's test kit."""

pytest_plugins = ["kernel.testing"]
