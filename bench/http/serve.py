"""Serve one of the peer apps (:mod:`apps`) on waitress: ``serve.py raw|flask|falcon --port P --threads N``.

By default with the waitress settings ``kernel/server.py`` uses (so only the app
differs); ``--waitress-defaults`` keeps waitress's own ``send_bytes`` (what
``waitress-serve`` gives).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import apps
from peer_server import peer_server


def main() -> int:
    """Parse the arguments and serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("app", choices=("raw", "flask", "falcon"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--waitress-defaults", action="store_true", help="waitress's send_bytes, not Butterfly's")
    args = parser.parse_args()
    app = {"raw": lambda: apps.raw_app, "flask": apps.flask_app, "falcon": apps.falcon_app}[args.app]()
    server = peer_server(app, args.port, args.threads, waitress_defaults=args.waitress_defaults)
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
