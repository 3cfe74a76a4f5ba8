"""One trace per task, from the API's submit span to the worker's spans, collected with
OpenTelemetry's in-memory exporter; and tracing that does nothing without OpenTelemetry."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from agentstream.streams import Reader, StreamsSettings, TaskStore, create_redis
from agentstream.worker.deps import WorkerDeps
from agentstream.worker.jobs import DEPS_KEY, run_task
from agentstream.worker.llm import ModelSettings, OpenAIClient
from agentstream.worker.scripted_llm import ScriptedLLMServer
from agentstream.worker.settings import WorkerConfig
from agentstream.worker.tools import ToolSettings, default_registry
from tests.api.helpers import key_id
from tests.api.server import ALICE, api_settings, serve

sdk_trace = pytest.importorskip("opentelemetry.sdk.trace", reason="the tracing tests need the otel extra")
from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

#: the caller's own trace, as a W3C traceparent header
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def provider() -> Iterator[Any]:
    """The process's tracer provider (OpenTelemetry allows one per process)."""
    current = trace.get_tracer_provider()
    if not isinstance(current, sdk_trace.TracerProvider):
        trace.set_tracer_provider(sdk_trace.TracerProvider())
        current = trace.get_tracer_provider()
    yield current


@pytest.fixture
def spans(provider: Any) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    try:
        yield exporter
    finally:
        # a processor cannot be removed: this one stops exporting and holds nothing
        processor.shutdown()
        exporter.clear()


@pytest.fixture
async def deps(settings: StreamsSettings, redis: Any) -> AsyncIterator[WorkerDeps]:
    """What a worker process shares, pointed at the scripted model."""
    async with ScriptedLLMServer(token_delay_s=0.0) as llm:
        client = create_redis(settings)
        config = WorkerConfig(streams=settings, queue_name=f"{settings.prefix}:queue", task_timeout_s=30)
        yield WorkerDeps(
            config=config,
            redis=client,
            store=TaskStore(client, settings),
            reader=Reader(client, settings),
            llm=OpenAIClient(ModelSettings(base_url=llm.base_url, max_retries=0)),
            registry=default_registry(ToolSettings()),
            worker_id=f"test:{uuid.uuid4().hex[:6]}",
        )
        await client.aclose()


async def submit_and_run(settings: StreamsSettings, deps: WorkerDeps, headers: dict[str, str]) -> str:
    async with serve(api_settings(settings)) as api, api.client(ALICE) as client:
        body = {"input": f"What is 17 * 23? {uuid.uuid4().hex[:6]}", "agent": "hybrid"}
        response = await client.post("/v1/tasks", json=body, headers=headers)
        assert response.status_code == 202, response.text
        task_id: str = response.json()["task_id"]
    async with asyncio.timeout(30):
        await run_task({DEPS_KEY: deps}, key_id(task_id))  # the job, as a worker runs it
    return task_id


async def test_one_trace_runs_from_the_submit_request_to_the_worker_tool(
    settings: StreamsSettings, deps: WorkerDeps, spans: InMemorySpanExporter
) -> None:
    task_id = await submit_and_run(settings, deps, {})
    finished = spans.get_finished_spans()
    by_name: dict[str, list[Any]] = {}
    for span in finished:
        by_name.setdefault(span.name, []).append(span)
    (submit,) = by_name["agentstream.submit"]
    (attempt,) = by_name["agentstream.attempt"]
    (tool,) = by_name["agentstream.tool"]
    trace_id = submit.context.trace_id
    # no traceparent: a new trace, rooted in the API (FastAPI's own request span, if any)
    roots = [span for span in finished if span.context.trace_id == trace_id and span.parent is None]
    assert len(roots) == 1 and f"{trace_id:032x}" != CALLER_TRACE
    assert tool.context.trace_id == trace_id == attempt.context.trace_id
    assert attempt.parent.span_id == submit.context.span_id
    assert tool.parent.span_id == attempt.context.span_id
    assert tool.attributes["agentstream.tool"] == "calculator"
    assert attempt.attributes["agentstream.task_id"] == task_id
    assert attempt.attributes["agentstream.tenant"] == "alice"
    assert submit.attributes["agentstream.task_id"] == task_id
    model_calls = by_name["agentstream.model_call"]
    flushes = by_name["agentstream.flush"]
    assert len(model_calls) == 2 and flushes
    for span in [*model_calls, *flushes]:
        assert span.context.trace_id == trace_id and span.parent.span_id == attempt.context.span_id
    assert sum(span.attributes["agentstream.events"] for span in flushes) >= 10


