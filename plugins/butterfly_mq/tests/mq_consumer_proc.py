"""A consumer PROCESS for the crash tests: serves the /t/ handlers until killed.

Usage: python mq_consumer_proc.py REDIS_URL PREFIX COUNTER_KEY TMP_DIR [cluster]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import butterfly_mq.plugin
from conftest import FAST, Handlers
from kernel.testing import build_kernel


def main() -> None:
    url, prefix, counter_key, tmp = sys.argv[1:5]
    cluster = sys.argv[5:6] == ["cluster"]
    settings = {
        "mq.redis_url": url,
        "mq.redis_cluster": cluster,
        "mq.prefix": prefix,
        **FAST,
        "mq.lease": 1.0,
        "mq.max_recoveries": 1000,
    }
    kernel = build_kernel(Path(tmp), [butterfly_mq.plugin, Handlers(url, counter_key, cluster=cluster)], settings)
    kernel.startup()
    print("ready", flush=True)
    sys.stdout = open(os.devnull, "w")  # nobody reads the pipe any more; never block on it
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
