"""Running one batch of tool calls for an agent: concurrently, each with its context.

:func:`run_tool_batch` yields event fields (``type`` included) in the order things happen:
the ``custom`` events a tool emits through its :class:`~.context.ToolContext`, and each
call's outcome as it finishes. A failed call yields ``tool_result`` with ``success:
false`` and the ``error`` (what the seeds' consumers branch on), then ``tool_error``
(what this protocol's consumers read); a successful one yields ``tool_result`` alone.
Nothing here raises for a failing tool: the model is told, the task goes on. A call
that asked a person (``ctx.ask``) has no outcome: it yields its ``input_required`` (the
first time) and joins the batch's ``waiting`` list; the agent then waits for the answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

import orjson

from agentstream.worker.app.context import AskInterrupt, CallerInfo
from agentstream.worker.llm import ReadyToolCall
from agentstream.worker.observability import observed_tool
from agentstream.worker.tools import ToolRegistry

__all__ = ["dawp_call_key", "outcome_events", "run_tool_batch", "split_recorded"]

logger = logging.getLogger(__name__)

Fields = dict[str, Any]


def outcome_events(call: ReadyToolCall, *, result: Any = None, error: str | None = None) -> list[Fields]:
    """The events of one finished call: ``tool_result``, or its failed twin and ``tool_error``."""
    base = {"tool_name": call.tool_name, "tool_call_id": call.tool_call_id}
    if error is None:
        return [{"type": "tool_result", **base, "result": result, "success": True}]
    return [
        {"type": "tool_result", **base, "result": None, "success": False, "error": error},
        {"type": "tool_error", **base, "error": error},
    ]


def dawp_call_key(step_id: Any, tool_name: str, parameters: Any) -> str:
    """Identifies a workflow step's tool call across attempts (its id is the model's)."""
    return f"{step_id}|{tool_name}|{orjson.dumps(parameters, option=orjson.OPT_SORT_KEYS).decode()}"


def split_recorded(
    calls: Sequence[ReadyToolCall], recorded: Mapping[str, Mapping[str, Any]], step_id: Any
) -> tuple[list[tuple[ReadyToolCall, list[Fields]]], list[ReadyToolCall]]:
    """The calls of a workflow step an earlier attempt already made (with the outcome
    events to replay under their new ids), and the calls still to run."""
    replayed: list[tuple[ReadyToolCall, list[Fields]]] = []
    pending: list[ReadyToolCall] = []
    for call in calls:
        found = recorded.get(dawp_call_key(step_id, call.tool_name, call.parameters))
        if found is None or call.parameters is None:
            pending.append(call)
        else:
            replayed.append(
                (call, outcome_events(call, result=found.get("result"), error=found.get("error")))
            )
    return replayed, pending


async def _call_tool(
    registry: ToolRegistry, allowed: Sequence[str], call: ReadyToolCall, caller: CallerInfo, sink: Any,
    scope: Mapping[str, Any] | None, waiting: list[dict[str, str]],
) -> list[Fields]:  # fmt: skip
    """The outcome events of one call, or the announcement of the question it asked (the
    call then joins ``waiting``); never raises but cancellation."""
    if call.error is not None or call.parameters is None:
        return outcome_events(call, error=call.error or "the tool call has no arguments")
    if call.tool_name not in allowed:
        available = ", ".join(allowed) or "none"
        return outcome_events(
            call, error=f"tool {call.tool_name!r} is not available to this agent; available: {available}"
        )
    context = caller.context(call.tool_name, call.tool_call_id, sink, scope)
    try:
        outcome = await observed_tool(
            call.tool_name, call.tool_call_id, registry.call(call.tool_name, call.parameters, context)
        )
    except AskInterrupt:
        outcome = None
    except Exception as exc:  # the registry promises not to raise; a tool must never kill the agent
        logger.exception("tool %r raised through the registry", call.tool_name)
        return outcome_events(call, error=f"tool {call.tool_name!r} failed: {exc!r}")
    finally:
        context.close()
    if context.asked is not None:  # even if the tool swallowed the interrupt: it waits
        waiting.append({"tool_call_id": call.tool_call_id, "kind": "question"})
        if not context.asked.announce:
            return []
        return [{"type": "input_required", "tool_call_id": call.tool_call_id, "prompt": context.asked.prompt,
                 "tool_name": call.tool_name}]  # fmt: skip
    if outcome is None:  # unreachable: only an ask interrupts a call
        return outcome_events(call, error="the tool stopped without an outcome")
    if outcome.success:
        return outcome_events(call, result=outcome.result)
    return outcome_events(call, error=outcome.error or "the tool failed")


async def run_tool_batch(
    registry: ToolRegistry,
    allowed: Sequence[str],
    calls: Sequence[ReadyToolCall],
    caller: CallerInfo,
    scope: Mapping[str, Any] | None = None,
    waiting: list[dict[str, str]] | None = None,
) -> AsyncGenerator[Fields, None]:
    """Run ``calls`` in a TaskGroup; yield custom events and outcomes as they happen.
    Calls that asked a person join ``waiting`` (``{"tool_call_id", "kind"}`` items).

    The TaskGroup lives in its own task: a generator must not yield from inside a
    TaskGroup, whose exit would wrap the ``GeneratorExit`` of a consumer that stops early.
    Stopping early cancels the calls still running.
    """
    if not calls:
        return
    done: asyncio.Queue[Fields | None] = asyncio.Queue()
    asked = waiting if waiting is not None else []

    async def one(call: ReadyToolCall) -> None:
        for fields in await _call_tool(registry, allowed, call, caller, done.put_nowait, scope, asked):
            done.put_nowait(fields)
        done.put_nowait(None)  # this call is over

    async def all_calls() -> None:
        async with asyncio.TaskGroup() as group:
            for call in calls:
                group.create_task(one(call), name=f"tool:{call.tool_name}:{call.tool_call_id}")

    runner = asyncio.create_task(all_calls(), name="tool-batch")
    try:
        remaining = len(calls)
        while remaining:
            fields = await _next(done, runner)
            if fields is None:
                remaining -= 1
            else:
                yield fields
        await runner
    finally:
        if not runner.done():
            runner.cancel()
            await asyncio.wait({runner})


async def _next(done: asyncio.Queue[Fields | None], runner: asyncio.Task[None]) -> Fields | None:
    """The next item of the batch, or the exception that ended the batch without one."""
    if runner.done() and done.empty():
        runner.result()
    if not done.empty():
        return done.get_nowait()
    getter = asyncio.ensure_future(done.get())
    try:
        await asyncio.wait({getter, runner}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not getter.done():
            getter.cancel()
    if getter.done() and not getter.cancelled():
        return getter.result()
    if done.empty():
        runner.result()
        raise RuntimeError("the tool batch ended before every call reported")  # unreachable
    return done.get_nowait()
