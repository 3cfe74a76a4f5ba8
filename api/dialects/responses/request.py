"""``POST /v1/responses``: the subset of OpenAI's create-response body this API honours.

``model`` names the agent; ``input`` is a string or a list of messages, of which the user
messages make the task's input and the system/developer messages join ``instructions``
(the agent's system prompt). Parameters this API cannot honour are refused (422), never
ignored: a caller must not believe a setting applied that did not.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CreateResponse", "InputMessage"]


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


class CreateResponse(BaseModel):
    """A response to create: a task of the agent ``model``."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        description="the agent's name (`llm`, `tool`, `hybrid`, or one of the worker's catalog)"
    )
    input: str | list[InputMessage] = Field(description="the user's text, or messages")
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

    def user_text(self) -> str:
        """The task's input: the string, or the user messages' text joined by blank lines."""
        if isinstance(self.input, str):
            return self.input
        return "\n\n".join(m.text for m in self.input if m.role == "user" and m.text)

    def system_text(self) -> str | None:
        """``instructions``, then the system/developer messages' text, joined."""
        parts = [self.instructions] if self.instructions else []
        if not isinstance(self.input, str):
            parts += [m.text for m in self.input if m.role != "user" and m.text]
        return "\n\n".join(parts) or None

    def task_fields(self) -> dict[str, Any]:
        """The ``SubmitTask`` fields of this request (``session_id`` is the route's)."""
        return {
            "input": self.user_text(),
            "agent": self.model,
            "instructions": self.system_text(),
            "metadata": dict(self.metadata or {}),
        }
