"""Tools the agents can call, their registry, and the built-in tools.

A `Tool` is a function plus the JSON schema the model sees, built from the function's type
hints by pydantic. `ToolRegistry.call` validates the model's parameters, enforces the
tool's timeout and never raises for a tool failure: it returns a `ToolOutcome`, because a
failed tool is something to show the model (`tool_error`), not a reason to crash a task.

Built-ins: `calculator` (safe arithmetic on the `ast`, no `eval`), `current_time`, and
`http_get`, which is off unless `AGENTSTREAM_HTTP_GET_ALLOW` names the hosts it may reach.
"""

from __future__ import annotations

import ast
import asyncio
import copy
import inspect
import ipaddress
import logging
import math
import operator
import os
import socket
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpcore
import httpx
from agentstream.streams.settings import env_number
from agentstream.worker.app.context import ToolContext, context_parameter
from agentstream.worker.errors import (
    ConfigurationError,
    HttpGetRefused,
    ToolArgumentsInvalid,
    ToolError,
    ToolNotFound,
    UnsafeExpression,
)
from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import CoreSchema

__all__ = [
    "Tool",
    "ToolOutcome",
    "ToolRegistry",
    "ToolSettings",
    "calculator",
    "current_time",
    "default_registry",
    "evaluate_arithmetic",
    "make_http_get",
    "tool",
]

logger = logging.getLogger(__name__)

DEFAULT_TOOL_TIMEOUT_S = 30.0


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True, slots=True)
class ToolSettings:
    """Tool configuration, read once from the environment.

    `http_get_allow` both enables `http_get` (when non-empty) and limits it: an entry is a
    host (`api.example.com`), a suffix pattern (`*.example.com`), or `*` for any host whose
    every address is public. Hosts named explicitly may resolve to private addresses;
    that is how an operator lets the tool reach an internal service.
    """

    default_timeout_s: float = DEFAULT_TOOL_TIMEOUT_S
    http_get_allow: tuple[str, ...] = ()
    http_get_timeout_s: float = 10.0
    http_get_max_bytes: int = 256 * 1024

    def __post_init__(self) -> None:
        if self.default_timeout_s <= 0 or self.http_get_timeout_s <= 0:
            raise ConfigurationError("tool timeouts must be positive numbers of seconds")
        if self.http_get_max_bytes <= 0:
            raise ConfigurationError("http_get_max_bytes must be positive")
        object.__setattr__(self, "http_get_allow", _normalise_allow(self.http_get_allow))

    @property
    def http_get_enabled(self) -> bool:
        return bool(self.http_get_allow)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ToolSettings:
        """Read `AGENTSTREAM_TOOL_TIMEOUT_S`, `AGENTSTREAM_HTTP_GET_ALLOW` (comma list),
        `AGENTSTREAM_HTTP_GET_TIMEOUT_S` and `AGENTSTREAM_HTTP_GET_MAX_BYTES`."""
        env = os.environ if environ is None else environ
        default = cls()
        return cls(
            default_timeout_s=env_number(
                env, "AGENTSTREAM_TOOL_TIMEOUT_S", default.default_timeout_s, error=ConfigurationError
            ),
            http_get_allow=tuple(env.get("AGENTSTREAM_HTTP_GET_ALLOW", "").split(",")),
            http_get_timeout_s=env_number(
                env, "AGENTSTREAM_HTTP_GET_TIMEOUT_S", default.http_get_timeout_s, error=ConfigurationError
            ),
            http_get_max_bytes=int(
                env_number(
                    env,
                    "AGENTSTREAM_HTTP_GET_MAX_BYTES",
                    default.http_get_max_bytes,
                    error=ConfigurationError,
                )
            ),
        )


def _normalise_host(host: str) -> str:
    return host.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")


def _normalise_allow(entries: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(e for e in map(_normalise_host, entries) if e))


# --------------------------------------------------------------------------- tools


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


# --------------------------------------------------------------------------- calculator

MAX_EXPRESSION_CHARS = 500
MAX_INT_BITS = 4096  # about 1233 decimal digits: plenty for arithmetic, cheap to compute
_ALLOWED_CHARS = frozenset("0123456789.eE_+-*/%() \t\n")
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}


def evaluate_arithmetic(expression: str) -> int | float:
    """Evaluate plain arithmetic safely: numbers, + - * / // % **, unary signs, brackets.

    Raises `UnsafeExpression` for anything else or anything too large, and `ToolError`
    for malformed input or arithmetic errors such as division by zero.
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise UnsafeExpression(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    if "^" in expression:
        raise UnsafeExpression("'^' is not allowed; write powers as 2 ** 10")
    # Checking characters first keeps names, strings and calls out before parsing at all.
    if bad := sorted(set(expression) - _ALLOWED_CHARS):
        raise UnsafeExpression(
            f"character(s) {', '.join(map(repr, bad))} not allowed: "
            "use numbers, + - * / // % ** and parentheses only"
        )
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"invalid expression: {exc.msg}", tool_name="calculator") from None
    try:
        value = _evaluate(tree.body)
    except ZeroDivisionError:
        raise ToolError("division by zero", tool_name="calculator") from None
    except (OverflowError, RecursionError):
        raise UnsafeExpression("the result is too large") from None
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def _evaluate(node: ast.expr) -> int | float:
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise UnsafeExpression(f"constant {value!r} is not a number")
        return _bounded(value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _bounded(_UNARY[type(node.op)](_evaluate(node.operand)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _bounded(_BINARY[type(node.op)](left, right))
    raise UnsafeExpression(f"{type(node).__name__} is not allowed in arithmetic")


def _check_power(base: int | float, exponent: int | float) -> None:
    # An int power is computed exactly, however long it takes: refuse it up front.
    exact = isinstance(base, int) and isinstance(exponent, int) and exponent > 0
    if exact and abs(base) > 1 and math.log2(abs(base)) * exponent > MAX_INT_BITS:
        raise UnsafeExpression(f"{base} ** {exponent} is too large")


def _bounded(value: object) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ToolError("the result is not a real number", tool_name="calculator")
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise UnsafeExpression("the result is too large")
    if isinstance(value, float) and not math.isfinite(value):
        raise UnsafeExpression("the result is too large or not a number")
    return value


@tool(timeout_s=5.0)
def calculator(expression: str) -> int | float:
    """Evaluate an arithmetic expression such as "17 * 23" or "(2 + 3) ** 2 / 7".

    Supports numbers, + - * / // % **, unary minus and parentheses; nothing else.
    """
    return evaluate_arithmetic(expression)


@tool(timeout_s=5.0)
def current_time(timezone: str = "UTC") -> str:
    """The current date and time as ISO 8601, in an IANA timezone such as "Europe/Paris"."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ToolError(
            f"unknown timezone {timezone!r}; use an IANA name such as 'Europe/Paris'",
            tool_name="current_time",
        ) from None
    return datetime.now(zone).isoformat()


