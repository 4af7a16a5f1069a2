"""Serve one of the peer apps (:mod:`apps`) on waitress: ``serve.py raw|flask|falcon --port P --threads N``.

By default with the waitress settings ``kernel/server.py`` uses (so only the app
differs); ``--waitress-defaults`` keeps waitress's own ``send_bytes`` (what
``waitress-serve`` gives).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from waitress import create_server

from kernel.defaults import SEND_BUFFER

sys.path.insert(0, str(Path(__file__).parent))
import apps


def main() -> int:
    """Parse the arguments and serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("app", choices=("raw", "flask", "falcon"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--waitress-defaults", action="store_true", help="waitress's send_bytes, not Butterfly's")
    args = parser.parse_args()
    app = {"raw": lambda: apps.raw_app, "flask": apps.flask_app, "falcon": apps.falcon_app}[args.app]()
    # NOTE: the same waitress knobs kernel/server.py uses, so only the app differs.
    knobs = {} if args.waitress_defaults else {"send_bytes": SEND_BUFFER}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # send_bytes: see kernel/server.py
        server = create_server(
            app,
            host="127.0.0.1",
            port=args.port,
            threads=args.threads,
            ident="",
            connection_limit=1000,
            channel_timeout=120,
            **knobs,
        )
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
