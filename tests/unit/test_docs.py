"""The README documents every setting and every endpoint the code serves."""

from __future__ import annotations

import re
from pathlib import Path

from services.core.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented() -> None:
    names = {f"ONEVOICE_{name.upper()}" for name in Settings.model_fields}
    documented = set(re.findall(r"`(ONEVOICE_[A-Z_]+)`", README))
    assert names - documented == set()
    assert documented - names == set(), "README documents settings the code does not read"


def test_every_endpoint_is_documented() -> None:
    from services.api.routes import (
        accounts,
        admin,
        health,
        metrics,
        rebuilds,
        reports,
        schemas,
        timeline,
    )

    modules = (accounts, admin, health, metrics, rebuilds, reports, schemas, timeline)
    routes = [r for m in modules for r in m.router.routes]
    paths = {getattr(r, "path", "").replace(":path}", "}") for r in routes}
    paths |= {"/v1/events", "/v1/events/batch"}
    assert len(paths) >= 7
    for path in paths:
        assert f" {path}`" in README, f"{path} missing from the README endpoint table"


def test_every_metric_is_documented() -> None:
    from services.core.metrics.collectors import PipelineCollector
    from services.core.metrics.definitions import COUNTED
    from services.core.metrics.rebuilds import RebuildCollector

    exposed = {
        family.name + ("_total" if family.type == "counter" else "")
        for metric in COUNTED
        for family in metric.describe()
    }
    exposed |= set(PipelineCollector.NAMES) | set(RebuildCollector.NAMES)
    start = README.index("### Metrics")
    table = README[start : README.index("### Logs", start)]
    documented = set(re.findall(r"^\| `(onevoice_[a-z_]+)` \|", table, re.MULTILINE))
    assert documented == exposed
