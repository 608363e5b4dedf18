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
    from services.api.routes import accounts, health, reports, schemas, timeline

    modules = (accounts, health, reports, schemas, timeline)
    routes = [r for m in modules for r in m.router.routes]
    paths = {getattr(r, "path", "").replace(":path}", "}") for r in routes}
    paths |= {"/v1/events", "/v1/events/batch"}
    assert len(paths) >= 7
    for path in paths:
        assert f" {path}`" in README, f"{path} missing from the README endpoint table"
