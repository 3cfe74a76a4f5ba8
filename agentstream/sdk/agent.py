"""An agent the API serves, driven the way in-process agents are (PROTOCOL section 4):
``execute_task_streaming`` and ``process_message_streaming``, AIECS's two streaming calls,
over HTTP::

    agent = client.agent("hybrid")
    async for event in agent.execute_task_streaming({"description": "What is 17 * 23?"}):
        ...                                    # event dicts, as the in-process agent yields
    async for token in agent.process_message_streaming("Hello", sender_id="user-123"):
        ...                                    # str tokens; memory per sender_id

**Waiting for a person.** ``execute_task_streaming`` yields the wait events
(``approval_required``, ``input_required``) like every other event and stays connected
through the wait; answer one with :meth:`RemoteAgent.approve`, :meth:`~RemoteAgent.deny`
or :meth:`~RemoteAgent.answer` (given the event) and keep iterating. A token stream has no
place for a question, so ``process_message_streaming`` hands each wait to its ``on_wait``
callback (a :class:`~agentstream.sdk.messages.HumanMessage` to answer) and goes on; without
one it raises :class:`~agentstream.sdk.errors.TaskWaiting`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from agentstream.sdk.errors import TaskFailed, TaskWaiting
from agentstream.sdk.messages import HumanMessage, human_message

if TYPE_CHECKING:
    from agentstream.sdk.client import AgentStreamClient

__all__ = ["RemoteAgent", "WaitHandler"]

JsonObject = dict[str, Any]
#: what ``process_message_streaming`` does with a call that waits for a person
WaitHandler = Callable[[HumanMessage], Awaitable[Any]]
_WAITS = ("approval_required", "input_required")
#: a token stream asks the server for these only
_MESSAGE_TYPES = "token,approval_required,input_required,result"


def _task_text(task: Mapping[str, Any]) -> str:
    for key in ("description", "input", "prompt"):
        value = task.get(key)
        if isinstance(value, str) and value.strip():
            return value
    raise ValueError("the task needs its text as 'description' (or 'input')")


class RemoteAgent:
    """One agent (``name``: a built-in kind or a named agent of the worker's app) of the
    API behind ``client``. ``submit_options`` are :meth:`AgentStreamClient.submit`'s
    (``tools``, ``model``, ``approve_tools``, ``max_iterations``, ...), applied to every
    run."""

    def __init__(self, client: AgentStreamClient, name: str = "hybrid", **submit_options: Any) -> None:
        self.client = client
        self.name = name
        self.submit_options = submit_options

    async def _submit(self, text: str, **options: Any) -> str:
        task = await self.client.submit(text, agent=self.name, **{**self.submit_options, **options})
        return str(task["task_id"])

    async def execute_task_streaming(
        self, task: Mapping[str, Any], context: Mapping[str, Any] | None = None
    ) -> AsyncIterator[JsonObject]:
        """Run ``task`` (its text in ``description``; ``task_id`` makes the submit
        idempotent) and yield every event of its stream as a dict, to ``completed``.
        ``context``: ``sender_id`` (multi-turn memory: the task's session) and
        ``approve_tools`` (tools whose calls wait for approval).

        A call that waits for a person is an ``approval_required``/``input_required``
        event: answer it with :meth:`approve`, :meth:`deny` or :meth:`answer` and keep
        iterating; the stream goes on with ``input``, ``retry`` and the rest.
        """
        context = context or {}
        options: dict[str, Any] = {}
        if isinstance(task.get("task_id"), str):
            options["task_id"] = task["task_id"]
        if context.get("sender_id") is not None:
            options["session_id"] = str(context["sender_id"])
        approve = context.get("approve_tools")
        if approve is not None:
            options["approve_tools"] = list(approve)
        task_id = await self._submit(_task_text(task), **options)
        stream = cast("AsyncGenerator[JsonObject, None]", self.client.events(task_id, mode="all"))
        async with contextlib.aclosing(stream):
            async for event in stream:
                yield event

    async def process_message_streaming(
        self, message: str, sender_id: str = "default", *, on_wait: WaitHandler | None = None
    ) -> AsyncIterator[str]:
        """Answer one chat message, streaming the answer's tokens; the conversation with
        ``sender_id`` is remembered (the task's session).

        A call that waits for a person goes to ``on_wait`` (a ``HumanMessage``: answer it
        there, ``await msg.approve()``, ``.deny()``, ``.answer(text)``), and the tokens go
        on once the task does. Without ``on_wait``: :class:`TaskWaiting` (the task keeps
        waiting). A task that ends failed or cancelled raises :class:`TaskFailed`, as the
        in-process agent raises its model's errors.
        """
        task_id = await self._submit(message, session_id=sender_id)
        failure: str | None = None
        events = self.client.events(task_id, mode="all", types=_MESSAGE_TYPES)
        stream = cast("AsyncGenerator[JsonObject, None]", events)
        async with contextlib.aclosing(stream):
            async for event in stream:
                kind = event.get("type")
                if kind == "token" and "loop_scope" not in event:
                    yield str(event.get("content") or "")
                elif kind in _WAITS:
                    waiting = human_message(event, self.client)
                    if on_wait is None:
                        raise TaskWaiting(task_id, waiting, event.get("id"))
                    await on_wait(waiting)
                elif kind in ("error", "cancelled"):
                    failure = str(event.get("error") or event.get("reason") or kind)
                elif kind == "completed" and event.get("status") != "succeeded":
                    status = str(event.get("status") or "failed")
                    raise TaskFailed(task_id, status, failure or f"the task {status}")

    # ------------------------------------------------------------------ answers

    async def approve(self, wait: Mapping[str, Any], reason: str | None = None) -> JsonObject:
        """Approve the call of an ``approval_required`` event."""
        return await self._waiting(wait).approve(reason)

    async def deny(self, wait: Mapping[str, Any], reason: str | None = None) -> JsonObject:
        """Deny the call of an ``approval_required`` event (the model is told, with ``reason``)."""
        return await self._waiting(wait).deny(reason)

    async def answer(self, wait: Mapping[str, Any], message: str) -> JsonObject:
        """Answer the question of an ``input_required`` event."""
        return await self._waiting(wait).answer(message)

    def _waiting(self, wait: Mapping[str, Any]) -> HumanMessage:
        if wait.get("type") not in _WAITS or not isinstance(wait.get("task_id"), str):
            raise ValueError("pass the approval_required or input_required event itself")
        return human_message(wait, self.client)

    def __repr__(self) -> str:
        return f"RemoteAgent({self.name!r})"
