"""Log setup of the API and worker processes, with the task in scope on every line.

``AGENTSTREAM_LOG_FORMAT=json`` writes one JSON object per line (``time``, ``level``,
``logger``, ``message``, ``process``, and ``task_id``, ``attempt``, ``tenant``,
``trace_id``, ``span_id`` where known, ``exception`` with its traceback); ``text`` (the
default) writes plain lines with the same task fields in brackets at the end.

Which task a line belongs to is a context variable: :func:`bind_task` sets it where the
worker starts an attempt and where the API handles a task's route, and asyncio tasks
started from there inherit it, so their lines carry it too without being told.

Per-request and per-token lines are not logged at INFO: the model client's HTTP libraries
(httpx and its httpx2 line, httpcore, openai) log one line per request, so they are held at WARNING.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

from agentstream.telemetry import tracing

__all__ = [
    "LOG_FORMAT_ENV",
    "LOG_LEVEL_ENV",
    "JsonFormatter",
    "LogSettings",
    "TaskScope",
    "TextFormatter",
    "bind_task",
    "configure_logging",
    "task_scope",
]

LOG_FORMAT_ENV = "AGENTSTREAM_LOG_FORMAT"
LOG_LEVEL_ENV = "AGENTSTREAM_LOG_LEVEL"
_FORMATS = ("text", "json")
#: loggers that write a line per HTTP request of the model client
_CHATTY = ("httpx", "httpx2", "httpcore", "openai")
#: uvicorn's loggers: sent through our handler instead of uvicorn's own
_SERVER = ("uvicorn", "uvicorn.error", "uvicorn.access")
#: the record attributes a line of a task carries
_TASK_FIELDS = ("task_id", "attempt", "tenant", "trace_id", "span_id")


@dataclass(frozen=True, slots=True)
class TaskScope:
    """The task the current code works for."""

    task_id: str
    attempt: int | None = None
    tenant: str | None = None


_SCOPE: ContextVar[TaskScope | None] = ContextVar("agentstream_task_scope", default=None)


def bind_task(task_id: str, *, attempt: int | None = None, tenant: str | None = None) -> None:
    """Tag every later log line (and the current trace span) of this asyncio task, and of
    the tasks it starts from now on, with ``task_id``; ``attempt`` and ``tenant`` not given
    keep what was bound before for the same task."""
    known = _SCOPE.get()
    if known is not None and known.task_id == task_id:
        attempt = known.attempt if attempt is None else attempt
        tenant = known.tenant if tenant is None else tenant
    _SCOPE.set(TaskScope(task_id, attempt, tenant))
    tracing.set_attributes(**{"agentstream.task_id": task_id, "agentstream.attempt": attempt,
                              "agentstream.tenant": tenant})  # fmt: skip


def task_scope() -> TaskScope | None:
    """What :func:`bind_task` set in this context, if anything."""
    return _SCOPE.get()


class _TaskFilter(logging.Filter):
    """Copies the task scope and trace ids onto each record (it runs in the caller's
    context, so it sees the caller's context variables)."""

    def filter(self, record: logging.LogRecord) -> bool:
        scope = _SCOPE.get()
        if scope is not None:
            record.task_id, record.attempt, record.tenant = scope.task_id, scope.attempt, scope.tenant
        ids = tracing.current_ids()
        if ids is not None:
            record.trace_id, record.span_id = ids
        return True


def _task_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key in _TASK_FIELDS if (value := getattr(record, key, None)) is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            **_task_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


class TextFormatter(logging.Formatter):
    """``<time> <LEVEL> <logger> <pid>: <message> [task_id=… attempt=… tenant=…]``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(process)d: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        fields = _task_fields(record)
        if not fields:
            return line
        return line + " [" + " ".join(f"{key}={value}" for key, value in fields.items()) + "]"


@dataclass(frozen=True, slots=True)
class LogSettings:
    """How a process logs: ``format`` (``text`` or ``json``) and the root ``level``."""

    format: str = "text"
    level: str = "INFO"

    def __post_init__(self) -> None:
        if self.format not in _FORMATS:
            raise ValueError(f"{LOG_FORMAT_ENV} must be text or json, not {self.format!r}")
        if not isinstance(logging.getLevelName(self.level), int):
            raise ValueError(f"{LOG_LEVEL_ENV} must be DEBUG, INFO, WARNING or ERROR, not {self.level!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LogSettings:
        """``AGENTSTREAM_LOG_FORMAT`` and ``AGENTSTREAM_LOG_LEVEL`` (empty counts as unset)."""
        env = os.environ if env is None else env
        return cls(
            format=(env.get(LOG_FORMAT_ENV) or "text").strip().lower(),
            level=(env.get(LOG_LEVEL_ENV) or "INFO").strip().upper(),
        )


def configure_logging(settings: LogSettings | None = None, stream: TextIO | None = None) -> logging.Handler:
    """Send every log record of the process to ``stream`` (stderr) in the chosen format,
    through one handler on the root logger that replaces any handler configured before;
    uvicorn's loggers go through it too. Returns the handler."""
    settings = settings or LogSettings.from_env()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.format == "json" else TextFormatter())
    handler.addFilter(_TaskFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level)
    for name in _SERVER:
        server = logging.getLogger(name)
        server.handlers.clear()
        server.propagate = True
    quiet = max(logging.WARNING, logging.getLevelName(settings.level))
    for name in _CHATTY:
        logging.getLogger(name).setLevel(quiet)
    return handler
