"""Sealing a contact (``privacy``): what goes in comes out with the key, nothing without it."""

from __future__ import annotations

import re

import pytest

from services.core import privacy
from services.core.events import SEAL_PATTERN, Contact
from services.core.privacy.reveal import reveal

KEY = bytes(range(32))
SUBJECT = "0123456789abcdef0123456789abcdef"


def test_a_sealed_contact_opens_with_its_key_only() -> None:
    contact = Contact(id="c-1", name="오세훈", email="SH.Oh@hanbit.example", title="CTO")
    sealed = privacy.seal(contact, SUBJECT, KEY)
    assert (sealed.id, sealed.name, sealed.email, sealed.title) == ("c-1", None, None, None)
    assert sealed.subject == SUBJECT and sealed.sealed is not None
    assert "오세훈" not in sealed.sealed and "hanbit" not in sealed.sealed.lower()
    assert privacy.opened(sealed.sealed, KEY) == {
        "name": "오세훈", "email": "SH.Oh@hanbit.example", "title": "CTO"}  # fmt: skip
    erased = dict.fromkeys(("name", "email", "title"), privacy.ERASED)
    assert privacy.opened(sealed.sealed, None) == erased
    assert privacy.opened(sealed.sealed, bytes(32)) == erased  # another key


def test_each_seal_differs_and_a_moved_or_altered_one_does_not_open() -> None:
    contact = Contact(email="a@b.example")
    one, two = (privacy.seal(contact, SUBJECT, KEY).sealed for _ in range(2))
    assert one is not None and two is not None and one != two  # a fresh nonce each time
    assert privacy.opened(one, KEY) == {"email": "a@b.example"}
    other = one.replace(SUBJECT, "f" * 32)  # bound to its subject
    assert privacy.opened(other, KEY) == {"email": privacy.ERASED}
    renamed = one.replace(".e.", ".n.")  # and to its field list
    assert privacy.opened(renamed, KEY) == {"name": privacy.ERASED}
    flipped = one[:-3] + ("A" if one[-3] != "A" else "B") + one[-2:]
    assert privacy.opened(flipped, KEY) == {"email": privacy.ERASED}


def test_a_contact_without_personal_data_is_left_as_it_is() -> None:
    bare = Contact(id="c-9")
    assert privacy.seal(bare, SUBJECT, KEY) is bare


def test_the_largest_contact_the_contract_allows_fits_the_seal_pattern() -> None:
    # Control characters are escaped to six bytes each in JSON: the largest plaintext.
    worst = Contact(name="\x01" * 256, email="\x01" * 300 + "@" + "\x01" * 19, title="\x01" * 256)
    sealed = privacy.seal(worst, SUBJECT, KEY).sealed
    assert sealed is not None and re.match(SEAL_PATTERN, sealed)
    assert privacy.opened(sealed, KEY)["title"] == "\x01" * 256
    assert Contact(sealed=sealed).sealed == sealed  # a reader of the log accepts it


def test_a_sealed_contact_holds_nothing_else() -> None:
    sealed = privacy.seal(Contact(name="x"), SUBJECT, KEY).sealed
    with pytest.raises(ValueError, match="no name, email or title"):
        Contact(name="y", sealed=sealed)


def test_identities_follow_the_views_grouping() -> None:
    d = privacy.digest
    found = privacy.identities(["acct", "rel"], Contact(id="c-1", email="A@B.example"))
    assert found.first == d("acct", "id:c-1")
    assert found.names == {("acct", "id", d("acct", "id:c-1")), ("rel", "id", d("rel", "id:c-1")),
                           ("acct", "email", d("acct", "email:a@b.example")),
                           ("rel", "email", d("rel", "email:a@b.example"))}  # fmt: skip
    by_mail = privacy.identities(["acct"], Contact(email="a@B.EXAMPLE")).first
    assert by_mail == d("acct", "email:a@b.example")
    assert privacy.identities(["other"], Contact(email="a@b.example")).first != by_mail
    by_name = privacy.identities(["acct"], Contact(name="Kim"))
    assert by_name.names == {("acct", "name", d("acct", "name:kim"))}
    # One email, composed or decomposed: one person.
    nfc, nfd = "jos\u00e9@b.example", "jose\u0301@b.example"
    assert privacy.identities(["a"], Contact(email=nfc)).first == \
        privacy.identities(["a"], Contact(email=nfd)).first  # fmt: skip


def test_reveal_opens_or_marks_every_sealed_contact_in_an_answer() -> None:
    sealed = privacy.seal(Contact(id="c-1", name="김"), SUBJECT, KEY).model_dump(exclude_none=True)
    answer = {"items": [{"contacts": [sealed]}, {"contact": sealed, "n": 1}], "other": "sealed"}
    asked: list[set[str]] = []

    def lookup(subjects: object) -> dict[str, bytes]:
        asked.append(set(subjects))  # type: ignore[call-overload]
        return {SUBJECT: KEY}

    opened, changed = reveal(answer, lookup)
    assert changed and asked == [{SUBJECT}]  # one lookup for the whole answer
    assert opened["items"][0]["contacts"] == [{"id": "c-1", "name": "김"}]
    assert opened["items"][1] == {"contact": {"id": "c-1", "name": "김"}, "n": 1}
    marked, _ = reveal(answer, None, "[restricted]")
    assert marked["items"][0]["contacts"] == [{"id": "c-1", "name": "[restricted]"}]
    gone, _ = reveal(answer, lambda s: {})
    assert gone["items"][0]["contacts"] == [{"id": "c-1", "name": "[erased]"}]
    assert reveal({"sealed": "not a seal"}, lookup) == ({"sealed": "not a seal"}, False)


def test_the_text_rewrite_equals_the_walk_and_reads_only_members() -> None:
    import json

    from services.core.privacy.reveal import reveal_json
    from services.core.privacy.vault import _KeyCache

    one = privacy.seal(Contact(id="c-1", name='김 "따옴표" \\', email="a@b.example"),
                       SUBJECT, KEY).model_dump(exclude_none=True)  # fmt: skip
    bare = privacy.seal(Contact(title="CTO"), "f" * 32, KEY).model_dump(exclude_none=True)
    answer = {"items": [{"contacts": [one, bare]}], "note": '"sealed":"' + one["sealed"] + '"',
              'odd"': {"x": 1}}  # fmt: skip

    def keys(subjects: object) -> dict[str, bytes]:
        return {s: KEY for s in subjects if s == SUBJECT}  # type: ignore[attr-defined]

    walked, _ = reveal(answer, keys)
    for dumped in (json.dumps(answer, ensure_ascii=False, separators=(",", ":")),
                   json.dumps(answer), json.dumps(answer, indent=2)):  # fmt: skip
        text = reveal_json(dumped.encode(), keys)
        assert text is not None and json.loads(text) == walked
    assert walked["note"] == answer["note"]  # text that merely looks like one: untouched
    assert walked["items"][0]["contacts"][1] == {"title": "[erased]"}  # its key is gone
    # A key an erasure forgot stays gone, even if a read that raced it tries to keep it.
    cache = _KeyCache(60)
    cache.keep({SUBJECT: KEY})
    cache.forget([SUBJECT])
    cache.keep({SUBJECT: KEY})
    assert cache.known([SUBJECT]) == ({SUBJECT: None}, [])
