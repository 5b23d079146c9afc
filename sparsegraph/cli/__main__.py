"""``python -m sparsegraph.cli``."""

import sys

from . import main

sys.exit(main())
