"""``python -m bench.profserver OUT ROLE``: run ``python -m services ROLE`` under cProfile in
every thread (the request threadpool and the projector thread included), merged into OUT.

``python -m cProfile`` sees only the main thread (the event loop), not where ingest works.
"""

from __future__ import annotations

import cProfile
import pstats
import runpy
import sys
import threading
from types import FrameType
from typing import Any

PROFILES: list[cProfile.Profile] = []
LOCK = threading.Lock()


def _start_in_thread(frame: FrameType, event: str, arg: Any) -> None:
    profile = cProfile.Profile()
    with LOCK:
        PROFILES.append(profile)
    profile.enable()  # replaces this hook for the current thread


def main() -> None:
    out, role = sys.argv[1], sys.argv[2]
    threading.setprofile(_start_in_thread)
    first = cProfile.Profile()
    PROFILES.append(first)
    sys.argv = ["services", role]
    first.enable()
    try:
        runpy.run_module("services", run_name="__main__")
    except SystemExit:
        pass
    finally:
        first.disable()
        with LOCK:
            stats = pstats.Stats(first)
            for profile in PROFILES[1:]:
                stats.add(profile)
        stats.dump_stats(out)


if __name__ == "__main__":
    main()
