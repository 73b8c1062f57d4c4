"""``python -m rlnas.cli``: the ``rlnas`` command."""

import sys

from rlnas.cli import main

sys.exit(main())
