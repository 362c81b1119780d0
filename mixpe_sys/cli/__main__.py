"""``python -m mixpe_sys.cli``: the ``mixpe-sim`` command."""

import sys

from . import main

sys.exit(main())
