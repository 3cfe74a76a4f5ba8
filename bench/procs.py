"""Child processes of the benches: start, read, stop, and their CPU and memory from /proc."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kb(pid: int) -> int:
    """VmRSS of process ``pid`` in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def redis_cpu_s(redis: Any) -> float:
    info = await redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def read_line(proc: asyncio.subprocess.Process, timeout_s: float) -> str:
    """The next stdout line of a child, within ``timeout_s``; fails if the child ended."""
    assert proc.stdout is not None
    async with asyncio.timeout(timeout_s):
        line = await proc.stdout.readline()
    if not line:
        raise RuntimeError(f"child {proc.pid} exited ({await proc.wait()}) before answering")
    return line.decode().strip()


async def stop_child(proc: asyncio.subprocess.Process) -> None:
    """Terminate a child this bench started, then kill it if it lingers."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            async with asyncio.timeout(5):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await asyncio.wait_for(proc.wait(), 5)


async def spawn(*args: str, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 26,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def render(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(str(row[c])) for row in [head, *rows]) for c in range(len(head))]
    lines = [
        " | ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)) for row in [head, *rows]
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def api_redis_sockets(pid: int, redis_port: int) -> int:
    """TCP connections from process ``pid`` to ``redis_port`` (socket inodes vs /proc/net/tcp)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    count = 0
    for table_name in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table_name}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            cols = line.split()
            if int(cols[2].rsplit(":", 1)[1], 16) == redis_port and cols[9] in inodes:
                count += 1
    return count


async def wait_healthy(base: str, proc: asyncio.subprocess.Process, timeout_s: float = 30) -> None:
    """Wait until the API at ``base`` answers ``/healthz`` (its process exiting first raises)."""
    import httpx

    async with httpx.AsyncClient(base_url=base, timeout=2) as http, asyncio.timeout(timeout_s):
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await http.get("/healthz")).status_code == 200:
                    return
            if proc.returncode is not None:
                raise RuntimeError(f"the API process exited with {proc.returncode}")
            await asyncio.sleep(0.1)
