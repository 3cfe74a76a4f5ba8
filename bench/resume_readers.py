"""The producer child and the two agentstream readers of ``resume_peer_bench``: the
library's ``Reader.tail`` and the SSE API, each disconnecting and resuming from its cursor,
with the checks of what they received (lost, duplicated, missing)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import httpx

from agentstream.streams import Reader, StreamsSettings, TaskStore, create_redis
from agentstream.streams.keys import public_task_id
from bench.sse_load import PREFIX  # the API process of api_bench serves this prefix
from bench.streams_bench import percentiles

# --------------------------------------------------------------------------- children


async def writer_child(url: str, task_id: str, events: int, interval_ms: float, takeover: bool) -> None:
    """Produce tokens ``i`` for i in range(events) at a pace, then ``completed``.

    ``takeover``: open a new attempt (fencing the previous one), append ``retry`` and
    continue after the last index stored, as a worker does after the lease ran out."""
    settings = StreamsSettings(redis_url=url, prefix=PREFIX, maxlen=10_000_000)
    redis = create_redis(settings)
    store = TaskStore(redis, settings)
    attempt = await store.open_attempt(task_id)
    start = 0
    if takeover:
        for _, fields in await redis.xrevrange(settings.keys.events(task_id), count=50):
            if fields.get("t") == "token":
                start = int(fields["d"]) + 1
                break
    print("ready", flush=True)
    if (await asyncio.to_thread(sys.stdin.readline)).strip() != "go":
        return
    t0 = time.perf_counter()
    due = t0
    async with store.writer(attempt) as out:
        if takeover:
            out.append_nowait({"type": "retry", "reason": "bench: the previous producer was killed"})
        for i in range(start, events):
            out.append_nowait({"type": "token", "content": str(i)})
            due += interval_ms / 1000
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        out.append_nowait({"type": "completed", "success": True, "status": "succeeded", "execution_time": 0})
    await redis.aclose()
    print(
        json.dumps(
            {"produced": events - start, "first_index": start, "wall_ms": (time.perf_counter() - t0) * 1000}
        ),
        flush=True,
    )


# --------------------------------------------------------------------------- readers


class Check:
    """Token indices must arrive as 0, 1, 2, ... exactly once; seqs dense."""

    def __init__(self) -> None:
        self.expected = 0
        self.received = self.lost = self.duplicated = self.out_of_order = 0
        self.last_seq = 0
        self.seq_gaps = self.seq_dups = 0
        self.ended = False

    def event(self, event: dict[str, Any]) -> bool:
        """Account one event; True when it is a token."""
        seq = int(event.get("seq", 0))
        if seq:
            if seq <= self.last_seq:
                self.seq_dups += 1
            elif seq > self.last_seq + 1:
                self.seq_gaps += seq - self.last_seq - 1
            self.last_seq = max(self.last_seq, seq)
        if event["type"] == "completed":
            self.ended = True
        if event["type"] != "token":
            return False
        i = int(event["content"])
        self.received += 1
        if i == self.expected:
            self.expected += 1
        elif i < self.expected:
            self.duplicated += 1
        else:
            self.lost += i - self.expected
            self.out_of_order += 1
            self.expected = i + 1
        return True

    def summary(self, events: int) -> dict[str, Any]:
        return {"received": self.received, "lost": self.lost, "duplicated": self.duplicated,
                "out_of_order": self.out_of_order, "missing_at_end": events - self.expected,
                "seq_gaps": self.seq_gaps, "seq_duplicates": self.seq_dups, "ended": self.ended}  # fmt: skip


async def library_reader(
    reader: Reader, task_id: str, check: Check, reconnects: int, every: int, pause_ms: float, stall_s: float,
    cursor: str = "0",
) -> dict[str, Any]:  # fmt: skip
    """Read with ``Reader.tail``, disconnecting after every ``every`` tokens ``reconnects`` times."""
    resumes: list[float | None] = []
    stalled = False
    for connection in range(reconnects + 1):
        begin, first, got = time.perf_counter(), None, 0
        limit = every if connection < reconnects else sys.maxsize
        stream = reader.tail(task_id, after=cursor, idle_timeout_s=stall_s)
        try:
            async for c, event in stream:
                cursor = c if event["type"] != "gap" else cursor
                if check.event(event):
                    got += 1
                    if first is None:
                        first = (time.perf_counter() - begin) * 1000
                if check.ended or got >= limit:
                    break
        finally:
            await stream.aclose()  # the disconnect
        if connection:
            resumes.append(first)
        if check.ended:
            break
        if got < limit:  # the stream went silent for stall_s
            stalled = True
            break
        await asyncio.sleep(pause_ms / 1000)
    return {"resumes": resumes, "reconnects": len(resumes), "stalled": stalled, "cursor": cursor}


async def sse_reader(
    base: str, task_id: str, check: Check, reconnects: int, every: int, pause_ms: float, stall_s: float
) -> dict[str, Any]:
    """The same through the API: each connection a new HTTP request with ``Last-Event-ID``."""
    resumes: list[float | None] = []
    cursor: str | None = None
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(10, read=stall_s)) as http:
        for connection in range(reconnects + 1):
            begin, first, got = time.perf_counter(), None, 0
            limit = every if connection < reconnects else sys.maxsize
            headers = {"accept": "text/event-stream", **({"last-event-id": cursor} if cursor else {})}
            frame_id: str | None = None
            try:
                async with http.stream(
                    "GET", f"/v1/tasks/{public_task_id(task_id)}/events", headers=headers
                ) as resp:
                    resp.raise_for_status()
                    async for line in resp.aiter_lines():
                        if line.startswith("id:"):
                            frame_id = line[3:].strip()
                        elif line.startswith("data:"):
                            event = json.loads(line[5:])
                            if frame_id:
                                cursor = frame_id
                            frame_id = None
                            if check.event(event):
                                got += 1
                                if first is None:
                                    first = (time.perf_counter() - begin) * 1000
                            if check.ended or got >= limit:
                                break
            except httpx.ReadTimeout:
                pass
            if connection:
                resumes.append(first)
            if check.ended or got < limit:
                break
            await asyncio.sleep(pause_ms / 1000)
    return {"resumes": resumes, "reconnects": len(resumes)}


def resume_stats(resumes: list[float | None]) -> dict[str, Any]:
    got = [r for r in resumes if r is not None]
    return {
        "count": len(resumes),
        "without_event": len(resumes) - len(got),
        **(percentiles(got) if got else {}),
    }
