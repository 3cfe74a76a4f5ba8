"""A raw SSE client for the scenarios: reads bytes, keeps only complete frames, and can
hang up after any byte, mid-frame included."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx


@dataclass
class Frame:
    id: str | None = None
    event: str | None = None
    data: bytes | None = None


@dataclass
class Read:
    """One connection: its complete frames; ``ended``: the server closed the response."""

    frames: list[Frame] = field(default_factory=list)
    ended: bool = False
    status: int = 0
    bytes: int = 0


def parse_frame(raw: bytes) -> Frame | None:
    frame = Frame()
    for line in raw.split(b"\n"):
        if not line or line.startswith(b":"):
            continue
        name, _, value = line.partition(b":")
        value = value[1:] if value.startswith(b" ") else value
        if name == b"id":
            frame.id = value.decode()
        elif name == b"event":
            frame.event = value.decode()
        elif name == b"data":
            frame.data = value
    return frame if frame.data is not None else None


async def read_sse(
    client: httpx.AsyncClient,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    hang_up_after: int | None = None,
    on_frame: Callable[[Frame], None] | None = None,
) -> Read:
    """Read frames until the server ends the response or ``hang_up_after`` bytes came;
    ``on_frame`` sees each complete frame as it arrives."""
    read = Read()

    def add(raw: bytes) -> None:
        if (frame := parse_frame(raw)) is not None:
            read.frames.append(frame)
            if on_frame is not None:
                on_frame(frame)

    buffer = b""
    async with client.stream("GET", url, headers=headers, params=params) as response:
        read.status = response.status_code
        if response.status_code != 200:
            await response.aread()
            return read
        async for chunk in response.aiter_raw():
            if hang_up_after is not None and read.bytes + len(chunk) >= hang_up_after:
                chunk = chunk[: hang_up_after - read.bytes]
                buffer += chunk
                read.bytes += len(chunk)
                break
            buffer += chunk
            read.bytes += len(chunk)
            while b"\n\n" in buffer:
                raw, buffer = buffer.split(b"\n\n", 1)
                add(raw)
        else:
            read.ended = True
        while b"\n\n" in buffer:  # complete frames of the last chunk before the hang-up
            raw, buffer = buffer.split(b"\n\n", 1)
            add(raw)
    return read
