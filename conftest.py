"""Root conftest: every test directory in the repo uses the kernel's test kit.

Plugins that ship their own pytest fixtures (``butterfly_store.testing``,
``butterfly_mq.testing``) are added when installed; only this root conftest may set
``pytest_plugins``.
"""

import importlib.util

pytest_plugins = ["kernel.testing"]
for _optional in ("butterfly_store.testing", "butterfly_mq.testing"):
    if importlib.util.find_spec(_optional.split(".")[0]) is not None:
        pytest_plugins.append(_optional)
