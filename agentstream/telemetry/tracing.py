"""Optional tracing with OpenTelemetry: one trace per task, from the submit request to the
worker's attempt, model calls, tools and stream flushes.

With the ``otel`` extra (``pip install 'agentstream[otel]'``: ``opentelemetry-api`` and
``-sdk``) the functions here make real spans through the global tracer provider; without
it they cost one attribute lookup and do nothing. Spans go wherever the process's tracer
provider sends them: the host's own setup (``opentelemetry-instrument`` and the standard
``OTEL_*`` variables), or :func:`configure_tracing` from ``AGENTSTREAM_OTEL_EXPORTER``.

The context crosses the queue as a W3C ``traceparent`` carrier (a plain ``dict``): the API
stores :func:`inject_context` in the task request, the worker passes it to :func:`span` as
``parent``, so every attempt of a task joins the submit's trace.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Mapping
from typing import Any

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider, Span, Status, StatusCode
except ImportError:  # the otel extra is not installed: every function below is a no-op
    trace = None  # type: ignore[assignment]

__all__ = [
    "OTEL_EXPORTER_ENV",
    "configure_tracing",
    "current_context",
    "current_ids",
    "extract_context",
    "fail_span",
    "inject_context",
    "set_attributes",
    "span",
    "start_span",
    "tracing_enabled",
]

#: ``console`` or ``otlp``: a tracer provider this process sets up (see configure_tracing)
OTEL_EXPORTER_ENV = "AGENTSTREAM_OTEL_EXPORTER"
_TRACER_NAME = "agentstream"
#: providers that record nothing: none set yet, or tracing disabled (OTEL_SDK_DISABLED)
_NO_PROVIDER = (ProxyTracerProvider, NoOpTracerProvider) if trace is not None else ()
#: the variable through which the environment may name a tracer provider (the API reads it)
_PROVIDER_ENV = "OTEL_PYTHON_TRACER_PROVIDER"
#: whether it did when this module was imported (set by the process's launcher, if at all)
_PROVIDER_IN_ENV = _PROVIDER_ENV in os.environ
_UNKNOWN = object()
#: attribute values OpenTelemetry accepts; anything else is sent as its str()
_PLAIN = (str, bool, int, float)


@functools.cache
def _tracer() -> Any:
    # One proxy for the process: it follows the provider set later (by the host's setup
    # or configure_tracing), and asking the API for a tracer per span costs far more.
    return trace.get_tracer(_TRACER_NAME)


def tracing_enabled() -> bool:
    """Whether spans are recorded: the OpenTelemetry API is installed and the process has
    a tracer provider. Without one, every function here does nothing, and quickly: the
    API's own no-op spans cost tens of microseconds each, one per stream flush.

    Asked once per append and flush. The API's ``get_tracer_provider`` looks up
    ``OTEL_PYTHON_TRACER_PROVIDER`` in ``os.environ`` while no provider is set (1.5 us a
    call here, 0.1 us this way): its module's provider is read first, and the API asked
    only once one is set or that variable names one."""
    if trace is None:
        return False
    if getattr(trace, "_TRACER_PROVIDER", _UNKNOWN) is None and not _PROVIDER_IN_ENV:
        return False
    return not isinstance(trace.get_tracer_provider(), _NO_PROVIDER)


def _clean(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    if not attributes:
        return {}
    return {k: v if isinstance(v, _PLAIN) else str(v) for k, v in attributes.items() if v is not None}


def inject_context(of: Any = None) -> dict[str, str]:
    """The trace context of span ``of`` (a :func:`start_span` handle), else the current
    one, as W3C headers (``traceparent``, maybe ``tracestate``); empty without
    OpenTelemetry or outside any span."""
    carrier: dict[str, str] = {}
    if trace is not None:
        propagate.inject(carrier, context=trace.set_span_in_context(of) if isinstance(of, Span) else None)
    return carrier


def current_context() -> Any:
    """The current context, to parent a span that another task starts later (a flush made
    for many tasks at once); ``None`` without a tracer provider."""
    if not tracing_enabled():
        return None
    from opentelemetry import context

    return context.get_current()


def extract_context(carrier: Mapping[str, str] | None) -> Any:
    """The context that :func:`inject_context` (or a caller's ``traceparent`` header) put
    in ``carrier``; ``None`` when there is none, so a span started from it is a root."""
    if trace is None or not carrier:
        return None
    ctx = propagate.extract(carrier)
    return ctx if trace.get_current_span(ctx).get_span_context().is_valid else None


class _NoSpan:
    """What :func:`start_span` returns without OpenTelemetry."""

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def end(self) -> None:
        pass


_NO_SPAN = _NoSpan()


def start_span(name: str, attributes: Mapping[str, Any] | None = None, *, parent: Any = None) -> Any:
    """A started span that is *not* made current; the caller ends it. For work that
    yields control without owning a task (an async generator's model call), where a span
    made current would leak into the consumer's context between two yields."""
    if not tracing_enabled():
        return _NO_SPAN
    return _tracer().start_span(name, context=parent, attributes=_clean(attributes))


def fail_span(handle: Any, exc: BaseException) -> None:
    """Record ``exc`` on a span of :func:`start_span` (a no-op without OpenTelemetry)."""
    if trace is not None and isinstance(handle, Span):
        handle.record_exception(exc)
        handle.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


class _NoSpanContext:
    """What :func:`span` returns without a tracer provider: a context manager that does nothing."""

    def __enter__(self) -> _NoSpan:
        return _NO_SPAN

    def __exit__(self, *exc_info: object) -> None:
        return None


_NO_SPAN_CONTEXT = _NoSpanContext()


def span(
    name: str, attributes: Mapping[str, Any] | None = None, *, parent: Any = None
) -> contextlib.AbstractContextManager[Any]:
    """A span around a ``with`` block, current inside it (spans started within are its
    children, also in asyncio tasks created within). ``parent``: a context from
    :func:`extract_context`, else the current span's. An exception ends it as an error."""
    if not tracing_enabled():
        return _NO_SPAN_CONTEXT
    current: contextlib.AbstractContextManager[Any] = _tracer().start_as_current_span(
        name, context=parent, attributes=_clean(attributes)
    )
    return current


def set_attributes(**attributes: Any) -> None:
    """Set attributes on the current span, if one is recording."""
    if trace is None:
        return
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes(_clean(attributes))


def current_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` in hex of the current span, for log lines; ``None`` outside."""
    if trace is None:
        return None
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def configure_tracing(service_name: str, env: Mapping[str, str] | None = None) -> bool:
    """Install a tracer provider for this process when ``AGENTSTREAM_OTEL_EXPORTER`` asks
    for one: ``console`` (spans as JSON on stdout) or ``otlp`` (the OTLP/HTTP exporter of
    ``opentelemetry-exporter-otlp-proto-http``, configured by the standard
    ``OTEL_EXPORTER_OTLP_*`` variables). Unset: leave the global provider alone (the host's
    ``opentelemetry-instrument`` may have set one). Returns whether a provider was set."""
    env = os.environ if env is None else env
    choice = (env.get(OTEL_EXPORTER_ENV) or "").strip().lower()
    if not choice or choice == "none":
        return False
    if choice not in ("console", "otlp"):
        raise ValueError(f"{OTEL_EXPORTER_ENV} must be console, otlp or none, not {choice!r}")
    if trace is None:
        raise RuntimeError(
            f"{OTEL_EXPORTER_ENV}={choice} needs the otel extra: pip install 'agentstream[otel]'"
        )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    exporter: Any
    if choice == "console":
        exporter = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise RuntimeError(
                f"{OTEL_EXPORTER_ENV}=otlp needs pip install opentelemetry-exporter-otlp-proto-http"
            ) from None
        exporter = OTLPSpanExporter()
    name = env.get("OTEL_SERVICE_NAME") or service_name
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return True
