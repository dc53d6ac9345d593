"""``python -m ptyscan ...`` is the ``ptyscan`` command."""

import sys

from ptyscan.app.cli import main

sys.exit(main())
