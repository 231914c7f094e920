"""``python -m bot`` is the ``herald`` command."""

import sys

from bot.cli import main

sys.exit(main())
