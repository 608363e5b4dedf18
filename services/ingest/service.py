"""Ingest: validate events, deduplicate by event id, append them durably to the log.

Contract:
- An item is ``accepted`` only after the log durably appended it (its position is returned).
- An event id seen before with the same body is a ``duplicate`` (nothing appended again); with a
  different body it is a ``conflict``. "Same body" is judged on the validated, canonical event
  (key order and whitespace do not matter; ``recorded_at`` is the server's and is ignored).
- Invalid items are ``rejected`` with one error per bad field; the others still go through.
  Beyond the event contract (``parse_event``), ingest refuses what the log would accept but
  should not take from a client: ``occurred_at`` more than ``max_future`` ahead, and more than
  ``max_fanout`` view rows from one event (``contacts`` x (1 + ``related_account_ids``)).
  These are ingest rules, not contract rules, so events already in the log stay decodable.
- Contacts' personal data (name, email, title) is sealed before the append with a key per
  contact that erasure can destroy (``privacy``; keys committed first). A client may not send
  a sealed contact, nor a type only the server records (``events.SERVER_TYPES``).
- If the log (or the database, for receipts and keys) cannot append, ``LogUnavailable``
  (``StoreUnavailable``) propagates and no claim is kept, so the client can retry with the
  same ids.
- Every submitted item counts once in ``onevoice_ingest_events_total{status, type}``: its
  status, or ``unavailable`` when the log or the database failed the whole submission.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError

from services.core import codec
from services.core.access import Grant
from services.core.events import (
    DEFAULT_DEPARTMENTS,
    SERVER_TYPES,
    Actor,
    EnvelopeBase,
    dump_event,
    event_type,
    field_errors,
    is_executive,
    parse_event,
)
from services.core.metrics.definitions import INGEST_EVENTS, event_type_label
from services.core.ports import (
    Clock,
    EventLog,
    LogMisconfigured,
    LogUnavailable,
    ReceiptStore,
    StoreUnavailable,
)
from services.core.privacy.vault import ContactVault

log = logging.getLogger(__name__)

Status = Literal["accepted", "duplicate", "rejected", "conflict"]


@dataclass
class ItemResult:
    """The answer for one submitted event."""

    index: int
    status: Status
    event_id: str | None = None
    position: tuple[int, int] | None = None
    errors: list[dict[str, str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "status": self.status}
        if self.event_id is not None:
            out["event_id"] = self.event_id
        if self.position is not None:
            out["position"] = {"partition": self.position[0], "offset": self.position[1]}
        if self.errors:
            out["errors"] = self.errors
        return out


class WriteRefused(Exception):
    """The request's key may not write some of its events: ``refusals`` holds
    ``(index, field, problem)`` for each; nothing of the request was appended."""

    def __init__(self, refusals: list[tuple[int, str, str]]) -> None:
        super().__init__(refusals[0][2])
        self.refusals = refusals


def digest_of(event: EnvelopeBase) -> str:
    """A stable hash of what the client said (server-set ``recorded_at`` and ``recorded_by``
    excluded: a retry through another key is the same event)."""
    data = dump_event(event)
    data.pop("recorded_at", None)
    data.pop("recorded_by", None)
    canonical = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class IngestService:
    def __init__(
        self,
        event_log: EventLog,
        receipts: ReceiptStore,
        topic: str,
        clock: Clock,
        max_future: timedelta = timedelta(hours=24),
        max_fanout: int = 1000,
        departments: Sequence[str] = DEFAULT_DEPARTMENTS,
        executive_titles: re.Pattern[str] | None = None,
        vault: ContactVault | None = None,
    ) -> None:
        """``vault``: where contacts' keys are kept (None: contacts are appended as sent, for
        in-process tests of the rest; the composition root always gives one)."""
        self._log = event_log
        self._receipts = receipts
        self._topic = topic
        self._clock = clock
        self._max_future = max_future
        self._max_fanout = max_fanout
        self._departments = tuple(departments)
        self._executive_titles = executive_titles
        self._vault = vault

    def _validate(self, index: int, raw: Any, grant: Grant | None) -> EnvelopeBase | ItemResult:
        if isinstance(raw, dict) and "recorded_by" in raw:  # the server's to set: not judged
            raw = {k: v for k, v in raw.items() if k != "recorded_by"}
        try:
            event = parse_event(raw, self._departments)
        except ValidationError as exc:
            return ItemResult(index, "rejected", errors=field_errors(exc))
        now = self._clock()
        errors = [*_server_only(event), *self._too_far_ahead(event, now), *self._too_wide(event)]
        if errors:
            event_id = str(event.event_id) if event.event_id else None
            return ItemResult(index, "rejected", event_id, errors=errors)
        return event.model_copy(update={
            "event_id": event.event_id or uuid.uuid4(), "recorded_at": now,
            "recorded_by": None if grant is None else grant.name,
        })  # fmt: skip

    @property
    def departments(self) -> tuple[str, ...]:
        """The configured departments."""
        return self._departments

    def now(self) -> datetime:
        """The service's clock (an event built by the server is stamped with it)."""
        return self._clock()

    def _stamped(self, event: EnvelopeBase) -> EnvelopeBase:
        """The event as logged: people without an executive flag, outside the leadership
        department, whose title matches the executive title rule get ``executive: true``, so
        the log (not the configuration of the day) says who was an executive at each touch. (The
        roster applies the rule when it is read: a registration keeps the flag HR sent, and a
        later title can make or unmake an executive.) The digest is taken before, of what the
        client sent."""
        rule = self._executive_titles
        if rule is None:
            return event

        def stamp(person: Actor) -> Actor:
            if (person.executive is None and person.title and not is_executive(person)
                    and rule.search(person.title)):  # fmt: skip
                return person.model_copy(update={"executive": True})
            return person

        actor = stamp(event.actor)
        participants = None if event.participants is None else [
            stamp(p) for p in event.participants
        ]  # fmt: skip
        if actor is event.actor and participants == event.participants:
            return event
        return event.model_copy(update={"actor": actor, "participants": participants})

    def check_receipts(self) -> None:
        """Refuse to start when receipts name positions past the log's end: the topic (or the
        embedded log) was recreated while the database was kept, and a retried event id would
        be answered "duplicate" with a position that no longer holds it — the event lost."""
        ends = self._log.end_offsets(self._topic)
        for partition, offset in sorted(self._receipts.highest_positions().items()):
            if offset >= ends.get(partition, 0):
                raise LogMisconfigured(
                    f"ingest receipts name topic {self._topic!r} partition {partition} offset"
                    f" {offset}, but the log ends at {ends.get(partition, 0)}: the log was"
                    " recreated while the database was kept. Point OneVoice at the original log;"
                    " or, if starting over on this log is intended, forget the receipts with"
                    " `onevoice receipts reset` (clients retrying old event ids will append them"
                    " again) and rebuild the views with `onevoice replay`."
                )

    def _too_far_ahead(self, event: EnvelopeBase, now: datetime) -> list[dict[str, str]]:
        if event.occurred_at <= now + self._max_future:
            return []
        hours = self._max_future.total_seconds() / 3600
        problem = f"must not be more than {hours:g} h in the future (server time {now:%Y-%m-%dT%H:%M:%SZ})"  # noqa: E501
        return [{"path": "occurred_at", "problem": problem, "kind": "too_far_ahead"}]

    def _too_wide(self, event: EnvelopeBase) -> list[dict[str, str]]:
        # The view keeps one row per contact, person of ours and account (the account and every
        # related account); the contract alone allows 100 x 21 x 101 of them from one event,
        # which one fold would write.
        contacts, accounts = len(event.contacts), 1 + len(event.related_account_ids)
        people = 1 + len(event.participants or ())
        rows = contacts * accounts * people
        if rows <= self._max_fanout:
            return []
        problem = (
            f"{contacts} contacts on {accounts} accounts (account_id and related_account_ids)"
            f" with {people} of our people (actor and participants) may make {rows} view rows"
            f" (one per contact, person and account); at most {self._max_fanout} are allowed"
        )
        return [{"path": "contacts", "problem": problem, "kind": "fanout_too_large"}]

    def submit(self, raw_items: Sequence[Any], grant: Grant | None = None) -> list[ItemResult]:
        """Validate, deduplicate and append; one result per item, in order. ``grant``: the
        request's key, which must be allowed to write every valid item (else ``WriteRefused``
        and nothing is appended) and is recorded with each (``recorded_by``); None for an
        in-process caller (tests, the bench): the HTTP routes always pass one."""
        try:
            results = self._submit(raw_items, grant, [None] * len(raw_items))
        except WriteRefused as exc:
            for raw in raw_items:
                INGEST_EVENTS.labels("forbidden", event_type_label(raw)).inc()
            log.warning("%d events refused: %s", len(raw_items), exc)
            raise
        except (LogUnavailable, StoreUnavailable) as exc:
            for raw in raw_items:
                INGEST_EVENTS.labels("unavailable", event_type_label(raw)).inc()
            log.warning("%d events not taken: %s", len(raw_items), exc)
            raise
        self._count(raw_items, results)
        return results

    def submit_each(self, raw_items: Sequence[Any], grant: Grant) -> list[ItemResult | Exception]:
        """``submit`` for items that are each another client's request (the group commit,
        ``coalescer``): per item its result, or the error its request would have got alone —
        ``WriteRefused`` for a refused item (the others are submitted again, without it), and
        the ``LogUnavailable``/``StoreUnavailable`` for an item whose answer needed the log or
        the store when they failed (a rejected item, or a duplicate the receipts already
        showed, keeps its answer)."""
        answered: list[ItemResult | None] = [None] * len(raw_items)
        try:
            done = self._submit(raw_items, grant, answered)
        except WriteRefused as exc:
            refused: dict[int, list[tuple[int, str, str]]] = {}
            for index, field_name, problem in exc.refusals:
                refused.setdefault(index, []).append((0, field_name, problem))
            for index in refused:
                INGEST_EVENTS.labels("forbidden", event_type_label(raw_items[index])).inc()
            log.warning("%d of %d events refused: %s", len(refused), len(raw_items), exc)
            rest = [i for i in range(len(raw_items)) if i not in refused]
            again = iter(self.submit_each([raw_items[i] for i in rest], grant) if rest else [])
            return [WriteRefused(refused[i]) if i in refused else next(again)
                    for i in range(len(raw_items))]  # fmt: skip
        except (LogUnavailable, StoreUnavailable) as exc:
            unanswered = [raw for raw, r in zip(raw_items, answered, strict=True) if r is None]
            for raw in unanswered:
                INGEST_EVENTS.labels("unavailable", event_type_label(raw)).inc()
            log.warning("%d events not taken: %s", len(unanswered), exc)
            self._count([raw for raw, r in zip(raw_items, answered, strict=True) if r],
                        [r for r in answered if r is not None])  # fmt: skip
            return [exc if r is None else r for r in answered]
        self._count(raw_items, done)
        return list(done)

    def _count(self, raw_items: Sequence[Any], results: Sequence[ItemResult]) -> None:
        for raw, result in zip(raw_items, results, strict=True):
            INGEST_EVENTS.labels(result.status, event_type_label(raw)).inc()
            if result.status == "accepted" and result.position is not None:
                log.debug("accepted %s", result.event_id, extra={
                    "event_id": result.event_id, "partition": result.position[0],
                    "offset": result.position[1],
                })  # fmt: skip

    def _submit(self, raw_items: Sequence[Any], grant: Grant | None,
                results: list[ItemResult | None]) -> list[ItemResult]:  # fmt: skip
        """Fills ``results`` (one None per item) as answers are known, so a caller that
        catches an error here still has the answers decided before it."""
        first: dict[str, tuple[int, EnvelopeBase, str]] = {}
        repeats: list[tuple[int, str, str]] = []
        refusals: list[tuple[int, str, str]] = []
        for index, raw in enumerate(raw_items):
            checked = self._validate(index, raw, grant)
            if isinstance(checked, ItemResult):
                results[index] = checked
                continue
            refusal = None if grant is None else grant.write_refusal(
                checked.actor.department, event_type(checked))  # fmt: skip
            if refusal is not None:
                refusals.append((index, *refusal))
                continue
            event_id, digest = str(checked.event_id), digest_of(checked)
            if event_id in first:
                repeats.append((index, event_id, digest))
            else:
                first[event_id] = (index, checked, digest)

        if refusals:  # before any claim: nothing of the request reaches the log
            raise WriteRefused(refusals)
        earlier = self._receipts.claim({eid: d for eid, (_, _, d) in first.items()})
        to_append: list[tuple[str, int, EnvelopeBase]] = []
        for event_id, (index, event, digest) in first.items():
            seen = earlier.get(event_id)
            if seen is not None and seen.digest != digest:
                results[index] = _conflict(index, event_id)
            elif seen is not None and seen.position is not None:
                results[index] = ItemResult(index, "duplicate", event_id, seen.position)
            else:
                # New, or claimed by a request that has not confirmed (in flight or crashed):
                # append; projections keep the first copy of an id, so a double append is safe.
                to_append.append((event_id, index, self._stamped(event)))

        # Repeats whose answer needs no append (a different body; an original the receipts
        # answered) are answered now: an outage below must not take those answers away.
        repeats = _answer_repeats(results, repeats, first)
        mine = [eid for eid, _, _ in to_append if eid not in earlier]
        try:
            logged = [e for _, _, e in to_append]
            if self._vault is not None:
                logged = self._vault.seal(logged)  # keys committed before the append
            records = [codec.encode(e) for e in logged]
            positions = self._log.append(self._topic, records) if records else []
        except (LogUnavailable, StoreUnavailable):
            self._receipts.release(mine)
            raise
        self._receipts.confirm(
            {eid: pos for (eid, _, _), pos in zip(to_append, positions, strict=True)}
        )
        for (event_id, index, _), position in zip(to_append, positions, strict=True):
            results[index] = ItemResult(index, "accepted", event_id, position)

        assert not _answer_repeats(results, repeats, first)  # every original is answered now
        return [r for r in results if r is not None]


