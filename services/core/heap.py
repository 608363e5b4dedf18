"""The garbage collector and a service's long-lived heap.

CPython's full (generation 2) collection walks every container object the process holds. A
service's startup builds ~150,000 of them that live until it exits — modules, the FastAPI app,
SQLAlchemy's tables and compiled statements, pydantic's validators — and a report that loads
tens of thousands of rows promotes enough new objects to trigger a full collection every few
requests: measured on 2026-12-01 (10,000 accounts, 200,000 events), each one paused the
request it fell in by 45–77 ms, the p99 of the complaints and handoffs reports was ~120–130 ms
against a p50 of 31–47 ms in-process, and after ``freeze_startup`` 40 and 54 ms.

``freeze_startup`` collects once, then moves every surviving object to the permanent
generation (``gc.freeze``): later collections walk only what was made since. Objects made at
startup are never freed then, which is what they would do anyway.
"""

from __future__ import annotations

import gc


def freeze_startup() -> int:
    """Call once a process has built its services, before it serves or projects; returns the
    number of objects frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
