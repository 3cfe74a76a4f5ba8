"""Tools: schemas from type hints, the registry's never-raise contract, and the built-ins."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field

from agentstream.worker.errors import ConfigurationError, ToolError, ToolNotFound, UnsafeExpression
from agentstream.worker.tools import (
    Tool,
    ToolOutcome,
    ToolRegistry,
    ToolSettings,
    calculator,
    current_time,
    default_registry,
    evaluate_arithmetic,
    make_http_get,
    tool,
)
from agentstream.worker.tools.http_get import _allow_match

# --------------------------------------------------------------------------- calculator


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("17 * 23", 391),
        ("(2 + 3) * 4", 20),
        ("2 ** 10", 1024),
        ("7 / 2", 3.5),
        ("6 / 3", 2),
        ("7 // 2", 3),
        ("-7 % 3", 2),
        ("-(3 + 4)", -7),
        ("+5", 5),
        ("1_000 * 1.5", 1500),
        ("2 ** -1", 0.5),
        ("1e3", 1000),
        ("2 ** 4000", 2**4000),
    ],
)
def test_calculator_evaluates_arithmetic(expression: str, expected: float) -> None:
    result = evaluate_arithmetic(expression)

    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os')", "not allowed"),
        ("x + 1", "not allowed"),
        ("abs(-1)", "not allowed"),
        ("e", "Name is not allowed"),
        ("1 .e", "Attribute is not allowed"),
        ("2 ^ 3", "write powers as 2 \\*\\* 10"),
        ("9 ** 9 ** 9", "too large"),
        ("10 ** 100000", "too large"),
        ("(2 ** 4000) * (2 ** 4000)", "too large"),
        ("1e308 * 10", "too large"),
        ("1e999", "too large"),
        ("1" + " + 1" * 200, "longer than 500"),
    ],
)
def test_calculator_refuses_what_is_not_small_arithmetic(expression: str, message: str) -> None:
    with pytest.raises(UnsafeExpression, match=message):
        evaluate_arithmetic(expression)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("1 / 0", "division by zero"),
        ("5 // 0", "division by zero"),
        ("5 % 0", "division by zero"),
        ("(-8) ** 0.5", "not a real number"),
        ("(1 + ", "invalid expression"),
        ("", "invalid expression"),
    ],
)
def test_calculator_reports_arithmetic_errors(expression: str, message: str) -> None:
    with pytest.raises(ToolError, match=message) as caught:
        evaluate_arithmetic(expression)
    assert caught.value.tool_name == "calculator"


async def test_calculator_errors_reach_the_model_as_error_outcomes() -> None:
    registry = default_registry(ToolSettings())

    assert await registry.call("calculator", {"expression": "17 * 23"}) == ToolOutcome(True, 391)
    outcome = await registry.call("calculator", {"expression": "__import__('os').system('id')"})
    assert outcome.success is False
    assert outcome.error is not None and "not allowed" in outcome.error
    assert await registry.call("calculator", {"expression": "1/0"}) == ToolOutcome(
        False, None, "division by zero"
    )


# --------------------------------------------------------------------------- current_time


async def test_current_time_defaults_to_utc() -> None:
    outcome = await default_registry(ToolSettings()).call("current_time", {})

    assert outcome.success
    stamp = datetime.fromisoformat(outcome.result)
    assert stamp.utcoffset() == timedelta(0)


async def test_current_time_in_a_named_zone_and_an_unknown_one() -> None:
    registry = default_registry(ToolSettings())

    tokyo = await registry.call("current_time", {"timezone": "Asia/Tokyo"})
    assert datetime.fromisoformat(tokyo.result).utcoffset() == timedelta(hours=9)
    unknown = await registry.call("current_time", {"timezone": "Mars/Olympus"})
    assert unknown.success is False
    assert unknown.error == "unknown timezone 'Mars/Olympus'; use an IANA name such as 'Europe/Paris'"


# --------------------------------------------------------------------------- schemas


def test_schema_comes_from_type_hints() -> None:
    @tool
    def search(
        query: Annotated[str, Field(description="what to look for")],
        limit: int = 10,
        kind: Literal["web", "news"] = "web",
        tags: list[str] | None = None,
    ) -> list[str]:
        """Search the index."""
        return []

    assert search.name == "search"
    assert search.description == "Search the index."
    assert search.parameters == {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "what to look for"},
            "limit": {"type": "integer", "default": 10},
            "kind": {"type": "string", "enum": ["web", "news"], "default": "web"},
            "tags": {
                "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
                "default": None,
            },
        },
        "required": ["query"],
        "additionalProperties": False,
    }


class Point(BaseModel):
    """A point on the plane."""

    x: float
    y: float


async def test_a_pydantic_model_argument_is_the_schema_and_is_passed_whole() -> None:
    @tool(name="norm", description="Length of a vector.", timeout_s=1)
    async def norm_of(point: Point) -> float:
        return float((point.x**2 + point.y**2) ** 0.5)

    assert norm_of.name == "norm"
    assert norm_of.parameters["properties"] == {"x": {"type": "number"}, "y": {"type": "number"}}
    assert "title" not in norm_of.parameters
    assert await ToolRegistry([norm_of]).call("norm", {"x": 3, "y": 4}) == ToolOutcome(True, 5.0)


def test_openai_schema_selects_tools_and_returns_copies() -> None:
    registry = default_registry(ToolSettings())

    schema = registry.openai_schema(["calculator"])
    assert schema == [
        {
            "type": "function",
            "function": {
                "name": "calculator",
                "description": calculator.description,
                "parameters": calculator.parameters,
            },
        }
    ]
    schema[0]["function"]["parameters"]["properties"].clear()
    assert calculator.parameters["properties"] == {"expression": {"type": "string"}}
    assert [item["function"]["name"] for item in registry.openai_schema()] == registry.names()
    with pytest.raises(ToolNotFound, match="available tools: calculator, current_time"):
        registry.openai_schema(["calculator", "nope"])


def test_registration_errors_are_configuration_errors() -> None:
    registry = ToolRegistry([calculator])

    with pytest.raises(ConfigurationError, match="already registered"):
        registry.register(calculator)

    def variadic(*args: int) -> int:
        return sum(args)

    with pytest.raises(ConfigurationError, match="no \\*args"):
        registry.register(variadic)
    with pytest.raises(ConfigurationError, match="must be an identifier"):
        tool(name="not a name")(variadic)


def test_a_tool_is_still_callable_directly() -> None:
    assert calculator("2 * 21") == 42
    assert isinstance(current_time, Tool)


# --------------------------------------------------------------------------- registry


async def test_unknown_tools_and_bad_parameters_are_error_outcomes() -> None:
    registry = default_registry(ToolSettings())

    unknown = await registry.call("rm_rf", {})
    assert unknown == ToolOutcome(
        False, None, "unknown tool 'rm_rf'; available tools: calculator, current_time"
    )
    missing = await registry.call("calculator", {})
    assert missing.success is False
    assert missing.error == "invalid parameters for tool 'calculator': expression: Field required"
    extra = await registry.call("calculator", {"expression": "1", "shell": "id"})
    assert extra.error is not None and "shell: Extra inputs are not permitted" in extra.error


async def test_parameters_are_validated_and_coerced() -> None:
    registry = ToolRegistry()

    @registry.register
    def add(a: int, b: int = 1) -> int:
        return a + b

    assert await registry.call("add", {"a": "41"}) == ToolOutcome(True, 42)
    wrong = await registry.call("add", {"a": "forty"})
    assert wrong.success is False and wrong.error is not None and "a: Input should be" in wrong.error


async def test_a_slow_tool_times_out() -> None:
    registry = ToolRegistry()

    @registry.register
    @tool(timeout_s=0.05)
    async def wait() -> str:
        await asyncio.sleep(10)
        return "done"

    assert await registry.call("wait", {}) == ToolOutcome(False, None, "tool 'wait' timed out after 0.05s")


async def test_a_timeout_raised_by_the_tool_itself_is_not_mistaken_for_ours() -> None:
    async def flaky() -> None:
        raise TimeoutError("upstream took too long")

    outcome = await ToolRegistry([flaky]).call("flaky", {})
    assert outcome.success is False
    assert outcome.error is not None and "upstream took too long" in outcome.error


async def test_sync_tools_run_in_a_thread() -> None:
    def where() -> int:
        return threading.get_ident()

    outcome = await ToolRegistry([where]).call("where", {})
    assert outcome.success and outcome.result != threading.get_ident()


async def test_a_crashing_tool_is_an_error_outcome(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise RuntimeError("disk on fire")

    outcome = await ToolRegistry([broken]).call("broken", {})
    assert outcome == ToolOutcome(False, None, "tool 'broken' failed: RuntimeError('disk on fire')")
    assert "broken" in caplog.text


async def test_cancellation_is_not_turned_into_an_outcome() -> None:
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(10)

    task = asyncio.create_task(ToolRegistry([forever]).call("forever", {}))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# --------------------------------------------------------------------------- settings


def test_tool_settings_from_environment() -> None:
    settings = ToolSettings.from_env(
        {
            "AGENTSTREAM_HTTP_GET_ALLOW": " API.example.com, *.internal ,,[::1]",
            "AGENTSTREAM_HTTP_GET_TIMEOUT_S": "3",
            "AGENTSTREAM_HTTP_GET_MAX_BYTES": "1024",
            "AGENTSTREAM_TOOL_TIMEOUT_S": "12",
        }
    )

    assert settings.http_get_allow == ("api.example.com", "*.internal", "::1")
    assert settings.http_get_enabled
    assert (settings.http_get_timeout_s, settings.http_get_max_bytes) == (3.0, 1024)
    assert settings.default_timeout_s == 12.0
    with pytest.raises(ConfigurationError, match="AGENTSTREAM_HTTP_GET_MAX_BYTES must be a number"):
        ToolSettings.from_env({"AGENTSTREAM_HTTP_GET_MAX_BYTES": "lots"})


def test_http_get_is_off_by_default() -> None:
    assert not ToolSettings.from_env({}).http_get_enabled
    assert "http_get" not in default_registry(ToolSettings())
    assert "http_get" in default_registry(ToolSettings(http_get_allow=("example.com",)))


@pytest.mark.parametrize(
    ("host", "allow", "expected"),
    [
        ("example.com", ("example.com",), "explicit"),
        ("api.example.com", ("*.example.com",), "explicit"),
        ("example.com", ("*.example.com",), None),
        ("evil-example.com", ("*.example.com",), None),
        ("anything.org", ("*",), "public"),
        ("localhost", ("example.com", "*"), "public"),
        ("localhost", ("localhost", "*"), "explicit"),
        ("example.org", ("example.com",), None),
    ],
)
def test_allow_list_matching(host: str, allow: tuple[str, ...], expected: str | None) -> None:
    assert _allow_match(host, allow) == expected


# --------------------------------------------------------------------------- http_get


@pytest.fixture
async def http_server() -> AsyncIterator[tuple[int, dict[str, bytes]]]:
    """A tiny HTTP/1.1 server on 127.0.0.1 answering each path with a canned response."""
    routes: dict[str, bytes] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            path = head.split(b" ", 2)[1].decode()
            writer.write(routes.get(path, response(404, b"not found")))
            await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield port, routes


def response(status: int, body: bytes, **headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def registry_allowing(*allow: str, max_bytes: int = 256 * 1024) -> ToolRegistry:
    return default_registry(
        ToolSettings(http_get_allow=allow, http_get_timeout_s=5, http_get_max_bytes=max_bytes)
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/",
        "http://localhost:9/",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/",
        "http://[::ffff:127.0.0.1]:9/",
        "http://0.0.0.0:9/",
    ],
)
async def test_http_get_refuses_non_public_addresses_unless_listed(url: str) -> None:
    outcome = await registry_allowing("*").call("http_get", {"url": url})

    assert outcome.success is False
    assert outcome.error is not None and "non-public address" in outcome.error


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:9/", "host '127.0.0.1' is not allowed"),
        ("file:///etc/passwd", "only http and https"),
        ("ftp://example.com/", "only http and https"),
    ],
)
async def test_http_get_refuses_hosts_and_schemes_not_allowed(url: str, message: str) -> None:
    outcome = await registry_allowing("example.com").call("http_get", {"url": url})

    assert outcome.success is False
    assert outcome.error is not None and message in outcome.error


async def test_http_get_fetches_from_an_allow_listed_host(http_server: tuple[int, dict[str, bytes]]) -> None:
    port, routes = http_server
    routes["/hello"] = response(200, b'{"hello": "world"}', content_type="application/json")

    outcome = await registry_allowing("127.0.0.1").call("http_get", {"url": f"http://127.0.0.1:{port}/hello"})

    assert outcome == ToolOutcome(
        True,
        {
            "url": f"http://127.0.0.1:{port}/hello",
            "status": 200,
            "content_type": "application/json",
            "text": '{"hello": "world"}',
            "truncated": False,
        },
    )


async def test_http_get_truncates_large_bodies(http_server: tuple[int, dict[str, bytes]]) -> None:
    port, routes = http_server
    routes["/big"] = response(200, b"x" * 5000, content_type="text/plain")

    outcome = await registry_allowing("127.0.0.1", max_bytes=1024).call(
        "http_get", {"url": f"http://127.0.0.1:{port}/big"}
    )

    assert outcome.success
    assert outcome.result["text"] == "x" * 1024
    assert outcome.result["truncated"] is True


async def test_http_get_vets_every_redirect(http_server: tuple[int, dict[str, bytes]]) -> None:
    port, routes = http_server
    routes["/jump"] = response(302, b"", location=f"http://localhost:{port}/hello")
    routes["/hello"] = response(200, b"secret")

    outcome = await registry_allowing("127.0.0.1").call("http_get", {"url": f"http://127.0.0.1:{port}/jump"})

    assert outcome.success is False
    assert outcome.error is not None and "host 'localhost' is not allowed" in outcome.error


async def test_http_get_reports_connection_failures() -> None:
    outcome = await registry_allowing("127.0.0.1").call("http_get", {"url": "http://127.0.0.1:9/"})

    assert outcome.success is False
    assert outcome.error is not None and outcome.error.startswith(
        "GET http://127.0.0.1:9/ failed: ConnectError"
    )


def test_http_get_tool_schema() -> None:
    http_get = make_http_get(ToolSettings(http_get_allow=("example.com",)))

    assert http_get.name == "http_get"
    assert http_get.parameters["required"] == ["url"]
    assert http_get.timeout_s == 10.0