def _answer_repeats(
    results: list[ItemResult | None],
    repeats: list[tuple[int, str, str]],
    first: dict[str, tuple[int, EnvelopeBase, str]],
) -> list[tuple[int, str, str]]:
    """Answer each repeat of an event id within one submit that can be answered now: a
    conflict when its body differs from the first's or the first is one, else the first's
    duplicate once the first is answered. Returns the repeats still waiting for their first."""
    waiting = []
    for index, event_id, digest in repeats:
        original = results[first[event_id][0]]
        if digest != first[event_id][2] or (original is not None and original.status == "conflict"):
            results[index] = _conflict(index, event_id)
        elif original is not None:
            results[index] = ItemResult(index, "duplicate", event_id, original.position)
        else:
            waiting.append((index, event_id, digest))
    return waiting


def _server_only(event: EnvelopeBase) -> list[dict[str, str]]:
    kind = event_type(event)
    if kind in SERVER_TYPES:
        return [{"path": "type", "kind": "server_only", "problem": f"'{kind}' is recorded by"
                 " the server only (erasure: DELETE /v1/admin/contacts)"}]  # fmt: skip
    return [{"path": f"contacts.{i}.sealed", "kind": "server_only",
             "problem": "is set by the server: send name, email and title as they are"}
            for i, c in enumerate(event.contacts) if c.sealed is not None]  # fmt: skip


def _conflict(index: int, event_id: str) -> ItemResult:
    problem = "this event_id was already used for a different event; use a new event_id"
    return ItemResult(
        index, "conflict", event_id,
        errors=[{"path": "event_id", "problem": problem, "kind": "conflict"}],
    )  # fmt: skip
