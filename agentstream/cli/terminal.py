"""Writing a live stream to the terminal: the renderer's text on stdout as it arrives, a
spinner status line on stderr only when stderr is a terminal (stdout stays clean for pipes).
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Mapping
from typing import IO, Any

from agentstream.cli.render import DIM, RESET, Renderer, status_of

__all__ = ["StatusLine", "is_tty", "render_stream", "wants_color"]

_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def is_tty(stream: IO[str]) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


def wants_color(stream: IO[str], env: Mapping[str, str] | None = None) -> bool:
    """Colours on a terminal, unless ``NO_COLOR`` is set (https://no-color.org)."""
    return is_tty(stream) and "NO_COLOR" not in (os.environ if env is None else env)


class StatusLine:
    """A one-line spinner on a terminal stream; silent when the stream is not a TTY.

    It is shown only while the output is at the start of a line (so it never tears a
    streamed sentence apart) and cleared before any output is written.
    """

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self.enabled = is_tty(stream)
        self.text = ""
        self._shown = False
        self._frames = itertools.cycle(_SPINNER)

    def update(self, text: str | None) -> None:
        """Show ``text`` from the next tick on (``None`` keeps the current text)."""
        if text is not None:
            self.text = text

    def tick(self, visible: bool) -> None:
        if not self.enabled:
            return
        if not visible or not self.text:
            self.clear()
            return
        self._stream.write(f"\r\x1b[K{DIM}{next(self._frames)} {self.text}{RESET}")
        self._stream.flush()
        self._shown = True

    def clear(self) -> None:
        if self.enabled and self._shown:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
            self._shown = False


async def render_stream(
    events: AsyncIterator[dict[str, Any]],
    out: IO[str],
    err: IO[str],
    *,
    renderer: Renderer | None = None,
    seen: list[dict[str, Any]] | None = None,
) -> tuple[Renderer, list[dict[str, Any]]]:
    """Write a stream to ``out`` as it arrives (status line on ``err`` if a TTY).

    Pass the same ``renderer`` and ``seen`` again to continue after a reconnection: the
    output goes on where it stopped. Returns them.
    """
    renderer = renderer if renderer is not None else Renderer(color=wants_color(out))
    seen = seen if seen is not None else []
    status = StatusLine(err)
    status.update("connecting")

    async def spin() -> None:
        while True:
            status.tick(renderer.at_line_start)
            await asyncio.sleep(0.1)

    spinner = asyncio.create_task(spin()) if status.enabled else None
    try:
        async for event in events:
            seen.append(event)
            status.update(status_of(event))
            text = renderer.feed(event)
            if text:
                status.clear()
                out.write(text)
                out.flush()
    finally:
        if spinner is not None:
            spinner.cancel()
            await asyncio.wait([spinner])
        status.clear()
    return renderer, seen
