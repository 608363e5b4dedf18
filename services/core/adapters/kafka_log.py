"""The Apache Kafka adapter (kafka-python 3.x). The only module that imports ``kafka``.

- Every client (admin, producer, metadata consumer, group consumers) is built from
  ``kafka_config.client_config``: the same brokers, authentication and TLS for all of them.
- Producer: ``acks='all'`` and ``enable_idempotence=True`` set explicitly; ``append`` returns only
  after every send's future resolved, within a bounded time, else ``LogUnavailable``.
- Topics are created with ``cleanup.policy=delete``, ``retention.ms=-1`` and
  ``retention.bytes=-1`` (the log is the source of truth). An existing topic is checked for all
  three on start: compaction is refused (``LogMisconfigured``), finite retention too unless
  explicitly allowed.
- Consumers read with ``isolation_level='read_committed'``: records of aborted (or still open)
  transactions of other producers are never returned, and ``end_offsets`` is the last stable
  offset. Offsets are therefore not dense when transactional producers write to the topic: an
  aborted transaction leaves a gap and every commit or abort marker takes an offset, so the next
  position after a record may be more than its offset + 1.
- Consumers join a group with auto-commit off; on assignment they seek to the positions the
  caller's listener returns (the database's checkpoints), so Kafka's offsets are advisory. An
  exception from that listener is raised from ``poll`` (kafka-python would only log it), and no
  record is returned until the listener has answered for every assigned partition.
- A consumer with an assigned partition that stays at one position below the log's end for 5 s
  of polling that returns nothing is replaced by a new client (kafka-python 3.0 can stop
  fetching a partition it holds); the new one resumes from the listener's positions like after
  any rebalance.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from services.core.adapters.kafka_config import (
    PLAINTEXT,
    REQUIRED_TOPIC_CONFIG,
    KafkaSecurity,
    client_config,
    topic_problems,
    topic_refusal,
)
from services.core.metrics.definitions import LOG_APPEND_FAILURES, LOG_CONSUMER_RESTARTS
from services.core.ports import (
    AssignListener,
    EventLog,
    LogConsumer,
    LogMisconfigured,
    LogRecord,
    LogUnavailable,
    OutgoingRecord,
)

with warnings.catch_warnings():
    # kafka-python 3.0 uses importlib.resources.read_text, deprecated on Python 3.11+.
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import ConfigResource, NewTopic
    from kafka.consumer.subscription_state import ConsumerRebalanceListener
    from kafka.errors import KafkaError, TopicAlreadyExistsError
    from kafka.structs import OffsetAndMetadata

log = logging.getLogger(__name__)

# Records of aborted and still-open transactions are not events of the log.
READ_COMMITTED = "read_committed"
_JOIN_WAIT_S = 5.0  # longest poll while this member has no partitions (joining the group)
_JOIN_SLICE_S = 0.1  # ... polled in slices this long, ending once the assignment is installed
_STUCK_S = 30.0  # a member with no partitions for this long rejoins
_STALL_S = 5.0  # a lagging partition whose position stays put this long: the client restarts
_CLOSE_MS = 5_000  # longest wait for a stalled client to leave its group


class KafkaLog(EventLog):
    """An EventLog on a Kafka cluster."""

    def __init__(
        self,
        bootstrap: str,
        *,
        send_timeout_s: float = 10.0,
        session_timeout_s: float = 30.0,
        replication_factor: int = 1,
        allow_finite_retention: bool = False,
        client_id: str = "onevoice",
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self._bootstrap = bootstrap
        self._send_timeout_s = send_timeout_s
        self._session_ms = int(session_timeout_s * 1000)
        self._replication = replication_factor
        self._allow_finite = allow_finite_retention
        self._client_id = client_id
        self._security = security
        self._producer: Any = None
        self._admin: Any = None
        self._meta: Any = None
        self._lock = threading.Lock()
        self._partitions: dict[str, int] = {}

    # -- clients, created on first use so nothing connects at construction ----------------

    def _config(self, role: str) -> dict[str, Any]:
        return client_config(
            self._bootstrap, f"{self._client_id}-{role}", self._security, self._send_timeout_s
        )

    def _admin_client(self) -> Any:
        with self._lock:
            if self._admin is None:
                try:
                    self._admin = KafkaAdminClient(
                        **self._config("admin"),
                        request_timeout_ms=int(self._send_timeout_s * 1000),
                    )
                except KafkaError as exc:
                    raise LogUnavailable(f"kafka admin: {exc}") from exc
            return self._admin

    def _producer_client(self) -> Any:
        with self._lock:
            if self._producer is None:
                try:
                    timeout_ms = int(self._send_timeout_s * 1000)
                    self._producer = KafkaProducer(
                        **self._config("producer"),
                        acks="all",
                        enable_idempotence=True,
                        linger_ms=5,
                        max_block_ms=timeout_ms,
                        request_timeout_ms=min(timeout_ms, 30_000),
                        delivery_timeout_ms=max(timeout_ms, min(timeout_ms, 30_000) + 5),
                    )
                except KafkaError as exc:
                    raise LogUnavailable(f"kafka producer: {exc}") from exc
            return self._producer

    def _metadata_consumer(self) -> Any:
        with self._lock:
            if self._meta is None:
                try:
                    self._meta = KafkaConsumer(
                        **self._config("meta"),
                        enable_auto_commit=False,
                        # end_offsets = the high watermark, the port's "next offset to be
                        # written": a token naming our own record behind a foreign transaction
                        # still open is valid, and the projector's positions reach it by
                        # passing over markers and aborted records.
                        isolation_level="read_uncommitted",
                        request_timeout_ms=max(int(self._send_timeout_s * 1000), 10_000),
                    )
                except KafkaError as exc:
                    raise LogUnavailable(f"kafka: {exc}") from exc
            return self._meta

    # -- EventLog --------------------------------------------------------------------------

    def ensure_topic(self, topic: str, partitions: int) -> int:
        """Create the topic so it keeps every event, or check that the existing one does.

        Raises ``LogMisconfigured`` for an existing topic that compacts, or (unless finite
        retention is allowed) deletes events by age or size; the message names each setting,
        its value and the ``kafka-configs.sh`` command that fixes it.
        """
        admin = self._admin_client()
        try:
            admin.create_topics(
                [NewTopic(topic, partitions, self._replication,
                          topic_configs=dict(REQUIRED_TOPIC_CONFIG))],
                wait_for_metadata=True,
            )  # fmt: skip
            log.info("created topic %s with %d partitions, infinite retention", topic, partitions)
        except TopicAlreadyExistsError:
            self._check_topic_config(admin, topic)
        except KafkaError as exc:
            raise LogUnavailable(f"creating topic {topic}: {exc}") from exc
        return self.partitions(topic)

    def _check_topic_config(self, admin: Any, topic: str) -> None:
        try:
            found = admin.describe_configs([ConfigResource("TOPIC", topic)], config_filter="all")
        except KafkaError as exc:
            raise LogUnavailable(f"describing topic {topic}: {exc}") from exc
        configs = found.get("topic", {}).get(topic, {})
        problems = topic_problems(
            {key: configs.get(key, {}).get("value") for key in REQUIRED_TOPIC_CONFIG}
        )
        refusal = topic_refusal(
            topic, problems, allow_finite_retention=self._allow_finite, bootstrap=self._bootstrap
        )
        if refusal is not None:
            raise LogMisconfigured(refusal)
        if problems:
            log.warning("topic %s has finite retention (%s); running anyway as configured",
                        topic, problems)  # fmt: skip

    def partitions(self, topic: str) -> int:
        """The topic's partition count; ``LogUnavailable`` when it does not exist."""
        if topic not in self._partitions:
            try:
                (described,) = self._admin_client().describe_topics([topic])
            except KafkaError as exc:
                raise LogUnavailable(f"describing topic {topic}: {exc}") from exc
            if described["error_code"] != 0 or not described["partitions"]:
                raise LogUnavailable(f"topic {topic!r} does not exist")
            self._partitions[topic] = len(described["partitions"])
        return self._partitions[topic]

    def append(self, topic: str, records: Sequence[OutgoingRecord]) -> list[tuple[int, int]]:
        if not records:
            return []
        try:
            return self._append(topic, records)
        except LogUnavailable:
            LOG_APPEND_FAILURES.labels("kafka").inc()
            raise

    def _append(self, topic: str, records: Sequence[OutgoingRecord]) -> list[tuple[int, int]]:
        self.partitions(topic)  # refuse unknown topics instead of letting the producer block
        producer = self._producer_client()
        try:
            futures = [
                producer.send(topic, key=r.key, value=r.value, headers=list(r.headers))
                for r in records
            ]
            # Wait for this call's own records only (flush() would also wait for other
            # requests' records); linger_ms bounds how long they sit in the batch.
            deadline = time.monotonic() + self._send_timeout_s
            metadata = [f.get(timeout=max(0.0, deadline - time.monotonic())) for f in futures]
        except KafkaError as exc:
            # Start the next append on a fresh producer: after a broker restart kafka-python's
            # producer can keep batches that never complete (seen in tests/faults).
            self._replace_producer(producer)
            self._partitions.pop(topic, None)
            raise LogUnavailable(f"kafka did not acknowledge the write: {exc}") from exc
        return [(m.partition, m.offset) for m in metadata]

    def _replace_producer(self, failed: Any) -> None:
        """Forget ``failed`` (if still current) and close it off the request path."""
        with self._lock:
            if self._producer is not failed:
                return  # another request replaced it already
            self._producer = None
        threading.Thread(target=_retire, args=(failed,), name="retire-producer",
                         daemon=True).start()  # fmt: skip

    def end_offsets(self, topic: str) -> dict[int, int]:
        count = self.partitions(topic)
        parts = [TopicPartition(topic, p) for p in range(count)]
        try:
            ends = self._metadata_consumer().end_offsets(
                parts, timeout_ms=int(self._send_timeout_s * 1000)
            )
        except KafkaError as exc:
            raise LogUnavailable(f"reading end offsets of {topic}: {exc}") from exc
        return {tp.partition: int(offset) for tp, offset in ends.items()}

    def consumer(self, topic: str, group: str, on_assign: AssignListener) -> LogConsumer:
        return KafkaGroupConsumer(
            self._config(group), topic, group, on_assign, session_ms=self._session_ms
        )

    def close(self) -> None:
        with self._lock:
            for client in (self._producer, self._meta, self._admin):
                if client is not None:
                    try:
                        client.close()
                    except Exception:
                        log.exception("closing a kafka client failed")
            self._producer = self._meta = self._admin = None


