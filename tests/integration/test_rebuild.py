"""Rebuilds into a shadow generation beside the live one: verified, switched atomically,
cancellable, resumable, with a kept generation to roll back to (both backends)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from services.bootstrap import Services, build
from services.core.readmodels import generations, timeline
from services.core.rebuilds import RebuildConflict, RebuildStateError, operations, store
from services.core.settings import Settings
from services.projections.base import Projection
from services.projections.rebuild.engine import Rebuilder
from services.projections.replay import replay
from services.projections.timeline import AccountTimeline
from tests.samples import make_event


def _story(n: int, start: int = 0) -> list[dict[str, object]]:
    return [make_event(account_id=f"acct-{i % 7}", related_account_ids=[f"group-{i % 2}"],
                       summary=f"고객 미팅 {i}") for i in range(start, start + n)]  # fmt: skip


def digests(services: Services) -> dict[str, dict[str, str]]:
    with services.container.db.reading() as conn:
        return {p.name: p.digest(conn) for p in services.runner.projections}


def shadow_tables(services: Services) -> list[str]:
    with services.container.db.reading() as conn:
        return sorted(n for n in generations.table_names(conn) if "__g" in n)


@pytest.fixture
def loaded(settings: Settings) -> Iterator[Services]:
    services = build(settings)
    results = services.ingest.submit(_story(80))
    assert [r.status for r in results].count("accepted") == 80
    services.runner.catch_up(60)
    yield services
    services.close()


def test_rebuild_while_the_live_projector_runs_switches_to_an_equal_view(
    loaded: Services,
) -> None:
    loaded.start_projector()
    rebuild = loaded.rebuilder.start(None)
    assert rebuild.generation == 2 and rebuild.state == "running"
    posting = threading.Thread(target=lambda: [loaded.ingest.submit(_story(5, 100 + 5 * i))
                                               for i in range(8)])  # fmt: skip
    posting.start()
    seen: list[dict[str, object]] = []
    done = loaded.rebuilder.run(rebuild.id, progress=seen.append)
    posting.join()
    assert done.state == "switched", done.error
    assert done.report is not None and done.report["result"] == "equal"
    assert seen and seen[-1]["events_applied"] == seen[-1]["target"]
    ends = loaded.container.log.end_offsets(loaded.container.settings.topic)
    assert loaded.runner.wait_for({p: o - 1 for p, o in ends.items() if o}, 60)
    loaded.stop_projector()
    with loaded.container.db.reading() as conn:
        assert generations.active(conn, ["AccountTimeline"]) == {"AccountTimeline": (2, None)}
        assert store.claims(conn) == {}
    assert shadow_tables(loaded) == []  # the old generation was dropped
    after = digests(loaded)
    replay(loaded.runner, loaded.container.db, 60, __import__("io").StringIO())
    assert digests(loaded) == after  # the switched views are a pure fold of the log
    with loaded.container.db.reading() as conn:
        count = conn.execute(select(timeline.TABLES.events.c.event_id)).all()
    assert len(count) == 120


class _Changed(AccountTimeline):
    """A 'new version' of the timeline whose search text differs."""

    def apply(self, conn, events):  # type: ignore[no-untyped-def]
        super().apply(conn, events)
        conn.execute(self.t.events.update().values(search_text="changed"))

    def in_generation(self, generation: int) -> Projection:
        return _Changed(AccountTimeline().in_generation(generation).t)


def test_a_rebuild_that_differs_waits_for_the_operator_then_switches(loaded: Services) -> None:
    rebuilder = Rebuilder(loaded.container.log, loaded.container.db,
                          loaded.container.settings.topic, [_Changed()],
                          group=loaded.container.settings.projector_group)  # fmt: skip
    rebuild = rebuilder.start(["AccountTimeline"])
    waiting = rebuilder.run(rebuild.id)
    assert waiting.state == "diff"
    report = waiting.report
    assert report is not None and report["result"] == "different"
    events = report["projections"]["AccountTimeline"]["events"]
    assert (events["changed"], events["only_live"], events["only_rebuilt"]) == (80, 0, 0)
    assert len(events["samples"]) == 5 and events["samples"][0]["kind"] == "changed"
    assert report["projections"]["AccountTimeline"]["entries"]["equal"] is True
    assert "AccountTimeline.events: live 80 rows, rebuilt 80" in report["summary"]
    with pytest.raises(RebuildConflict):
        rebuilder.start(["AccountTimeline"])  # one rebuild per read model at a time
    with loaded.container.db.transaction() as conn:
        store.accept(conn, rebuild.id, 1)
    done = rebuilder.run(rebuild.id)
    assert done.state == "switched"
    with loaded.container.db.reading() as conn:
        texts = set(conn.execute(select(timeline.TABLES.events.c.search_text)).scalars())
    assert texts == {"changed"}


def test_cancel_drops_the_shadow_and_frees_the_read_model(loaded: Services) -> None:
    rebuild = loaded.rebuilder.start(["OneVoiceView"])
    stop = threading.Event()
    stop.set()  # the worker stops at once: the shadow exists, nothing switched
    loaded.rebuilder.run(rebuild.id, stop=stop)
    assert any("one_voice_view__g2_" in t for t in shadow_tables(loaded))
    with loaded.container.db.transaction() as conn:
        cancelled = operations.cancel(conn, rebuild.id, 1)
    with loaded.container.db.transaction() as conn:
        operations.drop_generation(conn, ["OneVoiceView"], rebuild.generation)
    assert cancelled.state == "cancelled"
    assert shadow_tables(loaded) == []
    with loaded.container.db.transaction() as conn, pytest.raises(RebuildStateError):
        operations.cancel(conn, rebuild.id, 2)
    again = loaded.rebuilder.start(["OneVoiceView"])
    assert again.generation == 3


def test_keep_old_allows_a_rollback_that_catches_up(loaded: Services) -> None:
    before = digests(loaded)
    rebuild = loaded.rebuilder.start(None, keep_old=True)
    assert loaded.rebuilder.run(rebuild.id).state == "switched"
    kept = shadow_tables(loaded)
    assert kept and all("__g1_" in t for t in kept)
    loaded.ingest.submit(_story(10, 500))
    loaded.runner.catch_up(60)
    with loaded.container.db.transaction() as conn:
        back = operations.rollback(conn, list(generations.PREFIXES), 1)
    assert back == dict.fromkeys(generations.PREFIXES, 1)
    loaded.runner.catch_up(60)  # fenced: resumes from the kept generation's checkpoints
    rolled = digests(loaded)
    assert rolled != before  # the ten new events reached the kept generation too
    with loaded.container.db.transaction() as conn:
        operations.rollback(conn, list(generations.PREFIXES), 2)  # and forward again
    loaded.runner.catch_up(60)
    assert digests(loaded) == rolled
