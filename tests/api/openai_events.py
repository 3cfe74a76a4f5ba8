"""Reading the Responses dialect with the real ``openai`` SDK: every event must parse into
the SDK's own class for its type, strictly, with nothing the SDK does not know."""

from __future__ import annotations

import asyncio
from typing import Any, get_args

from openai.types.responses import ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter

EVENTS: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def no_extras(model: Any, where: str = "event") -> None:
    """Nothing we send is unknown to the SDK's models, at any depth."""
    if isinstance(model, BaseModel):
        assert not model.model_extra, f"{where}: fields the SDK does not know: {model.model_extra}"
        for name in type(model).model_fields:
            no_extras(getattr(model, name), f"{where}.{name}")
    elif isinstance(model, list):
        for i, value in enumerate(model):
            no_extras(value, f"{where}[{i}]")


def typed(event: Any) -> Any:
    """The event is the SDK's class for its type (an unknown type silently lands in the
    union's first class), validates strictly against it, and carries nothing unknown."""
    assert get_args(type(event).model_fields["type"].annotation) == (event.type,), type(event)
    strict = EVENTS.validate_python(event.to_dict())
    assert type(strict) is type(event)
    no_extras(event)
    return event


async def collect(stream: Any, limit: int | None = None) -> list[Any]:
    """The stream's events (the first ``limit`` of them), each checked by :func:`typed`."""
    events = []
    async with asyncio.timeout(30):
        async for event in stream:
            events.append(typed(event))
            if limit is not None and len(events) == limit:
                break
    return events


def numbers(events: list[Any]) -> list[int]:
    """The events' sequence numbers."""
    return [e.sequence_number for e in events]
