"""An instance PROCESS for the cluster tests: MQ consumer + xingqiao sweep, until killed.

Usage: python xq_instance.py SETTINGS_JSON WORK_DIR
(``XQ_TEST_REDIS_URL`` in the environment names the counters' Redis.)
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import butterfly_mq.plugin
import butterfly_router.plugin
import butterfly_store.plugin
import butterfly_trace.plugin
import butterfly_xingqiao.plugin
from kernel.testing import build_kernel


def main() -> None:
    settings, work_dir = json.loads(sys.argv[1]), Path(sys.argv[2])
    plugins = [
        butterfly_store.plugin,
        butterfly_router.plugin,
        butterfly_trace.plugin,
        butterfly_mq.plugin,
        butterfly_xingqiao.plugin,
    ]
    log_file = (work_dir / "instance.log").open("a", encoding="utf-8")
    from kernel import logs

    logs.configure("INFO", "json", stream=log_file)  # NOTE: the test reads it for errors
    kernel = build_kernel(work_dir, plugins, settings)
    kernel.startup()
    print("ready", flush=True)
    sys.stdout = open(os.devnull, "w")  # nobody reads the pipe any more; never block on it
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