def _retire(producer: Any) -> None:
    """Close a producer that failed a write, whatever its pending batches.

    kafka-python 3.0's ``close()`` flushes first and raises when batches are still pending,
    before it stops the sender thread or marks the producer closed; the producer then keeps
    running and its finalizer raises later. So: stop the sender ourselves, then close.
    """
    try:
        producer.close(timeout=0)
        return
    except Exception:
        log.info("a failed producer had pending batches; stopping it")
    sender = getattr(producer, "_sender", None)
    if sender is not None:
        sender.force_close()
        sender.join(5)
    producer._closed = True  # what close() sets once the sender is stopped


class _SeekToCheckpoints(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: KafkaGroupConsumer) -> None:
        self._owner = owner

    def on_partitions_revoked(self, revoked: Any) -> None:
        log.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        # kafka-python calls this on its own IO thread and would at most log the exception (or
        # wrap it in a generic KafkaError): keep it for the caller's next poll instead.
        try:
            self._owner.seek_assigned(list(assigned))
        except Exception as exc:
            self._owner.assign_failed(exc)


class KafkaGroupConsumer(LogConsumer):
    """A consumer-group member; positions come from the caller's listener on every assignment.

    If the listener (or seeking) raises, the next ``poll`` raises that same exception and returns
    no records; every later ``poll`` first asks the listener again for all assigned partitions
    (raising again if it still fails), so nothing is read from a position it did not give.
    ``close`` works in any state.
    """

    def __init__(
        self, config: dict[str, Any], topic: str, group: str, on_assign: AssignListener,
        *, session_ms: int = 30_000,
    ) -> None:  # fmt: skip
        self._config = config
        self._session_ms = session_ms
        self._topic = topic
        self._group = group
        self._on_assign = on_assign
        self._assign_error: Exception | None = None
        self._reseek = False
        self._unassigned_since: float | None = None
        self._stall_checked = 0.0
        self._lagging: dict[int, tuple[int, int]] = {}  # at the last check: (position, end)
        self._fed = False  # a poll returned records since the last check
        self._listener = _SeekToCheckpoints(self)
        self._client: Any = None
        self._client = self._join()

    @property
    def _consumer(self) -> Any:
        """The kafka-python client; a new one when a restart could not build one (then this
        raises ``LogUnavailable`` until it can)."""
        if self._client is None:
            self._client = self._join()
        return self._client

    def _join(self) -> Any:
        """A new kafka-python consumer subscribed to the topic (it joins on its first poll)."""
        try:
            consumer = KafkaConsumer(
                **self._config, group_id=self._group, isolation_level=READ_COMMITTED,
                enable_auto_commit=False, auto_offset_reset="earliest",
                max_poll_records=10_000, session_timeout_ms=self._session_ms,
                # Kafka asks for a heartbeat interval of at most a third of the session timeout.
                heartbeat_interval_ms=min(2_000, self._session_ms // 3),
                max_poll_interval_ms=300_000, metadata_max_age_ms=5_000,
                # Full fetch requests: with KIP-227 sessions kafka-python 3.0 can stop handing
                # out a partition's new records (dpkp/kafka-python#2575; seen here as a
                # projector idle at its position while the record there was acknowledged).
                enable_incremental_fetch_sessions=False,
            )  # fmt: skip
        except KafkaError as exc:
            raise LogUnavailable(f"joining group {self._group}: {exc}") from exc
        try:
            # Know the topic's partitions before joining: an assignment computed without them
            # gives this member nothing until the next metadata refresh and rebalance.
            if not consumer.partitions_for_topic(self._topic):
                raise LogUnavailable(f"topic {self._topic!r} has no partitions (does it exist?)")
            consumer.subscribe([self._topic], listener=self._listener)
        except BaseException as exc:
            try:
                consumer.close(timeout_ms=_CLOSE_MS)
            except Exception:
                log.exception("closing a kafka consumer that could not subscribe failed")
            if isinstance(exc, KafkaError):
                raise LogUnavailable(f"joining group {self._group}: {exc}") from exc
            raise
        return consumer

    def seek_assigned(self, assigned: list[Any]) -> None:
        """Seek ``assigned`` to where the caller's listener says; raises what it raises."""
        start = self._on_assign([tp.partition for tp in assigned])
        for tp in assigned:
            self._consumer.seek(tp, int(start.get(tp.partition, 0)))
        log.info("assigned partitions %s, resuming at %s",
                 sorted(tp.partition for tp in assigned), start)  # fmt: skip

    def assign_failed(self, exc: Exception) -> None:
        """Record a failed assignment: raise ``exc`` from the next poll, then seek again."""
        if self._assign_error is None:  # two rebalances in one poll: the first failure is news
            self._assign_error = exc
        self._reseek = True

    def assignment(self) -> frozenset[int]:
        return frozenset(tp.partition for tp in self._consumer.assignment())

    def positions(self) -> dict[int, int]:
        try:
            return {tp.partition: int(self._consumer.position(tp))
                    for tp in self._consumer.assignment()}  # fmt: skip
        except KafkaError as exc:
            raise LogUnavailable(f"positions on {self._topic}: {exc}") from exc

    def seek(self, partition: int, offset: int) -> None:
        self._consumer.seek(TopicPartition(self._topic, partition), offset)

    def poll(self, max_records: int, timeout_s: float) -> list[LogRecord]:
        if self._reseek:
            # Positions were never set after the failure (kafka-python fell back to
            # auto_offset_reset) and records may have been dropped since: ask again for all.
            assigned = sorted(self._consumer.assignment())
            if assigned:
                self.seek_assigned(assigned)
            self._reseek = False
        # While joining, give the join up to _JOIN_WAIT_S inside this call (kafka-python 3.0
        # could return from a poll mid-join and never install the assignment it received), in
        # slices that end once the assignment is installed: one long poll waited out its whole
        # timeout with no records to return, and a member being stopped waited with it.
        try:
            batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000),
                                          max_records=max_records)  # fmt: skip
            if not batches and not self._consumer.assignment():
                deadline = time.monotonic() + max(_JOIN_WAIT_S - timeout_s, 0.0)
                while not batches and not self._consumer.assignment():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    batches = self._consumer.poll(timeout_ms=int(min(left, _JOIN_SLICE_S) * 1000),
                                                  max_records=max_records)  # fmt: skip
        except KafkaError as exc:
            self._raise_assign_error()
            raise LogUnavailable(f"polling {self._topic}: {exc}") from exc
        self._raise_assign_error()
        self._rejoin_if_stuck()
        self._fed = self._fed or bool(batches)
        self._restart_if_stalled()
        out = []
        for tp, messages in batches.items():
            for m in messages:
                headers = tuple((k, v) for k, v in (m.headers or []))
                out.append(
                    LogRecord(tp.topic, tp.partition, m.offset, m.key, m.value, m.timestamp,
                              headers)
                )  # fmt: skip
        return out

    def _rejoin_if_stuck(self) -> None:
        """A member that holds no partition for ``_STUCK_S`` rejoins the group: kafka-python 3.0
        can miss the end of a join and then heartbeat forever with nothing assigned, leaving
        the partitions the group gave it unread. (With more projectors than partitions an idle
        member rejoins that often too: run at most as many projectors as partitions.)"""
        if self._consumer.assignment():
            self._unassigned_since = None
            return
        now = time.monotonic()
        if self._unassigned_since is None:
            self._unassigned_since = now
        elif now - self._unassigned_since > _STUCK_S:
            log.warning("no partitions of %s for %.0f s: rejoining the group", self._topic,
                        now - self._unassigned_since)  # fmt: skip
            self._consumer.unsubscribe()
            self._consumer.subscribe([self._topic], listener=self._listener)
            self._unassigned_since = now

    def _restart_if_stalled(self) -> None:
        """Replace the kafka-python client when an assigned partition lay below the log's end
        at two checks ``_STALL_S`` apart with its position unchanged, although the caller kept
        polling and no poll in between returned anything.

        kafka-python 3.0 can stop fetching a partition it holds: every poll returns nothing for
        it, the position stays put, the end moves on, and neither seeking nor waiting brings it
        back (seen in full test runs, with incremental fetch sessions off; upstream reports
        much like it: dpkp/kafka-python#3106, #3131). A new client joins the group again and
        starts from the caller's checkpoints, as after any rebalance, so nothing is skipped or
        applied twice. Checked at most once per ``_STALL_S``; counted in
        ``onevoice_log_consumer_restarts_total``. Polls that return records rule a stall out:
        while catching up on many partitions, one partition's fetched records can wait behind
        the others' for longer than ``_STALL_S`` (a bench with 12 partitions restarted 24
        times without this rule). A check the cluster does not answer (an outage) restarts
        nothing: the client reconnects by itself."""
        now = time.monotonic()
        if now - self._stall_checked < _STALL_S:
            return
        previous, since, fed = self._lagging, now - self._stall_checked, self._fed
        self._stall_checked, self._lagging, self._fed = now, {}, False
        assigned = sorted(self._consumer.assignment())
        if not assigned:
            return
        wait_ms = int(_STALL_S * 1000)
        try:
            ends = self._consumer.end_offsets(assigned, timeout_ms=wait_ms)
            positions = {tp.partition: self._consumer.position(tp, timeout_ms=wait_ms)
                         for tp in assigned}  # fmt: skip
        except KafkaError as exc:
            log.info("could not check %s for a stalled fetch: %s", self._topic, exc)
            return
        for tp in assigned:
            position, end = positions[tp.partition], ends.get(tp)
            if position is not None and end is not None and int(position) < int(end):
                self._lagging[tp.partition] = (int(position), int(end))
        if since > 2 * _STALL_S or fed:
            return  # the caller paused between polls, or the client is handing records out
        stuck = {p: at for p, at in self._lagging.items()
                 if p in previous and previous[p][0] == at[0]}  # fmt: skip
        if not stuck:
            return
        log.warning("nothing fetched from %s for %.0f s although partitions lag ({partition:"
                    " (position, end)}: %s): restarting the kafka client", self._topic, since,
                    stuck)  # fmt: skip
        LOG_CONSUMER_RESTARTS.labels("stalled").inc()
        stalled, self._client = self._client, None
        try:
            stalled.close(timeout_ms=_CLOSE_MS)
        except Exception:
            log.exception("closing a stalled kafka consumer failed")
        self._lagging, self._unassigned_since = {}, None
        self._client = self._join()

    def _raise_assign_error(self) -> None:
        error, self._assign_error = self._assign_error, None
        if error is not None:
            raise error

    def commit(self, next_offsets: Mapping[int, int]) -> None:
        offsets = {
            TopicPartition(self._topic, p): OffsetAndMetadata(o, "", -1)
            for p, o in next_offsets.items()
        }
        try:
            self._consumer.commit(offsets)
        except KafkaError as exc:
            # Advisory only (lag tooling): the database holds the real positions.
            log.warning("could not commit offsets to kafka: %s", exc)

    def close(self) -> None:
        if self._client is not None:  # None: a restart's new client could not join
            self._client.close()
