"""The container image's ``HEALTHCHECK``: ``python -m agentstream.cli.probe``.

One image runs every role, so the probe reads the role from the container's main command
(``/proc/1/cmdline``, or the arguments given here) and checks what that role serves:

- ``agentstream api [--port N]``: ``GET /healthz`` on ``127.0.0.1:N`` (default 8000);
- ``agentstream scripted-llm [--port N]``: the same on N (default 8900);
- ``agentstream worker``: what ``agentstream worker --check`` checks (``REDIS_URL``, and
  ``AGENTSTREAM_QUEUE_URL`` if set, answer ``PING``; :mod:`agentstream.cli.healthcheck`).

Exit status 0 is healthy, 1 unhealthy (with the reason on stderr), as Docker expects.
Standard library only, each check bounded by ``TIMEOUT_S``.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from agentstream.cli.healthcheck import ping, redacted

__all__ = ["TIMEOUT_S", "check", "main", "role_of"]

TIMEOUT_S = 3.0
_DEFAULT_PORTS = {"api": 8000, "scripted-llm": 8900}


def role_of(argv: Sequence[str]) -> tuple[str, int | None]:
    """The role of a main command (``api``, ``worker``, ``scripted-llm``) and its port."""
    role = next((arg for arg in argv if arg in ("api", "worker", "scripted-llm")), "api")
    port = _DEFAULT_PORTS.get(role)
    if "--port" in argv[:-1]:
        port = int(argv[list(argv).index("--port") + 1])
    return role, port


def _main_command() -> list[str]:
    raw = Path("/proc/1/cmdline").read_bytes()
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def check(role: str, port: int | None, redis_url: str) -> str | None:
    """``None`` when healthy, else why not."""
    if role == "worker":
        try:
            ping(redis_url, TIMEOUT_S)
        except (OSError, ValueError) as exc:
            return f"Redis at {redacted(redis_url)} is unreachable: {exc}"
        return None
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            status = response.status
    except OSError as exc:
        return f"{url}: {exc}"
    return None if status == 200 else f"{url} answered {status}"


def main(argv: Sequence[str] | None = None) -> int:
    """Probe the role of ``argv`` (default: the container's main command)."""
    role, port = role_of(list(argv) if argv is not None else _main_command())
    problem = check(role, port, os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    if problem is not None:
        print(f"unhealthy {role}: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or None))
