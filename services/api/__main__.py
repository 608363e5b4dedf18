"""``python -m services.api``: the api service alone (same as ``onevoice api``)."""

import sys

from services.cli import main

sys.exit(main(["api", *sys.argv[1:]]))
