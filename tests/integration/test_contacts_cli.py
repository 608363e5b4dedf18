"""``onevoice contacts erase``: the operator's erasure (embedded backend; the HTTP route runs on
both), the email read from stdin, and its refusals."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from services.bootstrap import build
from services.cli import main
from services.core.settings import Settings
from tests.samples import make_event


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ONEVOICE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ONEVOICE_AUTH", "disabled")
    return Settings()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_erase_by_email_from_stdin_then_by_id(
    env: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    services = build(env)
    contacts = [{"id": "c-1", "name": "김", "email": "kim@acme.example"},
                {"name": "윤", "email": "Yoon@Acme.example"}]  # fmt: skip
    [done] = services.ingest.submit([make_event(account_id="acme", contacts=contacts)])
    assert done.status == "accepted"
    vault = services.container.vault
    yoon, kim = vault.find("acme", email="yoon@acme.example"), vault.find("acme", contact_id="c-1")
    services.close()
    monkeypatch.setattr("sys.stdin", io.StringIO("YOON@acme.example\n"))
    code, out, err = run(capsys, "contacts", "erase", "--account", "acme", "--email", "-")
    assert code == 0, err
    answer = json.loads(out)
    assert answer["subjects"] == 1 and answer["events"][0]["position"]["offset"] >= 0
    code, out, err = run(capsys, "contacts", "erase", "--account", "acme", "--contact-id", "c-1")
    assert code == 0 and json.loads(out)["subjects"] == 1, err
    code, _, err = run(capsys, "contacts", "erase", "--account", "acme", "--contact-id", "c-1")
    assert code == 1 and "no sealed contact" in err
    services = build(env)
    assert services.container.vault.keys([*yoon, *kim]) == {}
    services.close()


def test_refusals(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "contacts", "erase", "--account", "a", "--email", "not-an-email")
    assert code == 2 and "not an email" in err
    code, _, err = run(capsys, "contacts", "erase", "--account", "a", "--contact-id", "c",
                       "--without-id")  # fmt: skip
    assert code == 2 and "--without-id goes with --email" in err
    with pytest.raises(SystemExit):  # argparse: one of --email, --contact-id
        main(["contacts", "erase", "--account", "a"])
