"""The projector of ``onevoice run`` in a child process: its own interpreter and GIL.

In one process, the HTTP loop, ingest and the projector take turns on one GIL, and a single
POST's answer waits behind the projector's batches. ``run`` therefore starts
``onevoice projector --exit-with-parent <pid>`` beside its HTTP server (when
``ONEVOICE_PROJECTOR_PROCESS`` is on, the default) with the same settings, and supervises it:

- the child runs the same projector as a split deployment's (runner, rebuild worker, health
  refresher; ``/healthz``, ``/readyz`` and ``/metrics`` on ``ONEVOICE_PROJECTOR_PORT``);
- it is started in a session of its own, so a Ctrl-C in the terminal reaches ``run`` only;
  once ``run``'s HTTP server has shut down (Ctrl-C or SIGTERM), ``run`` stops the child
  (SIGTERM: it finishes its batch) and waits for it;
- when ``run`` dies without stopping it (``kill -9``), the child notices its parent is gone
  within ``WATCH_S``, finishes its batch and exits: no orphan keeps consuming;
- a child that fails (exits with a status other than 0) while ``run`` serves is started again
  after a pause that doubles from 1 s to 30 s (back to 1 s once a child ran for a minute); one
  that exits with 0 was asked to stop (a signal from outside ``run``) and is not restarted;
- ``failure()`` is what ``run``'s ``/readyz`` reports (503): why no child runs, or, while one
  runs, what the child's own ``/readyz`` says (``probe``): still starting, or not ready (its
  runner stopped, the database or the log unreachable).

Nothing is lost or doubled by a restart: the projector's position is its checkpoint, committed
with its view rows.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

WATCH_S = 0.2
"""How often a child projector checks that its parent is alive."""
FIRST_PAUSE_S, LONGEST_PAUSE_S, HEALTHY_AFTER_S = 1.0, 30.0, 60.0


def command(parent_pid: int) -> list[str]:
    return [sys.executable, "-m", "services", "projector", "--exit-with-parent", str(parent_pid)]


class ProjectorProcess:
    """``start()`` the child and its supervisor thread; ``stop()`` ends both (idempotent)."""

    def __init__(self, env: Mapping[str, str] | None = None,
                 spawn: Callable[[list[str], Mapping[str, str]], subprocess.Popen[bytes]]
                 | None = None, probe: Callable[[], str | None] | None = None) -> None:  # fmt: skip
        self._env = dict(os.environ if env is None else env)
        self._spawn = spawn or _spawn
        self._probe = probe
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
        self._failure: str | None = None
        self._supervisor: threading.Thread | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        child = self._child
        return None if child is None else child.pid

    def failure(self) -> str | None:
        """Why no projector runs now, or why the running one is not ready (``probe``); None
        while it is."""
        failure = self._failure
        if failure is not None or self._probe is None:
            return failure
        return self._probe()

    def start(self) -> None:
        with self._lock:
            if self._supervisor is not None:
                return
            self._launch()
            self._supervisor = threading.Thread(target=self._supervise, name="projector-child",
                                                daemon=True)  # fmt: skip
            self._supervisor.start()

    def _launch(self) -> None:
        self._child = self._spawn(command(os.getpid()), self._env)
        self.starts += 1
        self._failure = None
        log.info("projector process %d started", self._child.pid)

    def _supervise(self) -> None:
        pause = FIRST_PAUSE_S
        while not self._stopping.is_set():
            child = self._child
            assert child is not None
            started = time.monotonic()
            code = child.wait()
            if self._stopping.is_set():
                return
            if code == 0:  # it was asked to stop (SIGTERM, SIGINT) by someone else than run
                self._failure = "the projector process stopped (status 0); not restarted"
                log.warning("%s", self._failure)
                return
            self._failure = f"the projector process exited with status {code}"
            log.error("%s; starting it again in %.1f s", self._failure, pause)
            if time.monotonic() - started >= HEALTHY_AFTER_S:
                pause = FIRST_PAUSE_S
            if self._stopping.wait(pause):
                return
            pause = min(pause * 2, LONGEST_PAUSE_S)
            with self._lock:
                if self._stopping.is_set():
                    return
                try:
                    self._launch()
                except OSError as exc:  # cannot even start it: keep trying, stay unready
                    log.error("the projector process could not start: %s", exc)
                    self._child = child  # waits again on the one that exited: returns at once

    def stop(self, timeout_s: float = 60.0) -> int | None:
        """SIGTERM the child (it finishes its batch), wait for it, SIGKILL after ``timeout_s``;
        its exit status (None when none was running)."""
        with self._lock:
            self._stopping.set()
            child = self._child
        if child is None:
            return None
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.error("the projector process did not stop in %.0f s: killed", timeout_s)
                child.kill()
                child.wait(10)
        if self._supervisor is not None:
            self._supervisor.join(timeout=5)
        return child.returncode


def _spawn(cmd: list[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    # Its own session: the terminal's Ctrl-C goes to ``run``, which stops the child in order.
    # Output goes where ``run``'s goes.
    return subprocess.Popen(cmd, env=dict(env), start_new_session=True)


def exit_with_parent(parent_pid: int, stop: threading.Event) -> threading.Thread:
    """In the child: set ``stop`` as soon as ``parent_pid`` is no longer this process's parent
    (it died, even by SIGKILL; the child was re-parented)."""

    def watch() -> None:
        while not stop.wait(WATCH_S):
            if os.getppid() != parent_pid:
                log.warning("the parent process %d is gone: stopping the projector", parent_pid)
                stop.set()
                return

    thread = threading.Thread(target=watch, name="parent-watch", daemon=True)
    thread.start()
    return thread


STARTING = "starting: the projector process does not answer on its /readyz yet"


def readyz_probe(url: str, timeout_s: float = 2.0) -> Callable[[], str | None]:
    """``failure()``'s look at a running child: None when its ``/readyz`` (at ``url``) answers
    200, ``STARTING`` while nothing answers there, else what it reports."""
    import httpx

    def probe() -> str | None:
        try:
            answer = httpx.get(url, timeout=timeout_s)
        except httpx.HTTPError:
            return STARTING
        if answer.status_code == 200:
            return None
        try:
            body = answer.json()
        except ValueError:
            body = {}
        parts = {k: body.get(k) for k in ("projector", "database", "log") if k in body}
        return f"the projector process is not ready ({answer.status_code}): {parts}"

    return probe
