"""Old events still project identically: two fixed logs of catalog v1 events (15 of the 17 v1
types: all but the marketing signals, whose accounts now show handoffs; partitions interleaved,
second copies) is folded by today's code on both backends, and every
reader's answer must contain everything the v1 code answered, unchanged (new sections and new
keys may be added; no value may change, no item appear or disappear)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.core.adapters.sql import Database
from tests.compat import catalog_v1


def differences(old: Any, new: Any, path: str = "") -> list[str]:
    """Where ``new`` does not contain ``old``: dicts may gain keys; lists keep length and order."""
    if isinstance(old, dict):
        if not isinstance(new, dict):
            return [f"{path}: was an object, now {type(new).__name__}"]
        found = []
        for key, value in old.items():
            if key not in new:
                found.append(f"{path}.{key}: missing")
            else:
                found += differences(value, new[key], f"{path}.{key}")
        return found
    if isinstance(old, list):
        if not isinstance(new, list) or len(new) != len(old):
            return [f"{path}: {json.dumps(old, ensure_ascii=False)[:300]} became"
                    f" {json.dumps(new, ensure_ascii=False)[:300]}"]  # fmt: skip
        found = []
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            found += differences(a, b, f"{path}[{i}]")
        return found
    return [] if old == new else [f"{path}: {old!r} became {new!r}"]


def test_the_subset_rule_itself() -> None:
    assert differences({"a": [1, {"b": 2}]}, {"a": [1, {"b": 2, "c": 3}], "d": 4}) == []
    assert differences({"a": [1]}, {"a": [1, 2]}) == [".a: [1] became [1, 2]"]
    assert differences({"a": {"b": 1}}, {"a": {"b": 2}}) == [".a.b: 1 became 2"]
    assert differences({"a": 1}, {}) == [".a: missing"]


@pytest.mark.parametrize("yardstick", catalog_v1.YARDSTICKS)
def test_a_catalog_v1_log_projects_as_it_did(db: Database, yardstick: str) -> None:
    records = catalog_v1.load_log(yardstick)
    assert len(records) > 300
    types = {r.type for r in records}
    assert len(types) >= 10, types
    catalog_v1.fold(db, records)
    now = catalog_v1.read_everything(db, records)
    before = json.loads((catalog_v1.HERE / f"{yardstick}_readers.json").read_text("utf-8"))
    # The yardstick must hold something to compare: health factors, coverage, feeds.
    assert any(v and v["health"]["factors"] for v in before["UTC"]["views"].values())
    assert before["leadership"] and before["feeds"]
    problems = differences(before, now)
    assert not problems, "\n".join(problems[:30])