# --------------------------------------------------------------------------- http_get


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _allow_match(host: str, allow: tuple[str, ...]) -> Literal["explicit", "public"] | None:
    """How `host` is allowed: named explicitly, only if public (`*`), or not at all."""
    wildcard = False
    for entry in allow:
        if entry == "*":
            wildcard = True
        elif host == entry or (entry.startswith("*.") and host.endswith(entry[1:])):
            return "explicit"
    return "public" if wildcard else None


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves, vets and connects in one step, so the address checked is the address
    used: a DNS answer that changes between check and connect cannot reach a private
    network (DNS rebinding). Every redirect hop goes through here too."""

    def __init__(self, allow: tuple[str, ...], resolve_timeout_s: float) -> None:
        self._allow = allow
        self._resolve_timeout_s = resolve_timeout_s
        self._inner = httpcore.AnyIOBackend()

    async def vet(self, host: str, port: int) -> list[str]:
        """The addresses `host` may be reached at; raises `HttpGetRefused`."""
        host = _normalise_host(host)
        match = _allow_match(host, self._allow)
        if match is None:
            raise HttpGetRefused(
                f"host {host!r} is not allowed; allowed hosts: {', '.join(self._allow)} "
                "(AGENTSTREAM_HTTP_GET_ALLOW)"
            )
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._resolve_timeout_s):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as exc:
            raise ToolError(f"cannot resolve {host!r}: {exc}", tool_name="http_get") from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if match == "public":
            for address in addresses:
                if not _is_public(address):
                    raise HttpGetRefused(
                        f"host {host!r} resolves to the non-public address {address}; "
                        "list the host explicitly in AGENTSTREAM_HTTP_GET_ALLOW to allow it"
                    )
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self.vet(host, port)
        failure: Exception = ToolError(f"no address for {host!r}", tool_name="http_get")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise HttpGetRefused("http_get does not connect to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, backend: _GuardedBackend) -> None:
        super().__init__(trust_env=False)
        # httpx has no public hook for the network backend; replacing the pool it built is
        # the only way to make every connection go through the vetting backend.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=backend,
        )


def make_http_get(settings: ToolSettings) -> Tool:
    """The `http_get` tool, limited by `settings` (see `ToolSettings`)."""
    allow = settings.http_get_allow
    limit = settings.http_get_max_bytes
    timeout = httpx.Timeout(settings.http_get_timeout_s)

    async def http_get(url: str) -> dict[str, Any]:
        """Fetch a web page or API response over HTTP(S) GET and return its text.

        Only allow-listed hosts can be fetched; long bodies are truncated.
        """
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https"):
            raise HttpGetRefused(f"only http and https URLs are allowed, got {url!r}")
        backend = _GuardedBackend(allow, settings.http_get_timeout_s)
        try:
            async with httpx.AsyncClient(
                transport=_GuardedTransport(backend),
                timeout=timeout,
                follow_redirects=True,
                max_redirects=5,
                trust_env=False,
                headers={"accept-encoding": "identity"},  # no decompression bombs
            ) as client:
                return await _fetch(client, parsed, limit)
        except httpx.HTTPError as exc:
            raise ToolError(f"GET {url} failed: {type(exc).__name__}: {exc}", tool_name="http_get") from None

    return tool(timeout_s=settings.http_get_timeout_s)(http_get)


async def _fetch(client: httpx.AsyncClient, url: httpx.URL, limit: int) -> dict[str, Any]:
    body = bytearray()
    truncated = False
    async with client.stream("GET", url) as response:
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > limit:
                del body[limit:]
                truncated = True
                break
        try:
            text = body.decode(response.encoding or "utf-8", errors="replace")
        except LookupError:
            text = body.decode("utf-8", errors="replace")
        return {
            "url": str(response.url),
            "status": response.status_code,
            "content_type": response.headers.get("content-type", ""),
            "text": text,
            "truncated": truncated,
        }


# --------------------------------------------------------------------------- registry


def default_registry(settings: ToolSettings | None = None) -> ToolRegistry:
    """A registry with the built-ins; `http_get` only when `settings` enables it."""
    settings = settings if settings is not None else ToolSettings.from_env()
    registry = ToolRegistry([calculator, current_time], default_timeout_s=settings.default_timeout_s)
    if settings.http_get_enabled:
        registry.register(make_http_get(settings))
    return registry
