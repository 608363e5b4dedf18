"""Rebuilds into a shadow generation beside the live one: verified, switched atomically,
cancellable, resumable, with a kept generation to roll back to (both backends)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from services.bootstrap import Services, build
from services.core.readmodels import generations, state_history, timeline
from services.core.rebuilds import RebuildConflict, RebuildStateError, operations, store
from services.core.settings import Settings
from services.projections.base import Projection
from services.projections.rebuild.engine import RebuildBusy, Rebuilder
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
    # This test runs the rebuild itself: the worker thread would take the same rebuild (one
    # process, one lease) and ``run`` below would answer RebuildBusy.
    loaded.rebuild_worker.stop()
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


def test_one_process_runs_a_rebuild_once_whichever_thread_asks(loaded: Services) -> None:
    """The lease is per process: a second thread of the same process asking to run the rebuild
    (the worker thread, say) is told it is busy instead of running it alongside."""
    rebuild = loaded.rebuilder.start(None)
    second: list[str] = []

    def again() -> None:
        try:
            second.append(loaded.rebuilder.run(rebuild.id).state)
        except RebuildBusy:
            second.append("busy")

    def progress(_: dict[str, object]) -> None:
        if not second:  # while the first run is under way
            thread = threading.Thread(target=again)
            thread.start()
            thread.join(60)

    done = loaded.rebuilder.run(rebuild.id, progress=progress)
    assert done.state == "switched", done.error
    assert second == ["busy"]
    assert loaded.rebuilder.run(rebuild.id).state == "switched"  # done: answered, not re-run


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


def _states(services: Services) -> int:
    with services.container.db.reading() as conn:
        return state_history.counts(conn)


def test_keep_old_allows_a_rollback_that_catches_up(loaded: Services) -> None:
    before = digests(loaded)
    rebuild = loaded.rebuilder.start(None, keep_old=True)
    loaded.health_refresher.refresh_all()
    assert loaded.health_refresher.behind()[1] == 0
    assert _states(loaded) > 0
    assert loaded.rebuilder.run(rebuild.id).state == "switched"
    rows, stale = loaded.health_refresher.behind()
    assert rows and stale == rows  # a switch marks every account's health stale
    assert _states(loaded) == 0  # and forgets every state at past period ends
    loaded.health_refresher.refresh_all()
    assert _states(loaded) > 0
    kept = shadow_tables(loaded)
    assert kept and all("__g1_" in t for t in kept)
    loaded.ingest.submit(_story(10, 500))
    loaded.runner.catch_up(60)
    loaded.health_refresher.refresh_all()
    assert _states(loaded) > 0
    with loaded.container.db.transaction() as conn:
        back = operations.rollback(conn, list(generations.PREFIXES), 1)
    assert back == dict.fromkeys(generations.PREFIXES, 1)
    rows, stale = loaded.health_refresher.behind()
    assert rows and stale == rows  # and so does a rollback
    assert _states(loaded) == 0
    loaded.runner.catch_up(60)  # fenced: resumes from the kept generation's checkpoints
    rolled = digests(loaded)
    assert rolled != before  # the ten new events reached the kept generation too
    with loaded.container.db.transaction() as conn:
        operations.rollback(conn, list(generations.PREFIXES), 2)  # and forward again
    loaded.runner.catch_up(60)
    assert digests(loaded) == rolled


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
def test_a_cancelled_rebuild_fences_its_worker(loaded: Services) -> None:
    """Embedded only: on Kafka the worker may be assigned again after the cancel and resume
    at the new epoch (then the engine's lease check stops it, see _catch_up)."""
    from services.projections.runner import ProjectionRunner

    rebuild = loaded.rebuilder.start(["AccountTimeline"])
    shadow = AccountTimeline().in_generation(rebuild.generation)
    with loaded.container.db.transaction() as conn:
        shadow.create_tables(conn)
    worker = ProjectionRunner(loaded.container.log, loaded.container.db,
                              loaded.container.settings.topic, [shadow],
                              group=loaded.container.settings.projector_group + "-w",
                              generation=rebuild.generation, batch_size=10)  # fmt: skip
    worker.until = {}  # resume (load the epochs) without applying anything
    deadline = time.monotonic() + 30
    while not worker.applied():  # Kafka assigns the partitions inside a poll
        assert time.monotonic() < deadline
        worker.run_once()
    with loaded.container.db.transaction() as conn:
        operations.cancel(conn, rebuild.id, 1)
    worker.until = None
    assert worker.run_once() == 0  # fenced: its commit is refused (the engine then stops)
    assert worker.fenced == 1
    with loaded.container.db.reading() as conn:
        from services.core.readmodels.checkpoints import load

        assert load(conn, "AccountTimeline", rebuild.generation,
                    loaded.container.settings.topic) == {}  # fmt: skip
    worker.close()


def test_concurrent_starts_get_distinct_generations(loaded: Services) -> None:
    out: list[object] = []

    def start(name: str) -> None:
        try:
            out.append(loaded.rebuilder.start([name]).generation)
        except Exception as exc:  # recorded: the assertion shows it
            out.append(exc)

    threads = [threading.Thread(target=start, args=(n,)) for n in generations.PREFIXES]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(out) == [2, 3, 4, 5, 6]  # type: ignore[type-var]  # one per read model


def test_a_read_model_added_by_a_release_is_backfilled_before_it_is_applied_live(
    loaded: Services,
) -> None:
    from services.core.readmodels.schema import CHECKPOINTS

    db, name = loaded.container.db, "OneVoiceView"
    view = next(p for p in loaded.runner.projections if p.name == name)
    with db.transaction() as conn:  # what a release that adds OneVoiceView leaves behind
        view.clear(conn)
        conn.execute(CHECKPOINTS.delete().where(CHECKPOINTS.c.projection == name))
        conn.execute(generations.GENERATIONS.insert().values(projection=name, active=0))
    loaded.runner.rewind()
    loaded.ingest.submit(_story(10, 300))
    loaded.runner.catch_up(60)
    assert all(n == 0 for n in _counts(loaded, name).values())  # the live runner skips it
    with db.reading() as conn:
        states = {p["name"]: p["state"] for p in pipeline(conn, loaded)}
    assert states[name] == "not_built" and states["AccountTimeline"] == "live"
    backfill = loaded.rebuilder.backfill_new()
    assert backfill is not None and backfill.projections == (name,)
    assert loaded.rebuilder.backfill_new() is None  # one at a time
    done = loaded.rebuilder.run(backfill.id)
    assert done.state == "switched", done.error
    assert done.report is not None and done.report["backfilled"] == [name]
    loaded.ingest.submit(_story(5, 400))
    loaded.runner.catch_up(60)  # fenced by the switch: applies OneVoiceView from now on
    built = digests(loaded)
    replay(loaded.runner, db, 60, __import__("io").StringIO())
    assert digests(loaded) == built
    assert _counts(loaded, name)["contacts"] == 2 * 95


def _counts(services: Services, name: str) -> dict[str, int]:
    view = next(p for p in services.runner.projections if p.name == name)
    with services.container.db.reading() as conn:
        return view.count(conn)


def pipeline(conn: object, services: Services) -> list[dict[str, object]]:
    from services.core.readmodels.status import pipeline_status

    settings = services.container.settings
    ends = services.container.log.end_offsets(settings.topic)
    return pipeline_status(conn, services.container.projections, settings.topic, ends,  # type: ignore[arg-type]
                           time.time_ns() // 1000, 60)  # fmt: skip


def test_keep_old_with_read_models_at_different_generations_keeps_each_ones(
    loaded: Services,
) -> None:
    first = loaded.rebuilder.start(["LeadershipLog"], keep_old=True)
    assert loaded.rebuilder.run(first.id).state == "switched"  # LeadershipLog: g2, keeps g1
    second = loaded.rebuilder.start(["AccountTimeline", "LeadershipLog"], keep_old=True)
    assert loaded.rebuilder.run(second.id).state == "switched"
    with loaded.container.db.reading() as conn:
        live = generations.active(conn, ["AccountTimeline", "LeadershipLog"])
    assert live == {"AccountTimeline": (3, 1), "LeadershipLog": (3, 2)}
    assert shadow_tables(loaded) == sorted(
        ["account_timeline__g1_events", "account_timeline__g1_entries",
         "account_timeline__g1_participants", "leadership_log__g2_contacts"]
    )  # fmt: skip
    before = digests(loaded)
    with loaded.container.db.transaction() as conn:
        assert operations.rollback(conn, ["AccountTimeline", "LeadershipLog"], 1) == {
            "AccountTimeline": 1, "LeadershipLog": 2}  # fmt: skip
    loaded.runner.catch_up(60)
    assert digests(loaded) == before  # every generation was a fold of the same log


def test_a_live_commit_waits_while_a_rebuild_holds_its_read_models(loaded: Services) -> None:
    from services.core.readmodels import checkpoints

    rebuild = loaded.rebuilder.start(["AccountTimeline"])
    with loaded.container.db.transaction() as conn:
        store.take(conn, rebuild.id, "test:1", 2**62, 1)
        checkpoints.hold(conn, ["AccountTimeline"], time.time_ns() // 1000 + 60_000_000)
    loaded.ingest.submit(_story(3, 700))
    ends = loaded.container.log.end_offsets(loaded.container.settings.topic)
    for _ in range(3):
        assert loaded.runner.run_once() == 0  # held: polled, not committed
    with loaded.container.db.reading() as conn:
        count = len(conn.execute(select(timeline.TABLES.events.c.event_id)).all())
    assert count == 80
    with loaded.container.db.transaction() as conn:
        checkpoints.hold(conn, ["AccountTimeline"], None)
    assert loaded.runner.wait_for({p: o - 1 for p, o in ends.items() if o}, 0) is False
    loaded.runner.catch_up(60)
    with loaded.container.db.reading() as conn:
        count = len(conn.execute(select(timeline.TABLES.events.c.event_id)).all())
    assert count == 83


def test_a_rebuild_resumed_in_verifying_catches_up_before_it_holds(loaded: Services) -> None:
    rebuild = loaded.rebuilder.start(["LeadershipLog"])
    with loaded.container.db.transaction() as conn:  # a worker that died while verifying
        taken = store.take(conn, rebuild.id, "gone-host:1", 1, 1)
        assert taken is not None
        store.renew(conn, taken, "gone-host:1", 1, 1, {}, "verifying")
    loaded.ingest.submit(_story(20, 800))
    loaded.runner.catch_up(60)
    phases: list[str] = []
    done = loaded.rebuilder.run(rebuild.id, progress=lambda p: phases.append(str(p["phase"])))
    assert done.state == "switched"
    first_hold = phases.index("verifying: the shadow reaches the live positions (live paused)")
    assert "catching up" in phases[:first_hold]
