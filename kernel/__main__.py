"""``python -m kernel``: the ``butterfly`` command."""

import sys

from kernel.cli import main

sys.exit(main())
