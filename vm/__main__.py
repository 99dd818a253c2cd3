"""``python -m counterpoint`` is the ``counterpoint`` command."""

import sys

from .cli import main

sys.exit(main())
