"""The one exception tree of the agentstream stack (streams, worker, API).

Every exception the stack raises on purpose derives from :class:`StackError`, so a caller
embedding the stack can catch everything it means with one ``except``::

    StackError
    ├── agentstream.streams.StreamsError      the streams core (Redis streams of events)
    │   ├── UsageError                        misuse: fix the calling code
    │   │   ├── InvalidTaskId                 task id outside ``^[A-Za-z0-9_-]{1,64}$``
    │   │   ├── InvalidTenant                 tenant name outside ``^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$``
    │   │   ├── InvalidCursor                 not ``<ms>-<seq>``, ``<ms>``, ``0`` or ``$``
    │   │   ├── InvalidFilter                 unknown streaming mode, scope or event types
    │   │   └── InvalidEvent                  an event that cannot be stored
    │   ├── ClosedError                       a writer/reader/consumer used after closing
    │   └── StreamStateError                  the task's state in Redis forbids it
    │       ├── TaskNotFound                  no such task (or it expired)
    │       ├── FencedError                   a newer attempt owns the task
    │       └── TaskCompleted                 the stream already ended with ``completed``
    ├── agentstream.worker.errors.WorkerError the worker (models, tools, configuration)
    │   ├── ConfigurationError                misuse: bad settings or a bad deployment
    │   ├── ModelError                        a model call failed (``retryable``)
    │   └── ToolError                         a tool failed (``tool_name``)
    └── agentstream.api.errors.ApiError       an HTTP error answered as
        │                                     ``{"error": {"code", "message"}}``
        └── (the API's own runtime failures, e.g. ``SlowClient``, derive from StackError)

Misuse is always a ``UsageError`` (also a ``ValueError``) in the streams core and the API;
the worker's ``ConfigurationError`` plays that part there. Runtime failures are apart from
misuse: they say what happened, and whether trying again can help.

Network failures are not wrapped: Redis connection errors and timeouts surface as
redis-py's exceptions (their tuple is ``agentstream.streams.errors.TRANSIENT_REDIS_ERRORS``)
so that callers keep one retry policy for the network. The SDK is apart from all of this:
its ``AgentStreamError`` is what an HTTP client sees, and it imports nothing of the stack.

This module is a leaf: it imports nothing, so every layer may import it.
"""

from __future__ import annotations

__all__ = ["StackError"]


class StackError(Exception):
    """Base of every exception the agentstream stack (streams, worker, API) raises on
    purpose. Not the SDK's ``AgentStreamError``, which HTTP clients see."""
