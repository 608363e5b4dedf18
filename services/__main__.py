"""``python -m services`` is the ``onevoice`` command."""

import sys

from services.cli import main

sys.exit(main())
