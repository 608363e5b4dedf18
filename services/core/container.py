"""What the composition root hands to the HTTP layer: settings and the live adapters."""

from __future__ import annotations

from dataclasses import dataclass

from services.core.adapters.sql import Database
from services.core.ports import Clock, EventLog
from services.core.settings import Settings


@dataclass(frozen=True)
class Container:
    settings: Settings
    log: EventLog
    db: Database
    clock: Clock
    projections: tuple[str, ...]
