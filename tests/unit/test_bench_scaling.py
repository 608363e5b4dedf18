"""The scaling table of ``make bench-large`` (bench/scaling.py) from two results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import scaling


def _result(events: int, accounts: int, consumer: float, projection: float,
            lists_p99: float | None, **extra: Any) -> dict[str, Any]:  # fmt: skip
    lists = {} if lists_p99 is None else {p: {"p99_ms": lists_p99, "vacuumed_p99_ms": lists_p99 / 2}
                                          for p in scaling.LISTS}  # fmt: skip
    return {
        "code": "abc1234", "error": None, "options": {"events": events, "accounts": accounts},
        "phases": {
            "prepare": {"large_account_events": events // 40},
            "raw_consumer": {"rate": consumer}, "raw_producer": {"rate": consumer / 4},
            "ingest": {"rate": consumer / 20},
            "projection": {"rate": projection, "consumed": events,
                           "cpu_s": {"bench": events * 300e-6}},
            "replay": {"rate": projection * 0.9, "events": events,
                       "cpu_s": {"bench": events * 310e-6}},
            "view": {"http_p50_ms": 5.0, "http_p99_ms": 9.0, "lists": lists,
                     "health_cache_fill": {"accounts_per_s": 700.0}},
        },
        "rows": [{"metric": "timeline p50, HTTP (600 req)", "value": 4.0},
                 {"metric": "timeline p99, HTTP (all variants)", "value": 12.0}],
        **extra,
    }  # fmt: skip


def _by_name(figures: list[scaling.Figure]) -> dict[str, scaling.Figure]:
    return {f.name.strip(): f for f in figures}


def test_growth_goals_and_the_one_million_replay() -> None:
    small = _result(200_000, 10_000, 40_000.0, 2_000.0, 40.0)
    large = _result(1_000_000, 100_000, 30_000.0, 1_500.0, 90.0)
    got = _by_name(scaling.figures(small, large))

    proj = got["projection catch-up, every read model"]
    assert (proj.small, proj.large, proj.growth) == (2_000.0, 1_500.0, 0.75)
    assert proj.met(proj.large, proj.target) is False
    assert got["÷ raw consumer"].small == 0.05 and got["÷ raw consumer"].large == 0.05
    assert round(got["CPU per event (projector)"].large or 0) == 300
    replay = got["replay of 1,000,000 events (measured at 1M, extrapolated below)"]
    assert round(replay.large or 0) == round(1_000_000 / 1_350)
    # The lists: < 50 ms at 10,000 accounts, < 100 ms at 100,000.
    health = got["accounts?sort=health p99, right after the fill"]
    assert health.as_json()["met_small"] is True and health.as_json()["met_large"] is True
    assert got["timeline of the large account, HTTP p99"].large == 12.0


def test_a_missing_phase_shows_a_dash_and_a_failed_run_is_named(tmp_path: Path) -> None:
    small = _result(200_000, 10_000, 40_000.0, 2_000.0, 60.0)
    large = _result(1_000_000, 100_000, 30_000.0, 1_500.0, None,
                    error="RuntimeError: replay timed out")  # fmt: skip
    del large["phases"]["replay"]
    got = _by_name(scaling.figures(small, large))
    assert got["replay from offset 0"].large is None
    assert got["replay from offset 0"].growth is None
    health = got["accounts?sort=health p99, right after the fill"]
    assert health.as_json()["met_small"] is False and health.as_json()["met_large"] is None

    text = scaling.markdown(small, large, ("s.json", "l.json"), scaling.figures(small, large))
    assert "| replay from offset 0 | events/s | 1,800 | — | — |" in text
    assert "l.json: RuntimeError: replay timed out" in text

    # Reusing both results only writes the table.
    (tmp_path / "s.json").write_text(json.dumps(small))
    (tmp_path / "l.json").write_text(json.dumps(large))
    code = scaling.main(["--small", str(tmp_path / "s.json"), "--large",
                         str(tmp_path / "l.json"), "--out-dir", str(tmp_path / "out")])  # fmt: skip
    assert code == 1  # the large run failed part-way
    tables = list((tmp_path / "out").glob("scaling-*.md"))
    assert len(tables) == 1 and "200,000 ev / 10,000 acc" in tables[0].read_text()
