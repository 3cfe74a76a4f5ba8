"""What every agent shares: construction, events, model turns, tool batches, memory.

An agent is driven through :meth:`BaseAgent.execute_task_streaming`, an async generator of
protocol events (PROTOCOL section 3, without ``id``/``seq``/``attempt``/``task_id``: the
worker's writer adds those); the worker uses :meth:`BaseAgent.stream_task`, the same events
with integer-microsecond timestamps, which the codec stores as they are. Subclasses
implement :meth:`BaseAgent._run`, the happy path; the base class turns failures into
``error``/``result`` events, so the loops stay short.

The per-run bookkeeping (:class:`LoopState`) is pure and synchronous; the async layer
only streams the model, runs tools and forwards what the accumulators return.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from typing import Any, ClassVar, TypeAlias, cast

from agentstream.streams.codec import format_us, now_us
from agentstream.worker.agents.resume import ResumeState
from agentstream.worker.agents.state import LoopState, RunContext, clean_history, task_text
from agentstream.worker.agents.workflow import StepTools, WorkflowOutcome, WorkflowPlugin
from agentstream.worker.app.batch import run_tool_batch
from agentstream.worker.app.config import AgentConfiguration, resolve_configuration
from agentstream.worker.app.context import CallerInfo
from agentstream.worker.app.inbox import Inbox, InboxUnavailable
from agentstream.worker.app.steps import step_tool_functions
from agentstream.worker.app.waits import WaitingForInput, plan_batch
from agentstream.worker.errors import ConfigurationError, ModelError, ModelStopped
from agentstream.worker.llm import ModelDelta, OpenAIClient, ReadyToolCall, TurnAccumulator
from agentstream.worker.memory import ConversationMemory, InMemoryMemory
from agentstream.worker.model.deltas import TextDelta
from agentstream.worker.observability import observed_model_stream
from agentstream.worker.tools import ToolRegistry, default_registry

__all__ = ["BaseAgent", "EventStream", "LoopState", "RunContext"]

logger = logging.getLogger(__name__)

Event = dict[str, Any]
#: what agents' streaming methods return: an async generator of protocol events
EventStream: TypeAlias = AsyncGenerator[Event, None]


class BaseAgent(ABC):
    """Common constructor and streaming machinery of the LLM, Tool and Hybrid agents.

    ``tools`` are names looked up in ``registry`` (the built-ins when None). ``memory``
    keeps multi-turn conversations per sender; ``workflow`` runs a chain of steps before
    the main loop. ``raise_retryable`` (or ``context["raise_retryable"]``) makes a
    retryable model failure raise after its ``error`` event, so a worker can start a new
    attempt instead of ending the task.
    """

    #: the ``agent`` field of ``started`` and the name used by :func:`build_agent`
    kind: ClassVar[str] = "base"
    #: whether the agent ends its own stream with ``completed`` (else the worker does)
    emits_completed: ClassVar[bool] = False
    #: whether a resumed run keeps the recorded conversation (the LLM agent starts over)
    resumes_conversation: ClassVar[bool] = True

    def __init__(
        self,
        agent_id: str,
        name: str | None = None,
        llm_client: OpenAIClient | None = None,
        tools: Sequence[str] | None = None,
        registry: ToolRegistry | None = None,
        max_iterations: int | None = None,
        system_prompt: str | None = None,
        model: str | None = None,
        memory: ConversationMemory | None = None,
        workflow: WorkflowPlugin | None = None,
        raise_retryable: bool = False,
        config: AgentConfiguration | None = None,
        model_options: Mapping[str, Any] | None = None,
    ) -> None:
        if llm_client is None:
            raise ConfigurationError(f"agent {agent_id!r} needs an llm_client (an OpenAIClient)")
        resolved = resolve_configuration(
            config, system_prompt=system_prompt, model=model, max_iterations=max_iterations,
            model_options=model_options,
        )  # fmt: skip
        self.agent_id = agent_id
        self.name = name or agent_id
        self.llm_client = llm_client
        self.tool_names = list(tools or ())
        self.registry = registry if registry is not None else default_registry()
        self.max_iterations = resolved.max_iterations
        self.system_prompt = resolved.system_prompt
        self.model = resolved.model
        self.model_options = resolved.model_options
        self.memory = memory
        self.workflow = workflow
        self.raise_retryable = raise_retryable
        self._tool_schemas: list[dict[str, Any]] | None = None

    async def initialize(self) -> None:
        """Check the configured tools exist and build their schemas (idempotent)."""
        missing = [name for name in self.tool_names if name not in self.registry]
        if missing:
            raise ConfigurationError(
                f"agent {self.agent_id!r}: unknown tool(s) {', '.join(missing)}; "
                f"registered: {', '.join(self.registry.names()) or 'none'}"
            )
        self._tool_schemas = self.registry.openai_schema(self.tool_names)

    @property
    def tool_schemas(self) -> list[dict[str, Any]] | None:
        """The ``tools=[...]`` offered to the model (None when the agent has none)."""
        return self._tool_schemas or None

    # ------------------------------------------------------------------ public API

    async def execute_task_streaming(
        self, task: Mapping[str, Any], context: Mapping[str, Any] | None = None
    ) -> EventStream:
        """Run ``task`` and stream its events (PROTOCOL section 3), ``timestamp`` as ISO 8601.

        ``context`` keys: ``resume`` (a :class:`ResumeState`), ``sender_id`` (multi-turn
        memory), ``cancel_event`` (an ``asyncio.Event``; once set the run raises
        ``asyncio.CancelledError`` at its next safe point), ``raise_retryable``, and
        ``attempt``/``tenant`` (what tools' contexts tell; ``task["task_id"]`` too),
        ``approve_tools`` (tools whose calls wait for approval: the run raises
        :class:`~agentstream.worker.app.waits.WaitingForInput` after announcing them),
        ``inbox`` (an :class:`~agentstream.worker.app.inbox.Inbox`: messages sent while
        the task runs, given to the model before its next turn).
        """
        async with aclosing(self.stream_task(task, context)) as stream:
            async for event in stream:
                stamp = event.get("timestamp")
                if isinstance(stamp, int):
                    event["timestamp"] = format_us(stamp)
                yield event

    async def stream_task(
        self, task: Mapping[str, Any], context: Mapping[str, Any] | None = None
    ) -> EventStream:
        """:meth:`execute_task_streaming` with each ``timestamp`` as integer microseconds
        since the epoch: what the worker appends, so that no timestamp is formatted and
        parsed back on the way to the stream (the codec stores microseconds)."""
        run = self._new_run(task, context or {})
        success = False
        try:
            await self._prepare(run)
            async with aclosing(self._run(run)) as stream:
                async for event in stream:
                    if event["type"] == "result":
                        success = bool(event.get("success"))
                    yield event
        except (WaitingForInput, InboxUnavailable):
            raise  # the attempt ends waiting, or to be retried
        except ModelError as exc:
            yield self._error_event(exc, exc.error_type, exc.retryable)
            if exc.retryable and run.raise_retryable:
                raise
            yield self._failed_result(run, str(exc), exc)
        except ConfigurationError as exc:
            yield self._error_event(exc, "configuration_error", False)
            yield self._failed_result(run, str(exc))
        except Exception as exc:  # a bug: report it in the stream, never leave it open
            logger.exception("agent %s failed", self.agent_id)
            yield self._error_event(exc, "internal_error", False)
            yield self._failed_result(run, f"{type(exc).__name__}: {exc}")
        if self.emits_completed:
            status = "succeeded" if success else "failed"
            yield self.event("completed", success=success, status=status, execution_time=run.elapsed)

    async def execute_task(
        self, task: Mapping[str, Any], context: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Run ``task`` to the end; return the ``result`` event's fields."""
        result: dict[str, Any] | None = None
        async with aclosing(self.stream_task(task, context)) as stream:
            async for event in stream:
                if event["type"] == "result":
                    result = {k: v for k, v in event.items() if k not in ("type", "timestamp", "agent_id")}
        if result is None:  # only reachable if a subclass forgets its result event
            raise ConfigurationError(f"agent {self.agent_id!r} finished without a result")
        return result

    async def process_message_streaming(
        self, message: str, sender_id: str = "default"
    ) -> AsyncGenerator[str, None]:
        """Answer one chat message, streaming its tokens; the conversation with
        ``sender_id`` is remembered (in ``memory``, or in this agent when it has none).

        Model failures raise (``ModelError`` and friends) instead of becoming events.
        """
        if self.memory is None:  # a chat needs somewhere to remember
            self.memory = InMemoryMemory()
        run = self._new_run({"description": message}, {"sender_id": sender_id})
        run.trigger = "message"
        await self._prepare(run)
        async with aclosing(self._run(run)) as stream:
            async for event in stream:
                if event["type"] == "token" and "loop_scope" not in event:
                    yield event["content"]

    # ------------------------------------------------------------------ for subclasses

    @abstractmethod
    def _run(self, run: RunContext) -> EventStream:
        """The agent's events for one run, ``result`` included; failures raise."""

    def event(self, type_: str, /, *, scope: Mapping[str, Any] | None = None, **fields: Any) -> Event:
        """A protocol event of this agent (``loop_scope`` only outside the main loop),
        stamped in integer microseconds (:meth:`execute_task_streaming` formats them)."""
        event: Event = {"type": type_, **fields, "timestamp": now_us(), "agent_id": self.agent_id}
        if scope is not None:
            event["loop_scope"] = dict(scope)
        return event

    async def model_turn(
        self,
        turn: TurnAccumulator,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None = None,
        *,
        scope: Mapping[str, Any] | None = None,
        cancel_event: asyncio.Event | None = None,
    ) -> EventStream:
        """Stream one model call into ``turn``, yielding its chunk and ``usage`` events."""
        # stream_chat is an async generator: close it (and its HTTP stream) if we stop early.
        options = {"options": self.model_options} if self.model_options else {}
        deltas = observed_model_stream(
            self.llm_client.stream_chat(messages, tools, model=self.model, **options), self.model
        )
        deltas = cast("AsyncGenerator[ModelDelta, None]", deltas)
        # A text delta of the main loop, with `event` as defined here, takes the short way:
        # the same dict, built at once (0.3 against 1.2 us a token).
        plain = scope is None and type(self).event is BaseAgent.event
        agent_id = self.agent_id
        async with aclosing(deltas) as stream:
            async for delta in stream:
                if cancel_event is not None and cancel_event.is_set():
                    raise asyncio.CancelledError("the task was cancelled")
                if plain and type(delta) is TextDelta:
                    content = turn.add_text(delta.content)
                    yield {"type": "token", "content": content, "timestamp": now_us(), "agent_id": agent_id}
                    continue
                payload = turn.feed(delta)
                if payload is not None:
                    kind = payload.pop("type")
                    yield self.event(kind, scope=scope, **payload)

    def _turn(self, run: RunContext, label: str) -> TurnAccumulator:
        # The salt makes generated tool-call ids differ between turns, yet repeat when a
        # later attempt replays the same turn.
        return TurnAccumulator(id_salt=f"{self.agent_id}:{label}:{run.state.completed_turns}")

    async def run_tools(
        self,
        run: RunContext,
        calls: Sequence[ReadyToolCall],
        *,
        iteration: int | None = None,
        scope: Mapping[str, Any] | None = None,
    ) -> EventStream:
        """Announce ``calls`` (``action`` when ``iteration`` is given, ``tool_call``), run
        them concurrently and yield each one's ``custom`` events and outcome as they come
        (:func:`~agentstream.worker.app.batch.run_tool_batch`). In the main loop, calls
        that wait for a person are announced instead (:mod:`~agentstream.worker.app.waits`)
        and, once the others ran, :class:`WaitingForInput` ends the run."""
        run.check_cancel()
        book = run.resume.inputs if run.resume is not None else None
        in_step = scope is not None
        plan = plan_batch(calls, self.registry, self.tool_names, run.approve_tools, book, in_step=in_step)
        for call in plan.run:
            parameters = dict(call.parameters) if call.parameters is not None else {}
            if iteration is not None:
                yield self.event(
                    "action",
                    tool_name=call.tool_name,
                    tool_call_id=call.tool_call_id,
                    parameters=parameters,
                    iteration=iteration,
                )
            yield self.event(
                "tool_call", scope=scope, tool_name=call.tool_name, tool_call_id=call.tool_call_id,
                parameters=parameters,
            )  # fmt: skip
        for fields in plan.events:  # wait announcements, and what answers decided
            yield self.event(fields.pop("type"), scope=scope, **fields)
        caller = CallerInfo(
            run.task_id, run.attempt, run.tenant, self.agent_id,
            replies=book.replies if book is not None else {},
            questions=book.questions if book is not None else {},
        )  # fmt: skip
        asked: list[dict[str, str]] = []  # calls whose tool asked a person (ctx.ask)
        batch = run_tool_batch(self.registry, self.tool_names, plan.run, caller, scope, asked)
        async with aclosing(batch) as stream:
            async for fields in stream:
                yield self.event(fields.pop("type"), scope=scope, **fields)
        if plan.waiting or asked:
            raise WaitingForInput([*plan.waiting, *asked])

    async def take_input(
        self, run: RunContext, *, finishing: bool = False, answer: str | None = None
    ) -> Event | None:
        """Before a model turn: give the model the messages sent to the task since its last
        turn, as user messages, and return the ``input_delivered`` event recording it
        (None when no message came). ``finishing``: the agent would give its final
        answer now; the inbox is closed unless messages came, which it must then answer
        (``answer``: the text of its last turn, which the messages follow)."""
        messages = await (run.inbox.close() if finishing else run.inbox.take())
        if not messages:
            return None
        for message in messages:
            run.state.conversation.append({"role": "user", "content": message.message})
        run.state.unanswered = True
        fields: dict[str, Any] = {"input_seqs": [message.seq for message in messages]}
        if answer is not None:
            fields["answer"] = answer
        return self.event("input_delivered", **fields)

    async def start(self, run: RunContext) -> EventStream:
        """``started``, then the workflow's events (of the Tool and Hybrid agents)."""
        yield self.event("started", agent=self.name)
        async with aclosing(self.run_workflow(run)) as stream:
            async for event in stream:
                yield event

    async def run_workflow(self, run: RunContext) -> EventStream:
        """Run the workflow plugin before the main loop; its output joins the prompt."""
        if self.workflow is None:
            return
        output = run.resume.workflow_output if run.resume is not None else None
        if output is None:
            outcome = WorkflowOutcome()
            tools = StepTools(*step_tool_functions(self, run))
            plugin_run = self.workflow.run(
                self, run.task_text, outcome, trigger=run.trigger, cancel_event=run.cancel_event, tools=tools
            )
            async with aclosing(plugin_run) as stream:
                async for event in stream:
                    yield event
            run.state.add_usage(outcome.usage)
            output = outcome.output
        # Just before the user message: context for this task, not part of the chat history.
        note = {
            "role": "system",
            "content": f"Context prepared by workflow {self.workflow.title!r}:\n{output}",
        }
        run.prompt.insert(len(run.prompt) - 1, note)

    def result_event(self, run: RunContext, output: Any, *, success: bool = True, **extra: Any) -> Event:
        """The ``result`` event of this run; ``stop_reason`` is the last model turn's
        unless ``extra`` says otherwise."""
        extra.setdefault("stop_reason", run.state.stop_reason or "stop")
        return self.event(
            "result",
            output=output,
            success=success,
            execution_time=run.elapsed,
            **extra,
            usage=dict(run.state.usage),
        )

    async def remember(self, run: RunContext) -> None:
        """Keep the finished exchange in memory, so the next task continues it."""
        if self.memory is None or run.sender_id is None:
            return
        user = run.prompt[-1]
        await self.memory.append(run.sender_id, [user, *run.state.conversation])

    # ------------------------------------------------------------------ internals

    def _new_run(self, task: Mapping[str, Any], context: Mapping[str, Any]) -> RunContext:
        """The run's context; a malformed task is the caller's bug and raises at once."""
        resume = context.get("resume")
        run = RunContext(
            task_text=task_text(task),
            sender_id=context.get("sender_id"),
            cancel_event=context.get("cancel_event"),
            resume=resume if isinstance(resume, ResumeState) else None,
            raise_retryable=bool(context.get("raise_retryable", self.raise_retryable)),
            task_id=task.get("task_id"),
            attempt=int(context.get("attempt") or 1),
            tenant=context.get("tenant"),
            approve_tools=frozenset(context.get("approve_tools") or ()),
        )
        inbox = context.get("inbox")
        if isinstance(inbox, Inbox):
            run.inbox = inbox
        # Messages given to the model are part of the conversation: a run that gave some
        # keeps it, even of an agent that otherwise starts over.
        if run.resume is not None and (self.resumes_conversation or run.resume.inputs.given):
            run.state = LoopState.from_resume(run.resume)
        return run

    async def _prepare(self, run: RunContext) -> None:
        """Set-up that may fail at run time (tools, memory): inside the error handling."""
        if self._tool_schemas is None:
            await self.initialize()
        run.prompt = await self._initial_prompt(run)

    async def _initial_prompt(self, run: RunContext) -> list[dict[str, Any]]:
        prompt: list[dict[str, Any]] = []
        if self.system_prompt:
            prompt.append({"role": "system", "content": self.system_prompt})
        if self.memory is not None and run.sender_id is not None:
            prompt.extend(clean_history(await self.memory.load(run.sender_id)))
        prompt.append({"role": "user", "content": run.task_text})
        return prompt

    def _error_event(self, exc: BaseException, error_type: str, retryable: bool) -> Event:
        return self.event(
            "error", error=str(exc) or type(exc).__name__, error_type=error_type, retryable=retryable
        )

    def _failed_result(self, run: RunContext, message: str, exc: Exception | None = None) -> Event:
        fields = self._failure_fields(run)
        if isinstance(exc, ModelStopped):  # the model's own words, and why they stopped
            refusal = {"refusal": exc.refusal} if exc.refusal else {}
            output = exc.output or message
            return self.result_event(
                run, output, success=False, stop_reason=exc.stop_reason, **refusal, **fields
            )
        return self.result_event(run, message, success=False, stop_reason="error", **fields)

    def _failure_fields(self, run: RunContext) -> dict[str, Any]:
        """Extra ``result`` fields of a failed run (the Hybrid agent adds its counters)."""
        return {}
