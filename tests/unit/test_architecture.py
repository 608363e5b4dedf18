"""Import direction, read from the source with ``ast`` (STYLE.md "Dependency direction")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "services"


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def module_files() -> list[Path]:
    return sorted(SERVICES.rglob("*.py"))


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def top(name: str) -> str:
    return name.split(".", 1)[0]


def layer(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if parts[0] == "services" and len(parts) > 1 else None


def test_there_are_modules_to_check() -> None:
    assert len(module_files()) > 20


@pytest.mark.parametrize("path", module_files(), ids=rel)
def test_import_rules(path: Path) -> None:
    name = rel(path)
    imported = imports_of(path)
    layers = {layer(i) for i in imported} - {None}
    tops = {top(i) for i in imported}

    if name in ("services/core/events.py", "services/core/ports.py"):
        allowed = {"__future__", "abc", "collections", "dataclasses", "datetime", "enum",
                   "typing", "uuid", "pydantic", "pydantic_core"}  # fmt: skip
        assert tops <= allowed, f"{name} imports more than stdlib + pydantic: {tops - allowed}"
    if name.startswith("services/core/"):
        assert layers <= {"core"}, f"core must not import {layers - {'core'}}"
    for own in ("ingest", "projections", "api"):
        if name.startswith(f"services/{own}/") and not name.endswith("/__main__.py"):
            assert layers <= {"core", own}, f"{own} imports another service layer: {layers}"
    if name == "services/demo.py":
        assert not layers, "the demo is a plain HTTP client of the public API"

    if "cryptography" in tops:  # one place seals and opens (crypto-shredding)
        assert name == "services/core/privacy/__init__.py", f"{name}: cryptography only in privacy"
    if "kafka" in tops:
        assert name == "services/core/adapters/kafka_log.py", f"{name}: kafka only in the adapter"
    if "fastapi" in tops or "starlette" in tops:
        ok = name.startswith("services/api/") or name in (
            "services/ingest/routes.py", "services/bootstrap.py",
        )  # fmt: skip
        assert ok, f"{name}: fastapi only in routes/deps/app modules"
    if "sqlalchemy" in tops:
        ok = (
            name.startswith(("services/core/adapters/sql", "services/core/readmodels/",
                             "services/core/deadletters/", "services/core/rebuilds/",
                             "services/core/access/", "services/core/privacy/vault.py",
                             "services/projections/"))
            or name == "services/api/deps.py"
        )  # fmt: skip
        assert ok, f"{name}: sqlalchemy only in the SQL adapter, read models and projections"


def test_entry_points_only_call_the_cli() -> None:
    mains = [p for p in module_files() if p.name == "__main__.py"]
    assert len(mains) == 4
    for path in mains:
        assert imports_of(path) == {"sys", "services.cli"}, rel(path)


def test_only_the_composition_root_wires_layers() -> None:
    wiring = [
        rel(p) for p in module_files()
        if {"ingest", "projections", "api"} <= {layer(i) for i in imports_of(p)}
    ]  # fmt: skip
    assert wiring == ["services/bootstrap.py"]
