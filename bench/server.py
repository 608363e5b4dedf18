"""The real service as a separate process (``python -m services <role>``) on a free port.

A subprocess keeps the server's GIL apart from the load generator, as in production. With
``profile_to`` set, the server runs under cProfile (every thread, see bench.profserver) and
writes its stats there on shutdown.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from services.core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def settings_env(settings: Settings) -> dict[str, str]:
    """The ONEVOICE_* variables that reproduce ``settings`` in another process."""
    return settings.environment()


class AppProcess:
    """``with AppProcess(settings, role, log) as base_url:`` — started, ready, then stopped."""

    def __init__(
        self, settings: Settings, role: str, log_path: Path, profile_to: Path | None = None
    ) -> None:
        self.port = free_port()
        self.settings = settings.model_copy(update={"host": "127.0.0.1", "port": self.port})
        self.role = "run" if role == "all" else role
        self.log_path = log_path
        self.profile_to = profile_to
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def __enter__(self) -> str:
        cmd = [sys.executable, "-m", "services", self.role]
        if self.profile_to is not None:
            cmd = [sys.executable, "-m", "bench.profserver", str(self.profile_to), self.role]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, env=settings_env(self.settings), stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 90
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.role} server exited; see {self.log_path}")
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    return base
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(f"{self.role} server did not start; see {self.log_path}")
            time.sleep(0.1)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)  # uvicorn: graceful shutdown, lifespan hooks
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
