"""A small process supervisor for `manage.py runfleet`: start children in their own
process groups, file their output (one log per process; on the console too, prefixed,
only with ``echo``), restart crashes, stop them all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

COLOURS = ["\033[36m", "\033[35m", "\033[33m", "\033[32m", "\033[34m", "\033[91m"]
RESET = "\033[0m"


@dataclass
class Child:
    name: str
    cmd: list[str]
    env: dict[str, str]
    restart: bool = True
    proc: subprocess.Popen | None = None
    restarts: list[float] = field(default_factory=list)


class Supervisor:
    """Runs the fleet's processes; ``stop()`` leaves none of them behind."""

    MAX_RESTARTS_PER_MINUTE = 5
    TAIL_LINES = 5  # of a crashed process's log, on the console

    def __init__(self, log_dir: Path, console: TextIO = sys.stdout, colour: bool | None = None, echo: bool = False):
        self.log_dir = log_dir
        self.console = console
        self.echo = echo
        self.colour = console.isatty() if colour is None else colour
        self.children: list[Child] = []
        self._lock = threading.Lock()
        self.stopping = False
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, cmd: list[str], env: dict[str, str] | None = None, restart: bool = True) -> Child:
        child = Child(name=name, cmd=cmd, env={**os.environ, **(env or {})}, restart=restart)
        self.children.append(child)
        self._spawn(child)
        return child

    def _spawn(self, child: Child) -> None:
        child.proc = subprocess.Popen(
            child.cmd,
            env=child.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches only us; we stop the children in order
        )
        threading.Thread(target=self._pump, args=(child, child.proc), daemon=True).start()

    def _pump(self, child: Child, proc: subprocess.Popen) -> None:
        index = self.children.index(child) % len(COLOURS)
        prefix = f"{child.name:>9} | "
        if self.colour:
            prefix = f"{COLOURS[index]}{prefix}{RESET}"
        with open(self.log_dir / f"{child.name}.log", "ab") as log:
            for raw in iter(proc.stdout.readline, b""):
                log.write(raw)
                log.flush()
                if self.echo:
                    self.say(prefix + raw.decode(errors="replace").rstrip())

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def tail(self, name: str) -> list[str]:
        """The last lines of a process's log (what it said before it died)."""
        try:
            with open(self.log_path(name), "rb") as log:
                return [line.decode(errors="replace").rstrip() for line in deque(log, self.TAIL_LINES)]
        except OSError:
            return []

    def say(self, message: str) -> None:
        # tqdm.write moves a progress bar (the demo's, submit_job --watch's) out of the way.
        with self._lock:
            tqdm.write(message, file=self.console)

    def check(self) -> None:
        """Restart children that died on their own (a few times a minute at most)."""
        if self.stopping:
            return
        for child in self.children:
            code = child.proc.poll() if child.proc else None
            if code is None:
                continue
            now = time.monotonic()
            child.restarts = [t for t in child.restarts if now - t < 60]
            if not self.echo:  # its log is not on the console: show how it ended
                for line in self.tail(child.name):
                    self.say(f"{child.name:>9} | {line}")
            if not child.restart or len(child.restarts) >= self.MAX_RESTARTS_PER_MINUTE:
                raise RuntimeError(f"{child.name} exited with status {code}; see {self.log_path(child.name)}")
            self.say(f"{child.name} exited with status {code}; restarting it (log: {self.log_path(child.name)})")
            child.restarts.append(now)
            self._spawn(child)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM every child's process group (newest first), then SIGKILL what is left."""
        self.stopping = True
        for child in reversed(self.children):
            self._signal(child, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in reversed(self.children):
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for child in self.children:
            # The group too: a worker's pool processes must not outlive it.
            self._signal(child, signal.SIGKILL)
            if child.proc is not None:
                child.proc.wait()

    @staticmethod
    def _signal(child: Child, sig: int) -> None:
        if child.proc is None:
            return
        try:
            os.killpg(child.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
