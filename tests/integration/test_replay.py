"""`onevoice replay` rebuilds every view from offset 0 to what incremental projection built."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.bootstrap import Services, as_of_now, build
from services.core.readmodels import kpi_figures, state_figures, state_history
from services.core.settings import Settings
from services.projections.replay import ProgressBar, replay
from tests.integration.test_runner import view
from tests.samples import make_event

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def loaded(settings: Settings) -> Iterator[Services]:
    services = build(settings)
    bodies = [make_event(account_id=f"acct-{i % 7}", related_account_ids=[f"group-{i % 2}"],
                         summary=f"이벤트 {i}") for i in range(60)]  # fmt: skip
    results = services.ingest.submit(bodies + bodies[:5])  # five duplicates
    assert [r.status for r in results].count("accepted") == 60
    services.runner.catch_up(60)
    yield services
    services.close()


def test_replay_rebuilds_the_same_view(loaded: Services) -> None:
    before = view(loaded.container.db)
    assert len(before) == 120
    # 9 health rows, then the 9 accounts at each period end kept, then the KPI sums per
    # grouping at each end
    settings = loaded.container.settings
    ends = state_history.ends(as_of_now(settings, loaded.container.clock),
                              settings.kpi_history_weeks, settings.kpi_history_months)  # fmt: skip
    # and the KPI figures of each kept period (the current week and month too), each grouping
    periods = loaded.health_refresher.periods(as_of_now(settings, loaded.container.clock))
    assert loaded.health_refresher.refresh_all() == (9 + 9 * len(ends) + 3 * len(ends)
                                                     + 3 * len(periods))  # fmt: skip
    assert loaded.health_refresher.behind() == (9, 0)
    out = io.StringIO()
    report = replay(loaded.runner, loaded.container.db, 60, out)
    assert view(loaded.container.db) == before
    assert loaded.health_refresher.behind() == (9, 9)  # the health cache answers for nothing
    with loaded.container.db.reading() as conn:
        assert state_history.counts(conn) == 0  # and no state at a past period end is kept
        assert state_figures.counts(conn) == 0  # nor their sums
        assert kpi_figures.counts(conn) == 0  # nor the KPI figures of any period
    assert report.events == 60
    assert report.parked == 0
    assert report.rows == {
        "AccountTimeline": {"events": 60, "entries": 120, "participants": 0},
        # 7 accounts + 2 groups, each touched by one department (sales), nobody registered
        "AccountDirectory": {"accounts": 9, "touches": 9, "owners": 0, "employees": 9},
        "LeadershipLog": {"contacts": 0},  # every event here is by a sales rep
        # sales meetings only; each names one customer contact, on its account and its group
        "OneVoiceView": {
            "commitments": 0,
            "tickets": 0,
            "messages": 0,
            "contacts": 120,
            "csat": 0,
            "signals": 0,
            "needs": 0,
            "orders": 0,
            "contracts": 0,
            "churns": 0,
            # each a sales touch of its account and its group, and of the contact on both
            "follow_ups": 240,
        },
        # one rep (u-park) on 9 accounts; every meeting has a next step (the customer's voice)
        "ReportFacts": {
            "employees": 0,
            "people": 1,
            "touches": 120,
            "firsts": 18,
            "voice": 60,
            "targets": 0,
        },
    }
    assert "100%" in out.getvalue() and "ev/s" in out.getvalue() and "ETA" in out.getvalue()
    assert report.summary().startswith("replayed 60 events in ")


def test_replay_cli_prints_progress_and_counts(loaded: Services, settings: Settings) -> None:
    loaded.close()
    values = {
        **settings.model_dump(mode="json"),
        "bootstrap_key": settings.bootstrap_key.get_secret_value(),
    }  # not "****"
    env = {**os.environ, **{f"ONEVOICE_{k.upper()}": str(v) for k, v in values.items()
                            if v is not None}}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "services", "replay", "--timeout", "120"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "AccountTimeline: events 60, entries 120" in done.stdout
    assert "60/60 events" in done.stderr


def test_progress_bar_shows_rate_and_eta() -> None:
    out = io.StringIO()
    bar = ProgressBar(out, width=10)
    bar.update(25, 100, force=True)
    bar.finish(100, 100)
    first, last = out.getvalue().splitlines()
    assert first.startswith("[##........]  25%  25/100 events")
    assert "ETA" in first
    assert last.startswith("[##########] 100%  100/100 events")
