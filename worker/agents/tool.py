"""ToolAgent: one model turn that may call tools, the tools, then the final answer.

Events: ``started``, ``token``*/``tool_call_delta``*, ``tool_calls_ready``, per call
``tool_call`` then ``tool_result``|``tool_error`` (in completion order), one more model
turn for the answer, ``usage`` per model call, ``result``. The worker writes ``completed``.
Messages sent while the task runs are given to the model before its next turn
(``input_delivered``); one that came as it answered gets one more answering turn.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import Any, ClassVar

from agentstream.worker.agents.base import BaseAgent, EventStream, RunContext
from agentstream.worker.llm import ReadyToolCall

__all__ = ["ToolAgent"]


class ToolAgent(BaseAgent):
    """A single round of tool use: ask, call every tool requested, answer."""

    kind: ClassVar[str] = "tool"

    async def _run(self, run: RunContext) -> EventStream:
        async with aclosing(self.start(run)) as stream:
            async for event in stream:
                yield event
        resume = run.resume
        if resume is not None and resume.completed_turns > 0:
            # The tool turn was recorded: only its unfinished calls remain to run.
            async with aclosing(self._tools(run, resume.open_batch, resume.recorded_results)) as stream:
                async for event in stream:
                    yield event
        else:
            if delivered := await self.take_input(run):
                yield delivered
            turn = self._turn(run, "tools")
            async with aclosing(
                self.model_turn(turn, run.messages, self.tool_schemas, cancel_event=run.cancel_event)
            ) as stream:
                async for event in stream:
                    yield event
            calls = run.state.record_turn(turn)
            if calls:
                yield self.event("tool_calls_ready", tool_calls=[call.as_event_item() for call in calls])
                async with aclosing(self._tools(run, calls, {})) as stream:
                    async for event in stream:
                        yield event
            elif not (delivered := await self.take_input(run, finishing=True, answer=turn.text)):
                await self.remember(run)
                yield self._result(run, turn.text)
                return
            else:
                yield delivered
        # Tools are not offered again: this agent makes one round of calls, then answers
        # (once more for each message that came as it answered).
        while True:
            if delivered := await self.take_input(run):
                yield delivered
            final = self._turn(run, "answer")
            answer = self.model_turn(final, run.messages, None, cancel_event=run.cancel_event)
            async with aclosing(answer) as stream:
                async for event in stream:
                    yield event
            run.state.record_turn(final)
            if not (delivered := await self.take_input(run, finishing=True, answer=final.text)):
                break
            yield delivered
        await self.remember(run)
        yield self._result(run, final.text)

    async def _tools(
        self, run: RunContext, calls: list[ReadyToolCall], recorded: dict[str, dict[str, Any]]
    ) -> EventStream:
        """Run the calls without a recorded result; add the whole batch to the conversation."""
        results = {call_id: fields for call_id, fields in recorded.items()}
        pending = [call for call in calls if call.tool_call_id not in results]
        async with aclosing(self.run_tools(run, pending)) as stream:
            async for event in stream:
                if event["type"] in ("tool_result", "tool_error"):
                    results[event["tool_call_id"]] = event
                yield event
        run.state.record_tool_batch(calls, results, new=len(pending))

    def _result(self, run: RunContext, output: str) -> dict[str, Any]:
        return self.result_event(run, output, tool_calls_count=run.state.tool_calls_count)

    def _failure_fields(self, run: RunContext) -> dict[str, Any]:
        return {"tool_calls_count": run.state.tool_calls_count}
