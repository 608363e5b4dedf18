"""``run``'s projector child (services/projections/process.py): supervised, restarted, stopped,
and gone with its parent. The real command under ``run`` is tested in tests/e2e/test_process.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping

import pytest

from services.projections import process
from services.projections.process import ProjectorProcess, exit_with_parent


class Sleepers:
    """Stands in for ``onevoice projector``: a child that sleeps until signalled (SIGTERM:
    exit 0, as the projector does after its batch), recording each command it was given."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []
        self.children: list[subprocess.Popen[bytes]] = []

    def __call__(self, cmd: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        self.commands.append(cmd)
        code = ("import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0));"
                "time.sleep(120)")  # fmt: skip
        child = subprocess.Popen([sys.executable, "-c", code])
        self.children.append(child)
        return child


def wait_until(check: object, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_child_is_the_projector_command_told_to_exit_with_this_process() -> None:
    assert process.command(123)[1:] == ["-m", "services", "projector", "--exit-with-parent",
                                        "123"]  # fmt: skip


def test_a_child_that_dies_is_started_again_and_reported_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(process, "FIRST_PAUSE_S", 0.5)
    spawn = Sleepers()
    supervised = ProjectorProcess({}, spawn)
    supervised.start()
    try:
        first = spawn.children[0]
        assert supervised.failure() is None and supervised.pid == first.pid
        assert spawn.commands[0][-1] == str(os.getpid())
        first.send_signal(signal.SIGKILL)
        wait_until(lambda: supervised.failure() is not None)
        assert supervised.failure() == f"the projector process exited with status {-9}"
        wait_until(lambda: supervised.starts == 2)
        assert supervised.failure() is None
        assert supervised.pid == spawn.children[1].pid != first.pid
        time.sleep(0.5)  # let the new child install its SIGTERM handler
    finally:
        assert supervised.stop() == 0  # SIGTERM: the child finished and exited 0
    assert all(child.poll() is not None for child in spawn.children)
    time.sleep(1.0)  # longer than the pause: a stopped supervisor starts nothing more
    assert supervised.starts == 2


def test_stop_kills_a_child_that_ignores_sigterm_and_is_idempotent() -> None:
    def stubborn(cmd: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
        code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)"
        return subprocess.Popen([sys.executable, "-c", code])

    supervised = ProjectorProcess({}, stubborn)
    supervised.start()
    time.sleep(0.3)  # let it install its handler
    assert supervised.stop(timeout_s=1.0) == -signal.SIGKILL
    assert supervised.stop() == -signal.SIGKILL  # already stopped: the same answer
    assert ProjectorProcess({}, stubborn).stop() is None  # never started


def test_the_child_side_stops_when_its_parent_is_gone() -> None:
    stop = threading.Event()
    exit_with_parent(os.getppid(), stop)  # this process's parent is alive
    assert not stop.wait(3 * process.WATCH_S)
    exit_with_parent(os.getppid() + 99_999, stop)  # "no longer my parent"
    assert stop.wait(10)


def test_a_child_stopped_from_outside_is_not_restarted() -> None:
    """Exit status 0: someone asked it to stop (a service manager signalling the whole group
    while run shuts down): starting another would leave an orphan."""
    spawn = Sleepers()
    supervised = ProjectorProcess({}, spawn)
    supervised.start()
    try:
        time.sleep(0.5)  # its SIGTERM handler is installed
        spawn.children[0].send_signal(signal.SIGTERM)
        wait_until(lambda: supervised.failure() is not None)
        assert supervised.failure() == "the projector process stopped (status 0); not restarted"
        time.sleep(process.FIRST_PAUSE_S + 0.5)
        assert supervised.starts == 1
    finally:
        assert supervised.stop() == 0


def test_while_a_child_runs_readiness_is_what_its_probe_says() -> None:
    answers: list[str | None] = [process.STARTING]
    supervised = ProjectorProcess({}, Sleepers(), probe=lambda: answers[-1])
    supervised.start()
    try:
        assert supervised.failure() == process.STARTING
        answers.append(None)
        assert supervised.failure() is None
    finally:
        supervised.stop()


def test_the_readyz_probe_reads_the_child_answer() -> None:
    import httpx

    assert process.readyz_probe("http://127.0.0.1:9/readyz", 0.5)() == process.STARTING
    calls: list[int] = []

    def fake_get(url: str, timeout: float) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            return httpx.Response(200, json={"status": "ready"})
        return httpx.Response(503, json={"projector": "stopped", "database": "ok", "log": "ok"})

    mp = pytest.MonkeyPatch()
    mp.setattr(httpx, "get", fake_get)
    try:
        probe = process.readyz_probe("http://child/readyz")
        assert probe() is None
        assert probe() == ("the projector process is not ready (503): {'projector': 'stopped',"
                           " 'database': 'ok', 'log': 'ok'}")  # fmt: skip
    finally:
        mp.undo()
