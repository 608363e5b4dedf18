"""``python -m services.projections``: one projector process (same as ``onevoice projector``)."""

import sys

from services.cli import main

sys.exit(main(["projector", *sys.argv[1:]]))
