"""LLMAgent: one model call, no tools.

Events: ``status`` {"status": "started"}, ``token``* (``thinking_token``* for reasoning
models), ``usage``, ``result``. The worker writes ``completed``. On resume it simply runs
its single turn again: a cut-off turn leaves nothing worth keeping. A message sent while
it answers gets one more turn (``input_delivered``); a resumed run keeps those turns.
"""

from __future__ import annotations

from contextlib import aclosing
from typing import ClassVar

from agentstream.worker.agents.base import BaseAgent, EventStream, RunContext

__all__ = ["LLMAgent"]


class LLMAgent(BaseAgent):
    """Streams one answer from the model (the conversation so far, when it has memory)."""

    kind: ClassVar[str] = "llm"
    resumes_conversation: ClassVar[bool] = False

    async def initialize(self) -> None:
        """Nothing to check: this agent offers the model no tools."""
        self._tool_schemas = []

    async def _run(self, run: RunContext) -> EventStream:
        yield self.event("status", status="started")
        async with aclosing(self.run_workflow(run)) as stream:
            async for event in stream:
                yield event
        while True:
            if delivered := await self.take_input(run):
                yield delivered
            turn = self._turn(run, "llm")
            answer = self.model_turn(turn, run.messages, None, cancel_event=run.cancel_event)
            async with aclosing(answer) as stream:
                async for event in stream:
                    yield event
            run.state.record_turn(turn)
            if not (delivered := await self.take_input(run, finishing=True, answer=turn.text)):
                break
            yield delivered
        await self.remember(run)
        yield self.result_event(run, turn.text)