async def test_the_submit_joins_the_callers_trace(
    settings: StreamsSettings, deps: WorkerDeps, spans: InMemorySpanExporter
) -> None:
    await submit_and_run(settings, deps, {"traceparent": TRACEPARENT})
    finished = spans.get_finished_spans()
    (submit,) = [span for span in finished if span.name == "agentstream.submit"]
    assert f"{submit.context.trace_id:032x}" == CALLER_TRACE
    # the API's first span (the submit's, or FastAPI's request span above it) is the caller's child
    children = [
        span for span in finished if span.parent and f"{span.parent.span_id:016x}" == "00f067aa0ba902b7"
    ]
    assert len(children) == 1 and children[0].parent.is_remote
    (tool,) = [span for span in finished if span.name == "agentstream.tool"]
    assert f"{tool.context.trace_id:032x}" == CALLER_TRACE


NO_OTEL = """
import sys
sys.modules["opentelemetry"] = None  # as if the otel extra were not installed
from agentstream.telemetry import tracing
from agentstream.telemetry.logs import bind_task
assert not tracing.tracing_enabled()
with tracing.span("s", {"k": 1}, parent=tracing.extract_context({"traceparent": "x"})) as s:
    s.set_attribute("a", 1)
    bind_task("t1", attempt=1, tenant="acme")
    assert tracing.inject_context() == {} and tracing.current_ids() is None
handle = tracing.start_span("m")
tracing.fail_span(handle, ValueError("x"))
handle.end()
try:
    tracing.configure_tracing("svc", {"AGENTSTREAM_OTEL_EXPORTER": "console"})
except RuntimeError as exc:
    assert "otel extra" in str(exc)
else:
    raise AssertionError("configure_tracing needs OpenTelemetry")
import agentstream.worker.observability, agentstream.streams  # the worker side imports without it
print("ok")
"""


def test_without_opentelemetry_tracing_does_nothing_and_fails_nowhere() -> None:
    proc = subprocess.run([sys.executable, "-c", NO_OTEL], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_the_exporter_setting_is_checked() -> None:
    from agentstream.telemetry.tracing import configure_tracing

    assert configure_tracing("svc", {}) is False
    with pytest.raises(ValueError, match="console, otlp or none"):
        configure_tracing("svc", {"AGENTSTREAM_OTEL_EXPORTER": "jaeger"})


FRESH_PROVIDER = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from agentstream.telemetry import tracing
assert not tracing.tracing_enabled()  # no provider yet (and the fast answer says so)
trace.set_tracer_provider(TracerProvider())
assert tracing.tracing_enabled()  # at once, no delay
print("ok")
"""

ENV_PROVIDER = """
from agentstream.telemetry import tracing
assert tracing.tracing_enabled()  # the provider the environment names is loaded when asked
print("ok")
"""


@pytest.mark.parametrize(
    ("code", "env"),
    [(FRESH_PROVIDER, {}), (ENV_PROVIDER, {"OTEL_PYTHON_TRACER_PROVIDER": "sdk_tracer_provider"})],
    ids=["set-in-code", "named-by-the-environment"],
)
def test_tracing_is_on_as_soon_as_a_provider_is_set_or_named(code: str, env: dict[str, str]) -> None:
    clean = {k: v for k, v in os.environ.items() if k != "OTEL_PYTHON_TRACER_PROVIDER"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=clean | env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
