"""The contact keys (``privacy.vault``) on both databases: one key per contact however many
ingests meet it at once, found by id or email, gone after ``destroy``."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from services.core.adapters.sql import Database
from services.core.events import EnvelopeBase, parse_event
from services.core.privacy.vault import AmbiguousContact, ContactVault
from tests.samples import make_event


def _event(contacts: list[dict[str, Any]], account: str = "acct-v",
           related: tuple[str, ...] = ()) -> EnvelopeBase:  # fmt: skip
    return parse_event(make_event(account_id=account, contacts=contacts,
                                  related_account_ids=list(related)))  # fmt: skip


def _subjects(events: list[EnvelopeBase]) -> list[str | None]:
    return [c.subject for e in events for c in e.contacts]


def test_concurrent_ingests_of_a_new_contact_agree_on_one_key(db: Database) -> None:
    vaults = [ContactVault(db, lambda: 1) for _ in range(6)]
    contact = {"name": "동시", "email": "Same@Time.example"}
    found: list[list[str | None]] = []
    barrier = threading.Barrier(len(vaults))

    def seal(vault: ContactVault) -> None:
        barrier.wait()
        found.append(_subjects(vault.seal([_event([contact])])))

    threads = [threading.Thread(target=seal, args=(v,)) for v in vaults]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(found) == len(vaults)
    assert len({s for subjects in found for s in subjects}) == 1
    [subject] = found[0]
    assert subject is not None and list(vaults[0].keys([subject])) == [subject]


def test_a_contact_is_found_by_id_or_email_and_destroyed(db: Database) -> None:
    vault = ContactVault(db, lambda: 1)
    with_id = {"id": "c-1", "name": "김", "email": "Kim@Acme.example"}
    sealed = vault.seal(
        [
            _event([with_id]),
            _event([{"email": "kim@acme.EXAMPLE"}]),
            _event([with_id], account="other"),
            _event([{"id": "c-2"}]),
        ]
    )
    by_id, by_mail, elsewhere, bare = _subjects(sealed)
    assert bare is None  # no personal data: nothing sealed
    assert len({by_id, by_mail, elsewhere}) == 3  # per account, per identity
    assert vault.find("acct-v", contact_id="c-1") == sorted([by_id, by_mail])
    assert vault.find("acct-v", email="KIM@acme.example") == sorted([by_id, by_mail])
    assert vault.find("acct-v", email="nobody@acme.example") == []
    assert vault.destroy(vault.find("acct-v", contact_id="c-1")) == 2
    assert vault.find("acct-v", contact_id="c-1") == []
    assert set(vault.keys([by_id, by_mail, elsewhere])) == {elsewhere}  # the other account's
    again = _subjects(vault.seal([_event([with_id])]))
    assert again[0] not in (by_id, by_mail, None)  # met again after erasure: a new key


def test_a_shared_mailbox_is_never_erased_for_everyone(db: Database) -> None:
    vault = ContactVault(db, lambda: 1)
    sealed = vault.seal(
        [
            _event([{"id": "c-1", "email": "info@acme.example"}]),
            _event([{"id": "c-2", "email": "INFO@acme.example"}]),
            _event([{"email": "info@acme.example", "name": "누군가"}]),
        ]
    )
    one, two, unnamed = _subjects(sealed)
    assert vault.find("acct-v", contact_id="c-1") == [one]  # not c-2, not the unnamed record
    assert vault.find("acct-v", contact_id="c-2") == [two]
    assert unnamed not in (None, one, two)
    assert vault.find("acct-v", email="INFO@acme.example", without_id=True) == [unnamed]
    with pytest.raises(AmbiguousContact, match="2 contacts"):
        vault.find("acct-v", email="info@acme.example")
    # Erasing c-1 leaves one id with the mailbox; by email would now take c-2 and the unnamed
    # record with it: still refused (the mailbox stays known as shared).
    assert vault.destroy(vault.find("acct-v", contact_id="c-1")) == 1
    with pytest.raises(AmbiguousContact):
        vault.find("acct-v", email="info@acme.example")
    assert vault.find("acct-v", contact_id="c-2") == [two]


def test_a_contact_is_found_from_a_related_account(db: Database) -> None:
    vault = ContactVault(db, lambda: 1)
    [subject] = _subjects(vault.seal([_event([{"id": "c-7", "email": "r@acme.example"}],
                                             related=("acct-parent",))]))  # fmt: skip
    assert vault.find("acct-parent", contact_id="c-7") == [subject]
    assert vault.find("acct-parent", email="R@acme.example") == [subject]
    assert vault.find("acct-elsewhere", contact_id="c-7") == []


def test_a_batch_of_known_and_new_contacts_writes_what_is_new(db: Database) -> None:
    # A batch with one new contact takes the write path for all of them: a known contact's
    # rows are not written again, but its new names (a related account) are, and a mailbox
    # met by a second id in a later batch becomes shared.
    vault = ContactVault(db, lambda: 1)
    first = {"id": "c-1", "email": "info@acme.example"}
    [one] = _subjects(vault.seal([_event([first])]))
    again, two = _subjects(vault.seal([
        _event([first], related=("acct-parent",)),
        _event([{"id": "c-2", "email": "INFO@acme.example"}]),
    ]))  # fmt: skip
    assert again == one and two not in (None, one)
    assert vault.find("acct-parent", contact_id="c-1") == [one]
    assert vault.find("acct-parent", email="info@acme.example") == [one]
    with pytest.raises(AmbiguousContact, match="2 contacts"):
        vault.find("acct-v", email="info@acme.example")
    # Erased between two batches: met again, a new key and every name under it.
    assert vault.destroy([one]) == 1
    [three] = _subjects(vault.seal([_event([first], related=("acct-parent",))]))
    assert three not in (None, one, two)
    assert vault.find("acct-parent", contact_id="c-1") == [three]
    assert vault.find("acct-v", contact_id="c-1") == [three]


def _at_once(vaults: list[ContactVault], events: list[EnvelopeBase]) -> list[str | None]:
    """Each vault seals its event in its own thread, all released at the same moment."""
    barrier = threading.Barrier(len(vaults))
    found: dict[int, list[str | None]] = {}

    def seal(i: int) -> None:
        barrier.wait()
        found[i] = _subjects(vaults[i].seal([events[i]]))

    threads = [threading.Thread(target=seal, args=(i,)) for i in range(len(vaults))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return [s for i in range(len(vaults)) for s in found[i]]


def test_two_ids_meeting_one_mailbox_at_once_make_it_shared(db: Database) -> None:
    # Two ingests meet one email with two new contact ids at the same moment: each commits
    # its own rows, and the mailbox must be known as shared however they interleave, so an
    # erasure by that email stays refused after one of the ids was erased. (Without the lock
    # of the mailboxes this failed on PostgreSQL.)
    for round_ in range(6):
        email = f"desk{round_}@acme.example"
        vaults = [ContactVault(db, lambda: 1) for _ in range(2)]
        subjects = _at_once(vaults, [_event([{"id": f"r{round_}-{i}", "email": email}])
                                     for i in range(2)])  # fmt: skip
        assert len(set(subjects)) == 2 and None not in subjects
        assert vaults[0].destroy(vaults[0].find("acct-v", contact_id=f"r{round_}-0")) == 1
        with pytest.raises(AmbiguousContact):
            vaults[0].find("acct-v", email=email)
