"""``python -m refimpl.cli``: the same as the ``refimpl`` command."""

import sys

from . import main

sys.exit(main())
