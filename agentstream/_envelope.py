"""The fields every event has (:class:`Envelope`) and its ``loop_scope``: the base of the
typed event models of :mod:`agentstream.events`, which re-exports them."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["Envelope", "JsonObject", "LoopScope"]

JsonObject = dict[str, Any]


class LoopScope(BaseModel):
    """Where an event was produced: ``main`` or a workflow (``dawp``) step."""

    model_config = ConfigDict(extra="allow")
    kind: str = "main"
    run_id: str | None = None
    workflow_id: str | None = None
    step_id: str | None = None
    step_index: int | None = None


class Envelope(BaseModel):
    """Fields every event has. ``seq``/``attempt``/``id`` are set once stored."""

    model_config = ConfigDict(extra="allow")
    task_id: str | None = None
    seq: int | None = None
    attempt: int | None = None
    #: ISO 8601 UTC; set by the writer when the event is stored
    timestamp: str | None = None
    agent_id: str | None = None
    loop_scope: LoopScope | None = None
    id: str | None = None
