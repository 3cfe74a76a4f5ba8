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
attempt number > budget           ``retry`` + ``error`` RetriesExhausted +     DONE
                                  ``completed`` failed
================================  ==========================================  ==========

An attempt after the first appends ``retry`` first, then continues the conversation rebuilt
from every stored event (:func:`worker.agents.rebuild_resume_state`): tools whose result
was recorded are not run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from agentstream.streams import (
    Attempt,
    FencedError,
    Reader,
    StreamsError,
    StreamWriter,
    TaskCompleted,
    TaskMeta,
    TaskNotFound,
    TaskStore,
)
from agentstream.streams.connection import RedisClient
from agentstream.worker.agents import ResumeState, build_agent, rebuild_resume_state
from agentstream.worker.errors import ModelError
from agentstream.worker.llm import OpenAIClient
from agentstream.worker.memory import RedisMemory
from agentstream.worker.observability import attempt_span, observe_event
from agentstream.worker.payload import TaskRequest
from agentstream.worker.tools import ToolRegistry
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from agentstream.telemetry.logs import bind_task

if TYPE_CHECKING:
    from agentstream.worker.settings import WorkerConfig

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

#: how long, beyond one cancel poll, stopping the agent's helper tasks may take
_STOP_GRACE_S = 5.0

#: failures of the connection to Redis: the attempt cannot write, a later one may
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError, OSError)
#: failures of the writer: fenced, completed, closed, or Redis unreachable
_WRITE_ERRORS: tuple[type[Exception], ...] = (StreamsError, *TRANSIENT_ERRORS)
#: the longest delay before a retry, however many attempts failed
MAX_RETRY_DEFER_S = 30.0


class TaskAgent(Protocol):
    """What the runner needs of an agent (``worker.agents``' agents all qualify)."""

    async def initialize(self) -> None: ...

    def execute_task_streaming(
        self, task: dict[str, Any], context: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]: ...


#: builds the agent of one task; tests substitute their own
AgentFactory = Callable[[TaskRequest, "WorkerDeps"], TaskAgent]


def build_task_agent(request: TaskRequest, deps: WorkerDeps) -> TaskAgent:
    """The agent ``request`` asks for, sharing the worker's model client and tools; with a
    ``session_id``, its conversation memory lives in Redis (one per agent kind and session)."""
    agent_id = f"{request.agent}-agent"
    memory = None
    if request.session_id:
        memory = RedisMemory(deps.redis, deps.config.streams.keys, agent_id)
    return build_agent(request, llm_client=deps.llm, registry=deps.registry, memory=memory, agent_id=agent_id)


@dataclass(frozen=True, slots=True)
class WorkerDeps:
    """What every job of one worker process shares, built once in ``on_startup``."""

    config: WorkerConfig
    redis: RedisClient
    store: TaskStore
    reader: Reader
    llm: OpenAIClient
    registry: ToolRegistry
    #: ``host:pid:random``, recorded as the lease owner of the tasks this worker runs
    worker_id: str
    agent_factory: AgentFactory = build_task_agent

    async def aclose(self) -> None:
        """Close the model client and the Redis connections."""
        try:
            await self.llm.aclose()
        finally:
            await self.redis.aclose()


class Outcome(enum.Enum):
    """How an attempt ended, as far as arq is concerned."""

    #: the stream ended with ``completed`` (by this attempt or an earlier one)
    DONE = "done"
    #: run a new attempt after ``defer_s``
    RETRY = "retry"
    #: a newer attempt owns the task; this one wrote nothing more
    SUPERSEDED = "superseded"


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """An :class:`Outcome` and, for a retry, how long to wait before it."""

    kind: Outcome
    defer_s: float = 0.0


_DONE = AttemptOutcome(Outcome.DONE)


def retry_reason(events: Sequence[Mapping[str, Any]], attempt: int) -> str:
    """Why attempt ``attempt`` runs, judged from the events stored before it."""
    previous = attempt - 1
    last = events[-1] if events else None
    if last is not None and last.get("type") == "error":
        kind = last.get("error_type") or "error"
        return f"attempt {previous} failed ({kind}): {last.get('error')}"
    return f"attempt {previous} was interrupted (its worker stopped or lost its lease)"


def _error(message: str, error_type: str, *, retryable: bool = False) -> dict[str, Any]:
    return {"type": "error", "error": message, "error_type": error_type, "retryable": retryable}


def _exhausted(attempts: int) -> dict[str, Any]:
    return _error(f"retry budget exhausted after {attempts} attempts", "RetriesExhausted")


