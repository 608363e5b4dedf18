"""The real command a newcomer runs: `python -m services run`, Ctrl-C, start again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.samples import make_event

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "ONEVOICE_DATA_DIR": str(data_dir), "ONEVOICE_PORT": str(port)}
    return subprocess.Popen(
        [sys.executable, "-m", "services", "run"], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def wait_ready(base: str, proc: subprocess.Popen[bytes], lag_zero: bool = False) -> dict:
    """Poll /readyz (the server's own report of the projector's checkpoint) until ready."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read().decode()  # type: ignore[union-attr]
        try:
            answer = httpx.get(f"{base}/readyz", timeout=2)
            body = answer.json()
            if answer.status_code == 200 and (
                not lag_zero or body["projections"]["AccountTimeline"]["lag"] == 0
            ):
                return body  # type: ignore[no-any-return]
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError("service did not become ready")


def stop(proc: subprocess.Popen[bytes]) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    return proc.returncode, out.decode()


def test_run_ctrl_c_and_restart_keep_every_event(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(tmp_path / "data", port)
    try:
        wait_ready(base, proc)
        # The first start made a key (every scope) and wrote it, alone on the last line.
        key_file = tmp_path / "data" / "admin.key"
        assert key_file.stat().st_mode & 0o777 == 0o600
        auth = {"Authorization": f"Bearer {key_file.read_text().splitlines()[-1]}"}
        body = make_event("leadership.meeting_held", summary="CEO 만찬: 가격 인상 우려를 들음")
        assert httpx.post(f"{base}/v1/events", json=body, timeout=10).status_code == 401
        answer = httpx.post(f"{base}/v1/events", json=body, timeout=10, headers=auth)
        assert answer.status_code == 202, answer.text
        wait_ready(base, proc, lag_zero=True)
    finally:
        code, output = stop(proc)
    assert code == 0, output
    assert "Application shutdown complete" in output

    proc = start(tmp_path / "data", port)
    try:
        wait_ready(base, proc, lag_zero=True)
        page = httpx.get(f"{base}/v1/accounts/acme-kr/timeline", timeout=10, headers=auth).json()
        assert [i["summary"] for i in page["items"]] == ["CEO 만찬: 가격 인상 우려를 들음"]
        assert page["items"][0]["recorded_by"] == "admin"
        assert key_file.read_text().splitlines()[-1] == auth["Authorization"][7:]  # kept
        again = httpx.post(f"{base}/v1/events", json=body, timeout=10, headers=auth)
        assert again.status_code == 200 and again.json()["status"] == "duplicate"
    finally:
        code, output = stop(proc)
    assert code == 0, output


def children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def wait_for(check: Any, what: str, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_run_projects_in_a_child_that_is_restarted_and_dies_with_run(tmp_path: Path) -> None:
    """`run` projects in a process of its own: a killed child is started again and catches up
    (readyz says "stopped" meanwhile); a `kill -9` of `run` takes the child with it; a new
    `run` shows every event once, and a SIGTERM stops it and its child."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start(tmp_path / "data", port)
    try:
        wait_ready(base, proc)
        auth = {"Authorization": "Bearer " + (tmp_path / "data" / "admin.key").read_text()
                .splitlines()[-1]}  # fmt: skip
        child = wait_for(lambda: children(proc.pid), "the projector process")[0]
        assert b"projector" in Path(f"/proc/{child}/cmdline").read_bytes()

        def post(i: int) -> None:
            body = make_event("sales.call_logged", account_id="acme-kr", summary=f"통화 {i}")
            answer = httpx.post(f"{base}/v1/events", json=body, timeout=10, headers=auth)
            assert answer.status_code == 202, answer.text

        def readyz_down() -> Any:
            answer = httpx.get(f"{base}/readyz", timeout=5)
            return answer.status_code == 503 and answer.json()

        post(1)
        wait_ready(base, proc, lag_zero=True)
        os.kill(child, signal.SIGKILL)
        # Until the supervisor starts another (after a 1 s pause), run is not ready.
        down = wait_for(readyz_down, "readyz to report the dead projector", 10)
        assert down["projector"] == "stopped" and down["database"] == "ok", down
        post(2)  # accepted while no projector runs: applied by the next one
        second = wait_for(lambda: [c for c in children(proc.pid) if c != child], "a new child")
        wait_ready(base, proc, lag_zero=True)
        page = httpx.get(f"{base}/v1/accounts/acme-kr/timeline", timeout=10, headers=auth).json()
        assert sorted(i["summary"] for i in page["items"]) == ["통화 1", "통화 2"]

        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        wait_for(lambda: not alive(second[0]), "the orphaned projector to stop", 30)
        first_output = proc.stdout.read().decode()  # type: ignore[union-attr]
        proc.stdout.close()  # type: ignore[union-attr]
    finally:
        if proc.poll() is None:
            stop(proc)
    assert "the projector process exited with status -9" in first_output
    assert "OneVoice projector in group" in first_output  # the child's own line, on run's

    proc = start(tmp_path / "data", port)
    try:
        wait_ready(base, proc, lag_zero=True)  # ready: its projector process answers ready
        page = httpx.get(f"{base}/v1/accounts/acme-kr/timeline", timeout=10, headers=auth).json()
        assert sorted(i["summary"] for i in page["items"]) == ["통화 1", "통화 2"]
        third = children(proc.pid)
    finally:
        # SIGTERM, as a service manager stops it: the child is stopped before run exits.
        proc.send_signal(signal.SIGTERM)
        output = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, output
    assert len(third) == 1 and not alive(third[0]), output
