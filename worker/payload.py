"""What the API enqueues and the worker runs: the job name and its payload.

This module is the only part of ``worker`` that ``api`` imports (besides the CLI, the
composition root), so it depends on nothing but pydantic.
"""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["AGENT_NAME_REGEX", "EXPIRE_JOB_NAME", "JOB_NAME", "MAX_INPUT_CHARS", "TaskRequest"]

#: the arq function name of the job that runs one task (all attempts)
JOB_NAME = "run_task"
#: the arq function name of the deferred job that ends a wait for input past its deadline
EXPIRE_JOB_NAME = "expire_input"
#: inputs above this are refused at the API with 413
MAX_INPUT_CHARS = 100_000
#: an agent name: a built-in kind (llm, tool, hybrid) or a named agent of the worker's App
AGENT_NAME_REGEX = r"^[A-Za-z0-9_.-]{1,64}$"


class TaskRequest(BaseModel):
    """One task as submitted: what to run and with which agent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: str = Field(min_length=1, max_length=MAX_INPUT_CHARS)
    agent: str = Field(default="hybrid", pattern=AGENT_NAME_REGEX)
    tools: list[str] | None = Field(default=None, max_length=32)
    model: str | None = Field(default=None, max_length=200)
    #: the agent's system prompt for this task (OpenAI Responses' ``instructions``)
    instructions: str | None = Field(default=None, max_length=MAX_INPUT_CHARS)
    session_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,128}$")
    metadata: dict[str, Any] = Field(default_factory=dict)
    #: None: the agent's own budget (8 for the built-in kinds)
    max_iterations: int | None = Field(default=None, ge=1, le=50)
    #: a workflow document (markdown) run as a chain before the main loop
    workflow: str | None = Field(default=None, max_length=MAX_INPUT_CHARS)
    #: stream ``dawp_run_started``/``dawp_run_completed`` around the workflow (as the seed's)
    stream_boundary_events: bool = False
    #: tools whose calls wait for a person's approval in this task (besides the tools
    #: declared ``requires_approval``)
    approve_tools: list[str] | None = Field(default=None, max_length=32)
    #: how long this task may wait for input; None: ``AGENTSTREAM_INPUT_TIMEOUT_S``
    input_timeout_s: float | None = Field(default=None, gt=0, le=30 * 86400)
    #: the submit request's trace context (W3C ``traceparent``/``tracestate``), carried
    #: opaquely to the worker so its spans join the submit's trace; empty without tracing
    trace_context: dict[str, str] = Field(default_factory=dict, max_length=4)

    @field_validator("metadata")
    @classmethod
    def _storable(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Stored as JSON with orjson, which refuses integers beyond 64 bits: say so here
        # (422) rather than fail when the task is written.
        try:
            orjson.dumps(value)
        except TypeError as exc:
            raise ValueError(f"metadata is not storable as JSON: {exc}") from None
        return value
