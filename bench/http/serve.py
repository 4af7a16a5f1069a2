"""Serve one of the peer apps (:mod:`apps`) on waitress: ``serve.py raw|flask|falcon --port P --threads N``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from waitress import create_server

sys.path.insert(0, str(Path(__file__).parent))
import apps


def main() -> int:
    """Parse the arguments and serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("app", choices=("raw", "flask", "falcon"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    app = {"raw": lambda: apps.raw_app, "flask": apps.flask_app, "falcon": apps.falcon_app}[args.app]()
    # NOTE: the same waitress knobs kernel/server.py uses, so only the app differs.
    server = create_server(
        app,
        host="127.0.0.1",
        port=args.port,
        threads=args.threads,
        ident="",
        connection_limit=1000,
        channel_timeout=120,
    )
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
