"""Child processes of the reliability scenarios: workers, an API, Redis servers.

Every helper signals only the process it started (tracked by its ``Popen``), waits with a
deadline, and reaps what it started. Output goes to a log file in the test's tmp dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

import httpx

from tests.redis_server import free_port, start_redis

REPO = Path(__file__).resolve().parents[2]


def child_env(redis_url: str, prefix: str, llm_url: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a worker or API child: ours minus any agentstream/OpenAI setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTSTREAM_", "OPENAI_", "REDIS_"))}
    env.update(
        REDIS_URL=redis_url,
        AGENTSTREAM_PREFIX=prefix,
        AGENTSTREAM_POLL_DELAY_S="0.1",
        AGENTSTREAM_SHUTDOWN_GRACE_S="1",
        AGENTSTREAM_RETRY_BACKOFF_S="0.1",
        AGENTSTREAM_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    if llm_url:
        env["OPENAI_BASE_URL"] = llm_url
    env.update(extra)
    return env


def rss_kb(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Child:
    """One child process with its output in a log file."""

    def __init__(self, args: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.proc = subprocess.Popen(
            args, cwd=REPO, env=dict(env), stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_kb(self) -> int:
        return rss_kb(self.pid)

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """Terminate (then kill) if still running, reap, close the log. Idempotent."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if not self._log.closed:
            self._log.close()


class WorkerProcess(Child):
    """``python -m worker``."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        super().__init__([sys.executable, "-m", "agentstream.worker"], env, log_path)

    async def ready(self, timeout_s: float = 20.0) -> None:
        async with asyncio.timeout(timeout_s):
            while "agentstream worker" not in self.log():
                assert self.proc.poll() is None, f"worker exited early:\n{self.log()}"
                await asyncio.sleep(0.05)


class ApiProcess(Child):
    """``agentstream api`` (uvicorn) on a free loopback port."""

    def __init__(self, env: Mapping[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "agentstream.cli", "api", "--host", "127.0.0.1", "--port", str(self.port),
                "--log-level", "warning"]  # fmt: skip
        super().__init__(args, env, log_path)

    async def ready(self, timeout_s: float = 20.0) -> None:
        async with asyncio.timeout(timeout_s), httpx.AsyncClient(timeout=1.0) as client:
            while True:
                assert self.proc.poll() is None, f"API exited early:\n{self.log()}"
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.05)


class RedisProcess:
    """A dedicated ``redis-server`` on a fixed port and data dir, killable and restartable."""

    def __init__(self, workdir: Path, *extra: str) -> None:
        self.workdir = workdir
        self.extra = extra
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = start_redis(self.port, str(self.workdir), *self.extra)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@contextlib.contextmanager
def stopping(*children: Child | RedisProcess) -> Iterator[None]:
    """Stop every child on the way out, whatever happened."""
    try:
        yield
    finally:
        for child in children:
            child.stop()


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def monotonic_ms() -> int:
    return int(time.monotonic() * 1000)
