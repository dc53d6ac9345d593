"""``python -m ptyscan ...`` is the ``ptyscan`` command."""

import sys

from ptyscan.cli import main

sys.exit(main())
