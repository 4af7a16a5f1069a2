"""``python -m kernel``: the ``butterfly`` command (checks first that ``kernel`` is Butterfly's)."""

import sys

from _butterfly_cli import main

sys.exit(main())
