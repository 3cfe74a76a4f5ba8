"""Reaching the API, visibly: when it does not answer, say so at once with its URL, print a
line per retry with the next delay, and give up with a clear error at a total deadline.

The SDK client is opened with ``max_reconnects=0``, so every failure comes back here at
once instead of after the SDK's own silent retries; this module retries, resuming a
stream after the last event it rendered.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar

from agentstream.cli.render import Renderer
from agentstream.cli.terminal import render_stream, wants_color
from agentstream.sdk import AgentStreamConnectionError, AgentStreamError

__all__ = ["DEFAULT_RETRY_FOR_S", "GaveUp", "Patience", "follow", "retrying"]

T = TypeVar("T")
#: how long the client commands keep trying an API that does not answer
DEFAULT_RETRY_FOR_S = 30.0
_SDK_PREFIX = re.compile(r"^gave up after \d+ retries: ")
_REPR = re.compile(r"^(\w+)\((['\"])(.*)\2\)$")


class GaveUp(Exception):
    """The API stayed unreachable (or failing) past the deadline."""


def _retryable(exc: AgentStreamError) -> bool:
    return isinstance(exc, AgentStreamConnectionError) or exc.status == 429


def _reason(exc: AgentStreamError) -> str:
    message = _SDK_PREFIX.sub("", exc.message)
    if exc.status == 0:  # a transport error's repr: "ConnectError('All connection attempts failed')"
        shown = _REPR.match(message)
        if shown is None:
            return message
        name, text = shown.group(1), shown.group(3)
        return f"{name}: {text}" if text else name
    return f"HTTP {exc.status} {exc.code}: {message}"


@dataclass
class Patience:
    """Retry pacing with a total deadline, restarted by every sign of progress.

    Delays double from ``initial_s`` up to ``max_s``; ``retry_for_s`` bounds the time
    spent failing in a row. Every failure writes one line to ``err``.
    """

    url: str
    err: IO[str]
    retry_for_s: float = DEFAULT_RETRY_FOR_S
    initial_s: float = 0.5
    max_s: float = 5.0
    failures: int = 0
    _since: float | None = field(default=None, repr=False)

    def progressed(self) -> None:
        self.failures, self._since = 0, None

    async def failed(self, exc: AgentStreamError) -> None:
        """Report ``exc`` and sleep until the next try, or raise :class:`GaveUp`."""
        now = time.monotonic()
        self._since = now if self._since is None else self._since
        left = self.retry_for_s - (now - self._since)
        if left <= 0:
            raise GaveUp(
                f"gave up: the API at {self.url} did not answer for {self.retry_for_s:g}s "
                f"({self.failures} retries; last error: {_reason(exc)}). Is it running? Start one "
                "with `agentstream api` (and a worker with `agentstream worker`), or point --url "
                "($AGENTSTREAM_URL) at it."
            )
        delay = min(self.max_s, self.initial_s * 2**self.failures, left)
        self.failures += 1
        what = "cannot reach the API" if exc.status == 0 else "the API is failing"
        print(
            f"agentstream: {what} at {self.url} ({_reason(exc)}); "
            f"retry {self.failures} in {delay:.1f}s, giving up in {left:.0f}s",
            file=self.err,
            flush=True,
        )
        await asyncio.sleep(delay)


async def retrying(patience: Patience, call: Callable[[], Awaitable[T]]) -> T:
    """``await call()``, retried visibly while the API is unreachable or overloaded."""
    while True:
        try:
            result = await call()
        except AgentStreamError as exc:
            if not _retryable(exc):
                raise
            await patience.failed(exc)
            continue
        patience.progressed()
        return result


async def _unseen(events: AsyncIterator[dict[str, Any]], seen: set[Any]) -> AsyncIterator[dict[str, Any]]:
    async for event in events:
        cursor = event.get("id")
        if cursor is not None and cursor in seen:
            continue  # already rendered before a reconnection
        if cursor is not None:
            seen.add(cursor)
        yield event


async def follow(
    patience: Patience,
    open_stream: Callable[[str | None], AsyncIterator[dict[str, Any]]],
    out: IO[str],
    err: IO[str],
    *,
    after: str | None = None,
) -> tuple[Renderer, list[dict[str, Any]]]:
    """Render ``open_stream(after)`` to the end, reopening it after the last event seen
    (``open_stream`` gets that cursor) whenever the API drops or does not answer."""
    renderer = Renderer(color=wants_color(out))
    seen: list[dict[str, Any]] = []
    cursors: set[Any] = set()
    while True:
        before = len(seen)
        try:
            events = _unseen(open_stream(after), cursors)
            return await render_stream(events, out, err, renderer=renderer, seen=seen)
        except AgentStreamError as exc:
            if not _retryable(exc):
                raise
            if len(seen) > before:
                patience.progressed()
            last = next((e["id"] for e in reversed(seen) if isinstance(e.get("id"), str)), None)
            after = last or after
            await patience.failed(exc)
