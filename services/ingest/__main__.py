"""``python -m services.ingest``: the ingest service alone (same as ``onevoice ingest``)."""

import sys

from services.cli import main

sys.exit(main(["ingest", *sys.argv[1:]]))
