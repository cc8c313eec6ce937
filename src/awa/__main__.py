"""``python -m awa``: the ``awa`` command, for environments where the script is not on
``PATH`` (or to be sure which interpreter's awa runs)."""

import sys

from awa.cli.main import main

sys.exit(main())
