"""Running one batch of tool calls concurrently, each call's outcome as an event's fields."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from agentstream.worker.llm import ReadyToolCall
from agentstream.worker.tools import ToolRegistry

__all__ = ["run_concurrently"]

logger = logging.getLogger(__name__)


async def _call_tool(registry: ToolRegistry, allowed: Sequence[str], call: ReadyToolCall) -> dict[str, Any]:
    """The ``tool_result``/``tool_error`` fields of one call; never raises but cancellation."""
    base = {"tool_name": call.tool_name, "tool_call_id": call.tool_call_id}
    if call.error is not None or call.parameters is None:
        return {"type": "tool_error", **base, "error": call.error or "the tool call has no arguments"}
    if call.tool_name not in allowed:
        error = f"tool {call.tool_name!r} is not available to this agent; available: {', '.join(allowed)}"
        return {"type": "tool_error", **base, "error": error}
    try:
        outcome = await registry.call(call.tool_name, call.parameters)
    except Exception as exc:  # the registry promises not to raise; a tool must never kill the agent
        logger.exception("tool %r raised through the registry", call.tool_name)
        return {"type": "tool_error", **base, "error": f"tool {call.tool_name!r} failed: {exc!r}"}
    if outcome.success:
        return {"type": "tool_result", **base, "result": outcome.result, "success": True}
    return {"type": "tool_error", **base, "error": outcome.error or "the tool failed"}


async def run_concurrently(
    registry: ToolRegistry, allowed: Sequence[str], calls: Sequence[ReadyToolCall]
) -> AsyncGenerator[dict[str, Any], None]:
    """Run ``calls`` in a TaskGroup and yield each one's fields in completion order.

    The TaskGroup lives in its own task: a generator must not yield from inside a
    TaskGroup, whose exit would wrap the ``GeneratorExit`` of a consumer that stops early.
    Stopping early cancels the calls still running.
    """
    if not calls:
        return
    done: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def one(call: ReadyToolCall) -> None:
        done.put_nowait(await _call_tool(registry, allowed, call))

    async def all_calls() -> None:
        async with asyncio.TaskGroup() as group:
            for call in calls:
                group.create_task(one(call), name=f"tool:{call.tool_name}:{call.tool_call_id}")

    runner = asyncio.create_task(all_calls(), name="tool-batch")
    try:
        for _ in calls:
            yield await _next_result(done, runner)
        await runner
    finally:
        if not runner.done():
            runner.cancel()
            await asyncio.wait({runner})


async def _next_result(done: asyncio.Queue[dict[str, Any]], runner: asyncio.Task[None]) -> dict[str, Any]:
    """The next finished call, or the exception that ended the batch without one."""
    if runner.done():
        runner.result()
        return done.get_nowait()  # every call put its fields before the batch could end
    getter = asyncio.ensure_future(done.get())
    try:
        await asyncio.wait({getter, runner}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not getter.done():
            getter.cancel()
    if getter.done() and not getter.cancelled():
        return getter.result()
    runner.result()
    return done.get_nowait()
