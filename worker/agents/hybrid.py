"""HybridAgent: the ReAct loop (reason, act, observe) until the model answers.

Events: ``started``; per iteration ``iteration_start``, the turn's chunks,
``tool_calls_ready`` (if calls), ``thought``, per call ``action`` and ``tool_call``, each
``tool_result``|``tool_error`` as it finishes, ``observation``; ``usage`` per model call;
then ``result`` and ``completed``. Messages sent while the task runs are given to the
model before its next iteration (``input_delivered``); one that came as it gave its final
answer gets one more iteration, past the budget if need be. This agent ends its own
stream: ``completed`` comes last and exactly once, whatever happens, except when a
retryable model failure is to be raised for the worker to retry (``raise_retryable``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import aclosing
from typing import Any, ClassVar

from agentstream.worker.agents.base import BaseAgent, EventStream, RunContext
from agentstream.worker.llm import ReadyToolCall

__all__ = ["HybridAgent", "observation_text"]


def observation_text(calls: Sequence[ReadyToolCall], results: Mapping[str, Mapping[str, Any]]) -> str:
    """What the tools of one iteration returned, one line per call in call order."""
    lines = []
    for call in calls:
        fields = results[call.tool_call_id]
        if fields.get("type") == "tool_error":
            lines.append(f"{call.tool_name} error: {fields.get('error')}")
        else:
            lines.append(f"{call.tool_name}: {fields.get('result')}")
    return "\n".join(lines)


class HybridAgent(BaseAgent):
    """Reasons and calls tools for up to ``max_iterations`` model turns."""

    kind: ClassVar[str] = "hybrid"
    emits_completed: ClassVar[bool] = True

    async def _run(self, run: RunContext) -> EventStream:
        async with aclosing(self.start(run)) as stream:
            async for event in stream:
                yield event
        resume = run.resume
        if resume is not None and resume.pending_tool_calls:
            # The recorded iteration asked for tools that never reported: finish it first.
            async with aclosing(self._act(run, resume.open_batch, resume.recorded_results)) as stream:
                async for event in stream:
                    yield event
        while True:
            while run.state.iteration < self.max_iterations or run.state.unanswered:
                run.check_cancel()
                if delivered := await self.take_input(run):
                    yield delivered
                run.state.iteration += 1
                calls: list[ReadyToolCall] = []
                async with aclosing(self._reason(run, calls)) as stream:
                    async for event in stream:
                        yield event
                if not calls:
                    # Messages that came meanwhile are answered before the task ends.
                    if delivered := await self.take_input(run, finishing=True, answer=run.state.last_text):
                        yield delivered
                        continue
                    await self.remember(run)
                    yield self._result(run, run.state.last_text, success=True, reason="completed")
                    return
                async with aclosing(self._act(run, calls, {})) as stream:
                    async for event in stream:
                        yield event
            if not (delivered := await self.take_input(run, finishing=True)):
                break
            yield delivered  # the budget is spent, but a message is always answered
        output = run.state.last_text or f"no final answer within {self.max_iterations} iterations"
        yield self._result(run, output, success=False, reason="max_iterations")

    async def _reason(self, run: RunContext, calls: list[ReadyToolCall]) -> EventStream:
        """One model turn: ``iteration_start``, chunks, ``tool_calls_ready``, ``thought``.

        The turn's tool calls are put in ``calls`` (a generator cannot return them).
        """
        iteration = run.state.iteration
        yield self.event(
            "iteration_start",
            iteration=iteration,
            max_iterations=self.max_iterations,
            remaining=self.max_iterations - iteration,
        )
        turn = self._turn(run, f"iteration{iteration}")
        async with aclosing(
            self.model_turn(turn, run.messages, self.tool_schemas, cancel_event=run.cancel_event)
        ) as stream:
            async for event in stream:
                yield event
        calls.extend(run.state.record_turn(turn))
        if calls:
            yield self.event("tool_calls_ready", tool_calls=[call.as_event_item() for call in calls])
        yield self.event("thought", content=turn.text or turn.thinking, iteration=iteration)

    async def _act(
        self, run: RunContext, calls: list[ReadyToolCall], recorded: Mapping[str, Mapping[str, Any]]
    ) -> EventStream:
        """Run the calls not yet recorded, then observe the whole batch."""
        iteration = run.state.iteration
        results: dict[str, Mapping[str, Any]] = dict(recorded)
        pending = [call for call in calls if call.tool_call_id not in results]
        async with aclosing(self.run_tools(run, pending, iteration=iteration)) as stream:
            async for event in stream:
                if event["type"] in ("tool_result", "tool_error"):
                    results[event["tool_call_id"]] = event
                yield event
        run.state.record_tool_batch(calls, results, new=len(pending))
        has_error = any(results[call.tool_call_id].get("type") == "tool_error" for call in calls)
        yield self.event(
            "observation", content=observation_text(calls, results), iteration=iteration, has_error=has_error
        )

    def _result(self, run: RunContext, output: str, *, success: bool, reason: str) -> dict[str, Any]:
        return self.result_event(
            run,
            output,
            success=success,
            reason=reason,
            iterations=run.state.iteration,
            tool_calls_count=run.state.tool_calls_count,
        )

    def _failure_fields(self, run: RunContext) -> dict[str, Any]:
        return {
            "reason": "error",
            "iterations": run.state.iteration,
            "tool_calls_count": run.state.tool_calls_count,
        }
