"""Exceptions raised by the worker.

One tree, so callers can catch as broadly or as narrowly as they need::

    WorkerError                  base of everything the worker raises on purpose
    ├── ConfigurationError       misuse: bad settings, a closed client, a duplicate tool.
    │                            Fix the code or the environment; retrying cannot help.
    ├── ModelError               the model call failed at run time.
    │   │                        `.retryable` and `.error_type` feed the `error` event.
    │   ├── ModelUnavailable     every attempt failed before the first delta arrived
    │   │                        (429, 5xx, timeouts, connection errors, retries exhausted).
    │   ├── ModelStreamBroken    the stream failed after deltas were already yielded, so it
    │   │                        cannot be retried transparently; the task may be retried.
    │   └── ModelStopped         the model ended its turn without a usable answer: cut off
    │                            (`length`), filtered (`content_filter`) or refused.
    └── ToolError                a tool failed; `.tool_name` says which one.
        ├── ToolNotFound         no tool of that name is registered.
        ├── ToolArgumentsInvalid the parameters do not match the tool's schema.
        ├── UnsafeExpression     the calculator refused an expression.
        └── HttpGetRefused       http_get refused a URL (scheme, host or address).

Runtime failures (`ModelError`, `ToolError`) are expected in production and become
`error` / `tool_error` events; `ToolRegistry.call` turns every `ToolError` into a failed
`ToolOutcome` so the model sees the message instead of the task crashing.
`ConfigurationError` is apart because it signals a bug or a bad deployment.
"""

from __future__ import annotations

from agentstream.errors import StackError

__all__ = [
    "ConfigurationError",
    "HttpGetRefused",
    "ModelError",
    "ModelStopped",
    "ModelStreamBroken",
    "ModelUnavailable",
    "ToolArgumentsInvalid",
    "ToolError",
    "ToolNotFound",
    "UnsafeExpression",
    "WorkerError",
]


class WorkerError(StackError):
    """Base class of every exception the worker raises on purpose."""


class ConfigurationError(WorkerError):
    """The worker is misconfigured or misused; the message says what to change."""


class ModelError(WorkerError):
    """A call to the model failed.

    `retryable` tells whether running the task again may succeed; `error_type` is a short
    machine-readable reason (`rate_limited`, `server_error`, `timeout`, `connection_error`,
    `client_error`, `stream_broken`, ...) for the `error` event. `status_code` is the HTTP
    status when the server answered with one.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        error_type: str,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.error_type = error_type
        self.status_code = status_code


class ModelUnavailable(ModelError):
    """Every attempt failed before the first delta; `attempts` says how many were made."""

    def __init__(
        self,
        message: str,
        *,
        attempts: int,
        error_type: str,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message, retryable=True, error_type=error_type, status_code=status_code)
        self.attempts = attempts


class ModelStreamBroken(ModelError):
    """The stream failed after deltas were yielded; the partial output must be discarded."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message, retryable=True, error_type="stream_broken", status_code=status_code)


class ModelStopped(ModelError):
    """The model ended its turn without a usable answer; running it again would not help.

    `stop_reason` is `length` (the output token limit, possibly inside tool-call
    arguments), `content_filter` or `refusal`; `output` is what the model said (the cut-off
    text, or the refusal) and `refusal` the refusal text, if any. The agent ends the task
    with `success: false` and these in its `result`.
    """

    def __init__(self, message: str, *, stop_reason: str, output: str, refusal: str | None = None) -> None:
        super().__init__(message, retryable=False, error_type="model_stopped")
        self.stop_reason = stop_reason
        self.output = output
        self.refusal = refusal


class ToolError(WorkerError):
    """A tool failed; the message is shown to the model in a `tool_error` event."""

    def __init__(self, message: str, *, tool_name: str) -> None:
        super().__init__(message)
        self.message = message
        self.tool_name = tool_name


class ToolNotFound(ToolError):
    """No tool with this name is registered."""

    def __init__(self, tool_name: str, *, available: list[str] | None = None) -> None:
        known = ", ".join(available) if available else "none"
        super().__init__(f"unknown tool {tool_name!r}; available tools: {known}", tool_name=tool_name)


class ToolArgumentsInvalid(ToolError):
    """The parameters given to a tool do not match its schema."""


class UnsafeExpression(ToolError):
    """The calculator refused an expression that is not plain arithmetic or is too large."""

    def __init__(self, message: str) -> None:
        super().__init__(message, tool_name="calculator")


class HttpGetRefused(ToolError):
    """http_get refused a URL: wrong scheme, host not allowed, or a non-public address."""

    def __init__(self, message: str) -> None:
        super().__init__(message, tool_name="http_get")
