"""Projector processes the fault tests start, signal and read the output of
(``python -m services projector``, through ``tests.faults.traced_projector``)."""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from services.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
_ASSIGNED = re.compile(r"assigned partitions (\[[0-9, ]*\]), resuming at (\{[0-9:, ]*\})")
_REBALANCE = re.compile(r"(assigned partitions|partitions revoked):? (\[[0-9, ]*\])")


def projector_env(settings: Settings, batch: int) -> dict[str, str]:
    return {
        **os.environ,
        "ONEVOICE_LOG_BACKEND": "kafka",
        "ONEVOICE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ONEVOICE_DATABASE_URL": settings.database_url,
        "ONEVOICE_TOPIC": settings.topic,
        "ONEVOICE_PARTITIONS": str(settings.partitions),
        "ONEVOICE_PROJECTOR_GROUP": settings.projector_group,
        "ONEVOICE_PROJECTOR_BATCH": str(batch),
        "ONEVOICE_KAFKA_SESSION_TIMEOUT_S": str(settings.kafka_session_timeout_s),
        "ONEVOICE_PROJECTOR_PORT": "0",  # several projectors on one host: any free port each
    }


class Projector:
    """One projector subprocess; its stdout and stderr go to ``output``."""

    def __init__(self, settings: Settings, output: Path, batch: int) -> None:
        self.output = output
        with output.open("ab") as sink:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.faults.traced_projector"], cwd=ROOT,
                env=projector_env(settings, batch), stdout=sink, stderr=subprocess.STDOUT,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, and reap it."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def terminate(self, timeout_s: float = 60) -> int:
        """SIGTERM (finish the batch, leave the group); the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)
            raise AssertionError(
                f"projector {self.pid} ignored SIGTERM for {timeout_s} s\n{self.tail()}"
            ) from None

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def tail(self) -> str:
        """The end of the output; of a live process, with its threads' stacks appended, and a
        note when its last rebalance event revoked partitions and none were assigned since."""
        if self.alive():
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(0.5)
        output = self.log()
        note = ""
        if self.last_rebalance() == ("partitions revoked", True):
            note = (
                "\nNOTE: this projector's last rebalance event revoked its partitions and no"
                " assignment followed: it holds no partition and applies nothing. Seen with"
                " kafka-python 3.0.12 when a rebalance's SyncGroup answer arrives after the poll"
                " that sent it timed out: the group counts the member as synced, the client"
                " never installs the assignment, and no further rebalance comes."
            )
        return f"---- last output of projector {self.pid} ----\n{output[-6000:]}{note}"

    def last_rebalance(self) -> tuple[str, bool] | None:
        """The last rebalance event logged ("assigned partitions" or "partitions revoked") and
        whether it named any partition; None before the first."""
        events = _REBALANCE.findall(self.log())
        return (events[-1][0], events[-1][1] != "[]") if events else None

    def holds_partitions(self) -> bool:
        return self.last_rebalance() == ("assigned partitions", True)

    def assignments(self) -> list[tuple[list[int], dict[int, int]]]:
        """Every ``(partitions, resume offsets)`` this process logged, oldest first."""
        return [
            (ast.literal_eval(parts), ast.literal_eval(resume))
            for parts, resume in _ASSIGNED.findall(self.log())
        ]
