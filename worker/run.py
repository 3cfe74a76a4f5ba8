"""One attempt of one task: open it (fencing older attempts), run the agent, and append
every event through the attempt's fenced writer, ending the stream with exactly one
``completed`` whatever happens (PROTOCOL section 3, rule 2).

How each way an attempt can end is written down:

================================  ==========================================  ==========
what happened                     appended                                     outcome
================================  ==========================================  ==========
agent finished                    ``completed`` (unless the agent wrote it)    DONE
agent failed, model error         ``error`` (if the agent did not) +           DONE
not retryable or budget spent     ``completed`` failed
retryable model error, budget     the agent's ``error``, flushed               RETRY
left
any other exception (a bug)       ``error`` (its class) + ``completed``        DONE
task timeout                      ``error`` TaskTimeout + ``completed``        DONE
cancel requested (meta flag)      ``cancelled`` + ``completed`` cancelled      DONE
arq abort (CancelledError)        ``cancelled`` + ``completed`` cancelled      re-raised
worker shutting down              nothing more: buffered events are flushed    re-raised
fenced off / lease lost           nothing                                      SUPERSEDED
Redis unreachable                 what can still be flushed                    RETRY
(also as the agent closes its
inbox before its final answer)
attempt number > budget           ``retry`` + ``error`` RetriesExhausted +     DONE
                                  ``completed`` failed
a call waits for input            the wait events; status ``waiting``          WAITING
================================  ==========================================  ==========
Input (``TaskStore.record_input``) queues a waiting task again; that attempt spends no budget.
A message sent while the task runs (``TaskStore.record_message``) is taken by the agent
before its next model turn (:mod:`worker.app.inbox`).

An attempt after the first appends ``retry`` first, then continues the conversation rebuilt
from every stored event (:func:`worker.agents.rebuild_resume_state`): tools whose result
was recorded are not run again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from agentstream.streams import (
    Attempt,
    FencedError,
    InputRejected,
    StreamsError,
    StreamWriter,
    TaskCompleted,
    TaskMeta,
    TaskNotFound,
    TaskWaiting,
)
from agentstream.streams.keys import conversation_id, public_task_id
from agentstream.worker.agents import ResumeState, rebuild_resume_state
from agentstream.worker.app.inbox import InboxUnavailable, TaskInbox
from agentstream.worker.app.waits import WaitingForInput
from agentstream.worker.deps import AgentFactory, TaskAgent, WorkerDeps, build_task_agent
from agentstream.worker.errors import ModelError
from agentstream.worker.observability import attempt_span, bind_key_id, observe_event
from agentstream.worker.outcomes import (
    DONE,
    MAX_RETRY_DEFER_S,
    TRANSIENT_ERRORS,
    WAITING,
    AttemptOutcome,
    Outcome,
    error_event,
    exhausted_event,
    retry_reason,
)
from agentstream.worker.payload import TaskRequest
from agentstream.worker.race import AgentRace, Stop

__all__ = [
    "TRANSIENT_ERRORS",
    "AgentFactory",
    "AttemptOutcome",
    "AttemptRunner",
    "Outcome",
    "TaskAgent",
    "WorkerDeps",
    "build_task_agent",
    "retry_reason",
]

logger = logging.getLogger(__name__)

#: failures of the writer: fenced, completed, closed, or Redis unreachable
_WRITE_ERRORS: tuple[type[Exception], ...] = (StreamsError, *TRANSIENT_ERRORS)


class AttemptRunner:
    """Runs one attempt of ``task_id``; create one per job run and call :meth:`run` once.

    ``interrupted()`` tells a shutdown from an arq abort when the job is cancelled;
    ``lease_lost`` is set when another worker took the task over.
    """

    def __init__(
        self,
        deps: WorkerDeps,
        task_id: str,
        *,
        interrupted: Callable[[], bool] = lambda: False,
        lease_lost: asyncio.Event | None = None,
        schedule_deadline: Callable[[int, float], Awaitable[None]] | None = None,
    ) -> None:
        self.task_id = task_id
        self._deps = deps
        self._config = deps.config
        self._store = deps.store
        self._interrupted = interrupted
        self._lease_lost = lease_lost if lease_lost is not None else asyncio.Event()
        self._started_at = time.time()
        #: (attempt, seconds): arrange for a wait of that attempt to end after that long
        self._schedule_deadline = schedule_deadline
        self._resumes = 0
        self._tenant: str | None = None
        # what the agent appended in this attempt
        self._error_seen = False
        self._cancelled_seen = False
        self._result_success: bool | None = None

    # -- the attempt -----------------------------------------------------------------------

    async def run(self) -> AttemptOutcome:
        """Open the attempt and run it to one of the outcomes of the module docstring."""
        try:
            attempt = await self._store.open_attempt(self.task_id)
        except TaskCompleted:
            logger.info("task %s already completed; duplicate job ignored", self.task_id)
            return DONE
        except TaskNotFound:
            logger.warning("task %s does not exist (or expired); job dropped", self.task_id)
            return DONE
        except TaskWaiting:
            logger.info("task %s waits for input; its input queues it again", self.task_id)
            return WAITING
        writer = self._store.writer(attempt)
        try:
            return await self._run(attempt, writer)
        except asyncio.CancelledError:
            await self._on_job_cancelled(writer)
            raise
        except FencedError as exc:
            logger.info("task %s attempt %d superseded: %s", self.task_id, attempt.number, exc)
            return AttemptOutcome(Outcome.SUPERSEDED, self._config.lease_s)
        except (TaskCompleted, TaskNotFound):
            return DONE  # ended by someone else, or deleted: nothing left to write to
        except TRANSIENT_ERRORS as exc:
            logger.warning("task %s attempt %d lost Redis: %r", self.task_id, attempt.number, exc)
            await self._checkpoint(writer)
            return AttemptOutcome(Outcome.RETRY, self._backoff(attempt.number))
        except Exception as exc:
            # A bug outside the agent: arq would finish the job, so end the stream here.
            return await self._failed(writer, exc)
        finally:
            await self._close_quietly(writer)

    async def _run(self, attempt: Attempt, writer: StreamWriter) -> AttemptOutcome:
        meta = await self._store.meta(self.task_id)
        if meta is None:
            return DONE
        bind_key_id(self.task_id, attempt=attempt.number)
        self._started_at = _started_at(meta) or self._started_at
        self._tenant = meta.owner
        self._resumes = meta.resumes
        try:
            request = TaskRequest.model_validate(meta.request)
        except ValidationError as exc:
            message = f"the stored task request is invalid: {exc.errors(include_url=False)}"
            await self._terminal(writer, [error_event(message, "InvalidRequest")], "failed")
            return DONE
        if attempt.number - self._resumes > self._config.max_attempts:
            # Every attempt after the first opens with ``retry`` (PROTOCOL rule 4), even
            # the one that only records that the budget is spent.
            retry = {"type": "retry", "attempt": attempt.number, "reason": "retry budget exhausted"}
            await self._terminal(writer, [retry, exhausted_event(self._config.max_attempts)], "failed")
            return DONE
        if meta.cancel_requested:
            return await self._cancelled(writer, meta.cancel_reason)
        with attempt_span(request.trace_context, self.task_id, attempt.number):
            resume = await self._resume(attempt, writer) if attempt.number > 1 else None
            return await self._execute(request, attempt, writer, resume)

    async def _resume(self, attempt: Attempt, writer: StreamWriter) -> ResumeState | None:
        events = [event async for _, event in self._deps.reader.replay(self.task_id)]
        retry = {"type": "retry", "attempt": attempt.number, "reason": retry_reason(events, attempt.number)}
        await writer.append(retry)
        return rebuild_resume_state([*events, retry])

    async def _execute(
        self,
        request: TaskRequest,
        attempt: Attempt,
        writer: StreamWriter,
        resume: ResumeState | None,
    ) -> AttemptOutcome:
        cancel_event = asyncio.Event()
        timeout = asyncio.timeout(self._config.task_timeout_s)
        race = AgentRace(
            self._store, self.task_id, cancel_poll_s=self._config.cancel_poll_s, lease_lost=self._lease_lost
        )
        try:
            async with timeout:
                stop = await race.run(self._stream(request, writer, resume, cancel_event), cancel_event)
        except TimeoutError as exc:
            if not timeout.expired():
                return await self._failed(writer, exc)
            message = f"the task exceeded its timeout of {self._config.task_timeout_s:g}s"
            await self._terminal(writer, [error_event(message, "TaskTimeout")], "failed")
            return DONE
        except WaitingForInput as exc:
            return await self._waiting(request, attempt, writer, exc)
        except InboxUnavailable as exc:
            logger.warning("task %s attempt %d: %s", self.task_id, attempt.number, exc)
            await self._checkpoint(writer)
            return AttemptOutcome(Outcome.RETRY, self._backoff(attempt.number))
        except ModelError as exc:
            return await self._model_failed(exc, attempt, writer)
        except asyncio.CancelledError:
            raise
        except _WRITE_ERRORS:
            raise
        except Exception as exc:
            return await self._failed(writer, exc)
        if stop is Stop.LEASE_LOST:
            return AttemptOutcome(Outcome.SUPERSEDED, self._config.lease_s)
        if stop is Stop.CANCEL_REQUESTED:
            return await self._cancelled(writer, race.cancel_reason or "cancelled by request")
        return await self._finished(writer)

    async def _stream(
        self,
        request: TaskRequest,
        writer: StreamWriter,
        resume: ResumeState | None,
        cancel_event: asyncio.Event,
    ) -> None:
        agent = self._deps.agent_factory(request, self._deps)
        await agent.initialize()
        # The agent (and a tool's context) knows the task by the id its client knows.
        task = {"description": request.input, "task_id": public_task_id(self.task_id)}
        context = {
            "resume": resume,
            "sender_id": conversation_id(self._tenant, request.session_id) if request.session_id else None,
            "cancel_event": cancel_event,
            "raise_retryable": True,
            # what a tool's context tells it (agentstream.worker.app.ToolContext)
            "attempt": writer.attempt,
            "tenant": self._tenant,
            "approve_tools": request.approve_tools,
            # messages sent while the task runs; those earlier attempts gave are not given again
            "inbox": TaskInbox(
                self._store, self.task_id, writer.attempt, resume.inputs.given if resume is not None else ()
            ),
        }
        events = agent.stream_task(task, context)
        try:
            async for event in events:
                self._observe(event)
                await writer.append(event)
                if writer.completed:
                    return
        finally:
            if isinstance(events, AsyncGenerator):
                await events.aclose()

    def _observe(self, event: Mapping[str, Any]) -> None:
        observe_event(event)
        match event.get("type"):
            case "error":
                self._error_seen = True
            case "cancelled":
                self._cancelled_seen = True
            case "result":
                self._result_success = bool(event.get("success"))

    async def _finished(self, writer: StreamWriter) -> AttemptOutcome:
        if writer.completed:  # HybridAgent writes its own
            await writer.flush()
            return DONE
        if self._result_success and not self._error_seen:
            await self._terminal(writer, [], "succeeded")
            return DONE
        no_result = error_event("the agent ended without a successful result", "NoResult")
        events = [] if self._error_seen else [no_result]
        await self._terminal(writer, events, "failed")
        return DONE

    async def _waiting(
        self, request: TaskRequest, attempt: Attempt, writer: StreamWriter, exc: WaitingForInput
    ) -> AttemptOutcome:
        """Park the task until input answers ``exc.pending`` (deadline first: none is lost)."""
        await writer.flush()
        timeout_s = request.input_timeout_s or self._config.input_timeout_s
        if self._schedule_deadline is not None:
            await self._schedule_deadline(attempt.number, timeout_s)
        deadline = datetime.now(UTC) + timedelta(seconds=timeout_s)
        try:
            parked = await self._store.set_waiting(attempt, exc.pending, deadline.isoformat())
        except InputRejected:  # a cancel came in while this attempt ran: end it here
            meta = await self._store.meta(self.task_id)
            return await self._cancelled(writer, meta.cancel_reason if meta is not None else None)
        if not parked:  # answered while this attempt ran: the next one takes the answers
            logger.info(
                "task %s attempt %d: answered before it parked; resumed", self.task_id, attempt.number
            )
            return AttemptOutcome(Outcome.RETRY, 0.0)
        return WAITING

    async def _model_failed(self, exc: ModelError, attempt: Attempt, writer: StreamWriter) -> AttemptOutcome:
        events = (
            [] if self._error_seen else [error_event(exc.message, exc.error_type, retryable=exc.retryable)]
        )
        if exc.retryable and attempt.number - self._resumes < self._config.max_attempts:
            for event in events:
                await writer.append(event)
            await writer.flush()
            defer_s = self._backoff(attempt.number)
            logger.info(
                "task %s attempt %d: %r, retried in %.1fs", self.task_id, attempt.number, exc, defer_s
            )
            return AttemptOutcome(Outcome.RETRY, defer_s)
        if exc.retryable:
            events.append(exhausted_event(attempt.number))
        await self._terminal(writer, events, "failed")
        return DONE

    async def _failed(self, writer: StreamWriter, exc: BaseException) -> AttemptOutcome:
        logger.exception("task %s failed", self.task_id, exc_info=exc)
        await self._terminal(writer, [error_event(str(exc) or repr(exc), type(exc).__name__)], "failed")
        return DONE

    async def _cancelled(self, writer: StreamWriter, reason: str | None) -> AttemptOutcome:
        events = [] if self._cancelled_seen else [{"type": "cancelled", "reason": reason or "cancelled"}]
        await self._terminal(writer, events, "cancelled")
        return DONE

    async def _terminal(self, writer: StreamWriter, events: list[dict[str, Any]], status: str) -> None:
        """Append the last events and ``completed``, and wait until they are stored.

        Buffered at once (so ``writer.completed`` holds from here on) and flushed shielded:
        once the stream is being ended, a cancellation must not cut it short.
        """

        for event in events:
            writer.append_nowait(event)
        if not writer.completed:
            writer.append_nowait(self._completed(status))
        await asyncio.shield(writer.flush())

    def _completed(self, status: str) -> dict[str, Any]:
        event = {
            "type": "completed",
            "success": status == "succeeded",
            "status": status,
            "execution_time": round(max(0.0, time.time() - self._started_at), 6),
        }
        observe_event(event)
        return event

    async def _on_job_cancelled(self, writer: StreamWriter) -> None:
        """The job was cancelled by arq: a shutdown keeps the task resumable, an abort
        ends its stream. Never raises: the caller re-raises the cancellation."""
        if writer.completed:  # the stream is being ended: let that finish
            await self._checkpoint(writer)
            return
        if self._interrupted():
            logger.info("task %s interrupted by shutdown; checkpointing for another worker", self.task_id)
            await self._checkpoint(writer)
            return
        try:
            await self._cancelled(writer, await self._abort_reason())
        except _WRITE_ERRORS as exc:
            logger.warning("task %s: could not record its abort: %r", self.task_id, exc)

    async def _abort_reason(self) -> str:
        """The reason recorded by ``request_cancel`` (the API asks before it aborts)."""
        try:
            meta = await self._store.meta(self.task_id)
        except TRANSIENT_ERRORS:
            meta = None
        if meta is not None and meta.cancel_reason:
            return meta.cancel_reason
        return "the job was aborted"

    async def _checkpoint(self, writer: StreamWriter) -> None:
        """Store what is buffered (shielded); failures are logged, the next attempt resumes."""
        try:
            await asyncio.shield(writer.flush())
        except _WRITE_ERRORS as exc:
            logger.warning("task %s: checkpoint failed: %r", self.task_id, exc)

    async def _close_quietly(self, writer: StreamWriter) -> None:
        try:
            await asyncio.shield(writer.aclose())
        except _WRITE_ERRORS as exc:
            logger.debug("task %s: writer closed with %r", self.task_id, exc)

    def _backoff(self, attempt: int) -> float:
        return min(MAX_RETRY_DEFER_S, self._config.retry_backoff_s * 2.0 ** (attempt - 1))


def _started_at(meta: TaskMeta) -> float | None:
    if not meta.started_at:
        return None
    try:
        return datetime.fromisoformat(meta.started_at).timestamp()
    except ValueError:
        return None
