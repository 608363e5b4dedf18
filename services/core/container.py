"""What the composition root hands to the HTTP layer: settings and the live adapters."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from services.core.access.store import KeyRing
from services.core.adapters.sql import Database
from services.core.deadletters import RedriveReport
from services.core.deadletters.store import Filters
from services.core.ports import Clock, EventLog
from services.core.privacy.vault import ContactVault
from services.core.readmodels.timeline import to_micros
from services.core.settings import Settings

Redrive = Callable[[Sequence[int] | None, Filters | None], RedriveReport]
"""Re-drive the dead letters with these ids, or else every parked one the filters match."""


def _no_failure() -> str | None:
    return None


@dataclass(frozen=True)
class Container:
    settings: Settings
    log: EventLog
    db: Database
    clock: Clock
    projections: tuple[str, ...]
    redrive: Redrive | None = None
    projector_failure: Callable[[], str | None] = _no_failure
    """Why this process's projector stopped for good (None while it runs or when there is
    none), for /readyz."""
    log_required: bool = True
    """Whether this process's role needs the log to serve (/readyz: 503 without it). The query
    API does not: it reads the database only."""
    keys: KeyRing | None = None
    """The API keys (None: ``ONEVOICE_AUTH=disabled``, every request holds every scope)."""

    contact_vault: ContactVault | None = None
    """Made from the rest when not given; ``dataclasses.replace`` hands the same one on, so
    every copy shares its cache of keys (an erasure forgets them in all)."""

    def __post_init__(self) -> None:
        if self.contact_vault is None:
            made = ContactVault(self.db, lambda: to_micros(self.clock()),
                                self.settings.key_cache_s)  # fmt: skip
            object.__setattr__(self, "contact_vault", made)

    @property
    def vault(self) -> ContactVault:
        """The contacts' keys (``privacy``): answers open sealed contacts with them."""
        assert self.contact_vault is not None  # __post_init__
        return self.contact_vault
