"""Worker and API child processes of the tests, and the environment they start with.

Every helper signals only the process it started (tracked by its ``Popen``), waits with a
deadline, and reaps what it started. Output goes to a log file in the test's tmp dir.
None is stopped with SIGINT (``stop`` terminates, ``kill`` kills), so none needs
``preexec_fn=default_sigint``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Protocol

import httpx

from tests.redis_server import free_port

REPO = Path(__file__).resolve().parents[1]


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
    """One child process started in ``cwd``, with its output in a log file."""

    def __init__(self, args: list[str], env: Mapping[str, str], log_path: Path, cwd: Path = REPO) -> None:
        self.log_path = log_path
        self._log: IO[bytes] = log_path.open("wb")
        self.proc = subprocess.Popen(args, cwd=cwd, env=dict(env), stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss_kb(self) -> int:
        return rss_kb(self.pid)

    def assert_running(self) -> None:
        """Fail with the child's log if it has exited."""
        assert self.proc.poll() is None, f"{type(self).__name__} exited early:\n{self.log()}"

    async def exited(self, timeout_s: float) -> int:
        """The exit code; raises ``subprocess.TimeoutExpired`` after ``timeout_s``."""
        return await asyncio.to_thread(self.proc.wait, timeout_s)

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
    """A worker: ``python -m agentstream.worker``; or, given ``app="module:attr"``,
    ``agentstream worker --app module:attr`` as a user runs it in their project's folder
    (``cwd``: the module is found there)."""

    def __init__(
        self, env: Mapping[str, str], log_path: Path, *, app: str | None = None, cwd: Path = REPO
    ) -> None:
        if app is None:
            args = [sys.executable, "-m", "agentstream.worker"]
        else:
            args = [sys.executable, "-m", "agentstream.cli", "worker", "--app", app]
        super().__init__(args, env, log_path, cwd)

    async def ready(self, timeout_s: float = 30.0) -> None:
        """Once the worker logged its start (it serves its queue from then on)."""
        async with asyncio.timeout(timeout_s):
            while "agentstream worker" not in self.log():
                self.assert_running()
                await asyncio.sleep(0.05)


class ApiProcess(Child):
    """``agentstream api`` (uvicorn) on a free loopback port."""

    def __init__(self, env: Mapping[str, str], log_path: Path, log_level: str = "warning") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [sys.executable, "-m", "agentstream.cli", "api", "--host", "127.0.0.1", "--port", str(self.port),
                "--log-level", log_level]  # fmt: skip
        super().__init__(args, env, log_path)

    async def ready(self, timeout_s: float = 30.0) -> None:
        """Once ``/healthz`` answers 200."""
        async with asyncio.timeout(timeout_s), httpx.AsyncClient(timeout=1.0) as client:
            while True:
                self.assert_running()
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.05)


class Stoppable(Protocol):
    def stop(self) -> None: ...


@contextlib.contextmanager
def stopping(*children: Stoppable) -> Iterator[None]:
    """Stop every child on the way out, whatever happened."""
    try:
        yield
    finally:
        for child in children:
            child.stop()
