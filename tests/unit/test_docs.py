"""The README documents every setting and every endpoint the code serves."""

from __future__ import annotations

import re
from pathlib import Path

from services.core.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented() -> None:
    names = {f"ONEVOICE_{name.upper()}" for name in Settings.model_fields}
    # ONEVOICE_TEST_*: knobs of the test suite, not settings of the service
    documented = {n for n in re.findall(r"`(ONEVOICE_[A-Z_]+)`", README)
                  if not n.startswith("ONEVOICE_TEST_")}  # fmt: skip
    assert names - documented == set()
    assert documented - names == set(), "README documents settings the code does not read"


def test_every_endpoint_is_documented() -> None:
    import pkgutil
    from importlib import import_module

    import services.api.routes as package
    from services.ingest.routes import build_router, build_targets_router

    modules = [import_module(f"{package.__name__}.{m.name}")
               for m in pkgutil.iter_modules(package.__path__)]  # fmt: skip
    routers = [m.router for m in modules if hasattr(m, "router")]
    routers += [build_router(None, 1), build_targets_router(None)]  # type: ignore[arg-type]
    routes = [r for router in routers for r in router.routes]
    paths = {(sorted(getattr(r, "methods", None) or ["GET"])[0],
              getattr(r, "path", "").replace(":path}", "}")) for r in routes}  # fmt: skip
    assert len(paths) >= 30
    for method, path in paths:
        assert f"`{method} {path}`" in README or (method == "HEAD"), (
            f"{method} {path} missing from the README endpoint table"
        )


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
