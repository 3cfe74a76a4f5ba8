"""Tools and their registry.

A :class:`Tool` is a function plus the JSON schema the model sees, built from the
function's type hints by pydantic. :meth:`ToolRegistry.call` validates the model's
parameters, enforces the tool's timeout and never raises for a tool failure: it returns a
:class:`ToolOutcome`, because a failed tool is something to show the model
(``tool_error``), not a reason to crash a task.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import logging
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, overload

from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import CoreSchema

from agentstream.worker.app.context import ToolContext, context_parameter
from agentstream.worker.errors import ConfigurationError, ToolArgumentsInvalid, ToolError, ToolNotFound
from agentstream.worker.tools.settings import DEFAULT_TOOL_TIMEOUT_S

__all__ = ["Tool", "ToolOutcome", "ToolRegistry", "tool"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What a tool call produced: a result, or the error message the model will see."""

    success: bool
    result: Any = None
    error: str | None = None


class _NoTitles(GenerateJsonSchema):
    """Schemas without pydantic's per-field titles: tokens the model does not need."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def generate(self, schema: CoreSchema, mode: Any = "validation") -> dict[str, Any]:
        result = super().generate(schema, mode=mode)
        result.pop("title", None)
        return result


@dataclass(frozen=True, slots=True)
class Tool:
    """A callable the model may use: name, description, JSON schema and a timeout.

    Calling the `Tool` itself calls the wrapped function directly (no validation, no
    timeout); agents go through `run` or `ToolRegistry.call`.
    """

    name: str
    description: str
    parameters: dict[str, Any]
    fn: Callable[..., Any]
    timeout_s: float = DEFAULT_TOOL_TIMEOUT_S
    params_model: type[BaseModel] | None = None
    model_param: str | None = None
    #: the parameter that receives the call's `ToolContext` (left out of the schema)
    context_param: str | None = None
    #: a call waits for a person's approval before it runs (see `agentstream.worker.app.waits`)
    requires_approval: bool = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def openai_schema(self) -> dict[str, Any]:
        """This tool as an item of OpenAI's `tools=[...]` (a fresh copy)."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": copy.deepcopy(self.parameters),
            },
        }

    def validate(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments for `fn`, validated; raises `ToolArgumentsInvalid`."""
        if self.params_model is None:
            return dict(parameters)
        try:
            validated = self.params_model.model_validate(parameters)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, err['loc'])) or 'parameters'}: {err['msg']}" for err in exc.errors()
            )
            raise ToolArgumentsInvalid(
                f"invalid parameters for tool {self.name!r}: {problems}", tool_name=self.name
            ) from None
        if self.model_param is not None:
            return {self.model_param: validated}
        return {name: getattr(validated, name) for name in type(validated).model_fields}

    async def run(self, parameters: Mapping[str, Any], context: ToolContext | None = None) -> Any:
        """Validate, call within the timeout, return the result; raises `ToolError`.

        A tool taking a context gets `context` (a detached one when None).

        A sync function runs in a thread; on timeout the thread cannot be stopped and
        finishes in the background, so sync tools must bound their own work.
        """
        kwargs = self.validate(parameters)
        if self.context_param is not None:
            kwargs[self.context_param] = context or ToolContext(tool_name=self.name, tool_call_id="")
        deadline = asyncio.timeout(self.timeout_s)
        try:
            async with deadline:
                if _is_async_callable(self.fn):
                    return await self.fn(**kwargs)
                return await asyncio.to_thread(self.fn, **kwargs)
        except TimeoutError:
            if deadline.expired():
                raise ToolError(
                    f"tool {self.name!r} timed out after {self.timeout_s:g}s",
                    tool_name=self.name,
                ) from None
            raise


def _is_async_callable(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object with `async def __call__`
    )


def _build_tool(
    fn: Callable[..., Any], *, name: str | None, description: str | None, timeout_s: float
) -> Tool:
    tool_name: str = name or str(getattr(fn, "__name__", ""))
    if not tool_name.isidentifier():
        raise ConfigurationError(f"tool name {tool_name!r} must be an identifier; pass name=")
    if timeout_s <= 0:
        raise ConfigurationError(f"tool {tool_name!r}: timeout_s must be positive")
    params_model, model_param, context_param = _parameters_model(fn, tool_name)
    return Tool(
        name=tool_name,
        description=description or inspect.getdoc(fn) or tool_name,
        parameters=params_model.model_json_schema(schema_generator=_NoTitles),
        fn=fn,
        timeout_s=timeout_s,
        params_model=params_model,
        model_param=model_param,
        context_param=context_param,
    )


def _parameters_model(
    fn: Callable[..., Any], tool_name: str
) -> tuple[type[BaseModel], str | None, str | None]:
    """A pydantic model of `fn`'s parameters, or the model `fn` takes as its one argument;
    and the names of that one argument and of the context parameter, if any."""
    signature = inspect.signature(fn)
    hints = typing.get_type_hints(fn, include_extras=True)
    context_param = context_parameter(fn, hints)
    params = [param for param in signature.parameters.values() if param.name != context_param]
    for param in params:
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            raise ConfigurationError(
                f"tool {tool_name!r}: parameter {param.name!r} must be a plain or keyword-only "
                "parameter (no *args, **kwargs or positional-only)"
            )
    if len(params) == 1:
        only = hints.get(params[0].name)
        if isinstance(only, type) and issubclass(only, BaseModel):
            return only, params[0].name, context_param
    fields: dict[str, Any] = {
        param.name: (
            hints.get(param.name, Any),
            ... if param.default is param.empty else param.default,
        )
        for param in params
    }
    model = create_model(f"{tool_name}_parameters", __config__=ConfigDict(extra="forbid"), **fields)
    return model, None, context_param


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float = DEFAULT_TOOL_TIMEOUT_S,
) -> Callable[[Callable[..., Any]], Tool]: ...
def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout_s: float = DEFAULT_TOOL_TIMEOUT_S,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a `Tool` of a function: `@tool` or `@tool(name=..., timeout_s=...)`.

    The schema comes from the type hints (use `Annotated[int, Field(description=...)]`
    for per-parameter descriptions) or from a pydantic model taken as the only argument;
    the description defaults to the docstring.
    """

    def decorate(func: Callable[..., Any]) -> Tool:
        return _build_tool(func, name=name, description=description, timeout_s=timeout_s)

    return decorate(fn) if fn is not None else decorate


class ToolRegistry:
    """The tools an agent may call, by name."""

    def __init__(
        self,
        tools: Iterable[Tool | Callable[..., Any]] = (),
        *,
        default_timeout_s: float = DEFAULT_TOOL_TIMEOUT_S,
    ) -> None:
        self._tools: dict[str, Tool] = {}
        self._default_timeout_s = default_timeout_s
        for item in tools:
            self.register(item)

    def register(self, fn_or_tool: Tool | Callable[..., Any], *, timeout_s: float | None = None) -> Tool:
        """Add a tool (or a function, made into one); usable as a decorator."""
        if isinstance(fn_or_tool, Tool):
            new = fn_or_tool
        else:
            new = tool(timeout_s=timeout_s or self._default_timeout_s)(fn_or_tool)
        if new.name in self._tools:
            raise ConfigurationError(f"a tool named {new.name!r} is already registered")
        self._tools[new.name] = new
        return new

    def names(self) -> list[str]:
        return list(self._tools)

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def get(self, name: str) -> Tool:
        """The tool called `name`; raises `ToolNotFound`."""
        try:
            return self._tools[name]
        except KeyError:
            raise ToolNotFound(name, available=self.names()) from None

    def openai_schema(self, names: list[str] | None = None) -> list[dict[str, Any]]:
        """OpenAI `tools=[...]` for `names` (all tools when None); unknown names raise."""
        selected = self.names() if names is None else names
        return [self.get(name).openai_schema() for name in selected]

    async def call(
        self, name: str, parameters: Mapping[str, Any], context: ToolContext | None = None
    ) -> ToolOutcome:
        """Run a tool. Never raises for a failure of the tool: returns an error outcome."""
        try:
            result = await self.get(name).run(parameters, context)
        except ToolError as exc:
            return ToolOutcome(success=False, error=exc.message)
        except Exception as exc:
            logger.warning("tool %r raised", name, exc_info=True)
            return ToolOutcome(success=False, error=f"tool {name!r} failed: {exc!r}")
        return ToolOutcome(success=True, result=result)
