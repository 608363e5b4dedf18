"""``python -m tests.faults.traced_projector``: exactly ``python -m services projector``, and on
SIGUSR1 it writes every thread's stack to its output, so a test that times out waiting for a
projector can show where that projector is stuck."""

import faulthandler
import signal
import sys

from services.cli import main

if __name__ == "__main__":
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    sys.exit(main(["projector"]))
