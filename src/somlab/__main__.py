"""``python -m somlab ...`` runs the command line (handy where the entry point is not installed)."""

import sys

from .cli import main

sys.exit(main())
