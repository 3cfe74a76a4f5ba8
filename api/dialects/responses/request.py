"""``POST /v1/responses``: the subset of OpenAI's create-response body this API honours.

``model`` names the agent; ``input`` is a string or a list of messages, of which the user
messages make the task's input and the system/developer messages join ``instructions``
(the agent's system prompt). Parameters this API cannot honour are refused (422), never
ignored: a caller must not believe a setting applied that did not.

An ``input`` may instead answer what the previous response waits for:
``mcp_approval_response`` items (an approval request's decision) and
``function_call_output`` items (the answer to a question, ``ask_user``'s call).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ApprovalAnswer", "CreateResponse", "InputMessage", "ToolOutput"]


class TextPart(BaseModel):
    """A text part of a message (``input_text``; ``output_text`` as the SDK may echo it)."""

    model_config = ConfigDict(extra="allow")

    type: Literal["input_text", "output_text", "text"]
    text: str


class InputMessage(BaseModel):
    """One message of ``input``: user text, or instructions from the system/developer."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["message"] = "message"
    role: Literal["user", "system", "developer"] = Field(
        description="assistant turns are not taken: continue with `previous_response_id`"
    )
    content: str | list[TextPart]

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content)


class ApprovalAnswer(BaseModel):
    """A decision on an ``mcp_approval_request`` of the previous response."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["mcp_approval_response"]
    approval_request_id: str = Field(min_length=1, max_length=300)
    approve: bool
    reason: str | None = Field(default=None, max_length=2000)
    id: str | None = None


class ToolOutput(BaseModel):
    """The output of a call the previous response left unanswered (a question)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["function_call_output"]
    call_id: str = Field(min_length=1, max_length=200)
    output: str = Field(min_length=1)
    id: str | None = None
    status: str | None = None


class CreateResponse(BaseModel):
    """A response to create: a task of the agent ``model``."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        description="the agent's name (`llm`, `tool`, `hybrid`, or one of the worker's catalog)"
    )
    input: str | list[InputMessage | ApprovalAnswer | ToolOutput] = Field(
        description="the user's text, or messages; or the answers to what the previous response waits for"
    )
    instructions: str | None = Field(default=None, description="the agent's system prompt for this task")
    previous_response_id: str | None = Field(
        default=None, description="continue that response's conversation (the worker's memory of it)"
    )
    background: bool = Field(
        default=False,
        description="every response runs as a durable task; without `background` or `stream`, "
        "the call waits for its end",
    )
    stream: bool = False
    store: Literal[True] | None = Field(default=None, description="responses are always stored (as tasks)")
    metadata: dict[str, str] | None = Field(default=None, max_length=16)

    def messages(self) -> list[InputMessage]:
        return [] if isinstance(self.input, str) else [m for m in self.input if isinstance(m, InputMessage)]

    def answers(self) -> list[ApprovalAnswer | ToolOutput]:
        """The items that answer the previous response (none for a plain request)."""
        if isinstance(self.input, str):
            return []
        return [m for m in self.input if isinstance(m, ApprovalAnswer | ToolOutput)]

    def user_text(self) -> str:
        """The task's input: the string, or the user messages' text joined by blank lines."""
        if isinstance(self.input, str):
            return self.input
        return "\n\n".join(m.text for m in self.messages() if m.role == "user" and m.text)

    def system_text(self) -> str | None:
        """``instructions``, then the system/developer messages' text, joined."""
        parts = [self.instructions] if self.instructions else []
        parts += [m.text for m in self.messages() if m.role != "user" and m.text]
        return "\n\n".join(parts) or None

    def task_fields(self) -> dict[str, Any]:
        """The ``SubmitTask`` fields of this request (``session_id`` is the route's)."""
        return {
            "input": self.user_text(),
            "agent": self.model,
            "instructions": self.system_text(),
            "metadata": dict(self.metadata or {}),
        }