class _Stop(enum.Enum):
    FINISHED = "finished"
    CANCEL_REQUESTED = "cancel requested"
    LEASE_LOST = "lease lost"


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
    ) -> None:
        self.task_id = task_id
        self._deps = deps
        self._config = deps.config
        self._store = deps.store
        self._interrupted = interrupted
        self._lease_lost = lease_lost if lease_lost is not None else asyncio.Event()
        self._started_at = time.time()
        self._tenant: str | None = None
        self._cancel_reason = "cancelled by request"
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
            return _DONE
        except TaskNotFound:
            logger.warning("task %s does not exist (or expired); job dropped", self.task_id)
            return _DONE
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
            return _DONE  # ended by someone else, or deleted: nothing left to write to
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
            return _DONE
        bind_task(self.task_id, attempt=attempt.number, tenant=meta.owner)
        self._started_at = _started_at(meta) or self._started_at
        self._tenant = meta.owner
        try:
            request = TaskRequest.model_validate(meta.request)
        except ValidationError as exc:
            message = f"the stored task request is invalid: {exc.errors(include_url=False)}"
            await self._terminal(writer, [_error(message, "InvalidRequest")], "failed")
            return _DONE
        if attempt.number > self._config.max_attempts:
            # Every attempt after the first opens with ``retry`` (PROTOCOL rule 4), even
            # the one that only records that the budget is spent.
            retry = {"type": "retry", "attempt": attempt.number, "reason": "retry budget exhausted"}
            await self._terminal(writer, [retry, _exhausted(self._config.max_attempts)], "failed")
            return _DONE
        if meta.cancel_requested:
            return await self._cancelled(writer, meta.cancel_reason)
        with attempt_span(request.trace_context, self.task_id, attempt.number, meta.owner):
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
        try:
            async with timeout:
                stop = await self._race(self._stream(request, writer, resume, cancel_event), cancel_event)
        except TimeoutError as exc:
            if not timeout.expired():
                return await self._failed(writer, exc)
            message = f"the task exceeded its timeout of {self._config.task_timeout_s:g}s"
            await self._terminal(writer, [_error(message, "TaskTimeout")], "failed")
            return _DONE
        except ModelError as exc:
            return await self._model_failed(exc, attempt, writer)
        except asyncio.CancelledError:
            raise
        except _WRITE_ERRORS:
            raise
        except Exception as exc:
            return await self._failed(writer, exc)
        if stop is _Stop.LEASE_LOST:
            return AttemptOutcome(Outcome.SUPERSEDED, self._config.lease_s)
        if stop is _Stop.CANCEL_REQUESTED:
            return await self._cancelled(writer, self._cancel_reason)
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
        task = {"description": request.input, "task_id": self.task_id}
        context = {
            "resume": resume,
            "sender_id": request.session_id,
            "cancel_event": cancel_event,
            "raise_retryable": True,
            # what a tool's context tells it (agentstream.worker.app.ToolContext)
            "attempt": writer.attempt,
            "tenant": self._tenant,
        }
        events = agent.execute_task_streaming(task, context)
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

    # -- racing the agent against cancellation and the lease --------------------------------

    async def _race(self, work: Coroutine[Any, Any, None], cancel_event: asyncio.Event) -> _Stop:
        """Run ``work`` until it ends, cancellation is requested or the lease is lost.

        The agent runs in a child task, so stopping it never looks like this task being
        cancelled; a cancellation of this task reaches the child through ``finally``.
        """
        agent = asyncio.create_task(work, name=f"agentstream-agent-{self.task_id}")
        stop_watching = asyncio.Event()
        watcher = asyncio.create_task(
            self._watch_cancel(stop_watching), name=f"agentstream-cancel-{self.task_id}"
        )
        lease = asyncio.create_task(self._lease_lost.wait(), name=f"agentstream-lease-{self.task_id}")
        tasks = {agent, watcher, lease}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not agent.done():
                cancel_event.set()
            # redis-py can swallow a cancel() that lands inside a command, so the watcher
            # also stops on a flag of its own; the wait is bounded all the same.
            stop_watching.set()
            for task in tasks:
                task.cancel()
            _, stuck = await asyncio.wait(tasks, timeout=self._config.cancel_poll_s + _STOP_GRACE_S)
            for task in stuck:
                logger.error("task %s: %s did not stop after cancel()", self.task_id, task.get_name())
        if agent.done() and not agent.cancelled():
            agent.result()  # re-raises the agent's failure
            return _Stop.FINISHED
        if watcher.done() and not watcher.cancelled() and watcher.result():
            return _Stop.CANCEL_REQUESTED
        return _Stop.LEASE_LOST

    async def _watch_cancel(self, stop: asyncio.Event) -> bool:
        """True once cancellation of the task was requested (polled, one HEXISTS each);
        False when told to stop."""
        while not stop.is_set():
            try:
                if await self._store.cancel_requested(self.task_id):
                    break
            except TRANSIENT_ERRORS as exc:
                logger.warning("task %s: cancel check failed: %r", self.task_id, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._config.cancel_poll_s)
        if stop.is_set():
            return False
        meta = await self._store.meta(self.task_id)
        if meta is not None and meta.cancel_reason:
            self._cancel_reason = meta.cancel_reason
        return True

    async def _finished(self, writer: StreamWriter) -> AttemptOutcome:
        if writer.completed:  # HybridAgent writes its own
            await writer.flush()
            return _DONE
        if self._result_success and not self._error_seen:
            await self._terminal(writer, [], "succeeded")
            return _DONE
        no_result = _error("the agent ended without a successful result", "NoResult")
        events = [] if self._error_seen else [no_result]
        await self._terminal(writer, events, "failed")
        return _DONE

    async def _model_failed(self, exc: ModelError, attempt: Attempt, writer: StreamWriter) -> AttemptOutcome:
        events = [] if self._error_seen else [_error(exc.message, exc.error_type, retryable=exc.retryable)]
        if exc.retryable and attempt.number < self._config.max_attempts:
            for event in events:
                await writer.append(event)
            await writer.flush()
            defer_s = self._backoff(attempt.number)
            logger.info(
                "task %s attempt %d: %r, retried in %.1fs", self.task_id, attempt.number, exc, defer_s
            )
            return AttemptOutcome(Outcome.RETRY, defer_s)
        if exc.retryable:
            events.append(_exhausted(attempt.number))
        await self._terminal(writer, events, "failed")
        return _DONE

    async def _failed(self, writer: StreamWriter, exc: BaseException) -> AttemptOutcome:
        logger.exception("task %s failed", self.task_id, exc_info=exc)
        await self._terminal(writer, [_error(str(exc) or repr(exc), type(exc).__name__)], "failed")
        return _DONE

    async def _cancelled(self, writer: StreamWriter, reason: str | None) -> AttemptOutcome:
        events = [] if self._cancelled_seen else [{"type": "cancelled", "reason": reason or "cancelled"}]
        await self._terminal(writer, events, "cancelled")
        return _DONE

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
