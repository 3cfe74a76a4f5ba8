"""agentstream's core: durable, resumable streams of agent events on Redis Streams.

Knows Redis; knows nothing of arq, OpenAI or HTTP. The pieces:

- :mod:`streams.events`: the event vocabulary, categories, streaming modes and filters
- :mod:`streams.codec`: the compact field encoding of stream entries
- :mod:`streams.keys`: every Redis key name
- :mod:`streams.tasks`: task lifecycle (create, attempts and fencing, cancel, meta)
- :mod:`streams.writer`: the fenced, batching writer of one attempt
- :mod:`streams.reader` / :mod:`streams.hub`: replay and live tails sharing connections
- :mod:`streams.groups`: consumer groups with claiming and dead-lettering
- :mod:`streams.dead_letters`: list and requeue a group's dead letters
- :mod:`streams.feed`: the task feed (every task's ``created`` and ``ended``)

Importing this package loads nothing: each name loads its module on first use (PEP 562),
so a light module of the core (``keys``, ``settings``) costs no Redis client or pydantic to
import (``agentstream worker --help`` reads the worker's settings through it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentstream._lazy import lazy_exports

if TYPE_CHECKING:
    from .codec import decode, encode
    from .connection import RedisClient, create_redis
    from .errors import (
        ClosedError,
        FencedError,
        InputRejected,
        InvalidCursor,
        InvalidEvent,
        InvalidFilter,
        InvalidTaskId,
        StreamsError,
        StreamStateError,
        TaskCompleted,
        TaskNotFound,
        TaskWaiting,
        UsageError,
    )
    from .events import (
        ALWAYS_PASS,
        CATEGORIES,
        Event,
        EventFilter,
        Scope,
        StreamingMode,
        category_of,
        dump_event,
        effective_loop_scope,
        is_terminal,
        parse_event,
        utc_now_iso,
    )
    from .feed import FeedConsumer
    from .groups import DeadLetter, GroupConsumer, GroupInfo, group_info
    from .hub import ReaderHub, Subscription
    from .keys import Keys, validate_task_id
    from .reader import Follow, Reader, Tracker, parse_cursor
    from .settings import StreamsSettings
    from .tasks import Attempt, Created, QueuedMessage, TaskMeta, TaskStore
    from .writer import Appended, StreamWriter

_EXPORTS = {
    "decode": "agentstream.streams.codec",
    "encode": "agentstream.streams.codec",
    "RedisClient": "agentstream.streams.connection",
    "create_redis": "agentstream.streams.connection",
    "ClosedError": "agentstream.streams.errors",
    "FencedError": "agentstream.streams.errors",
    "InvalidCursor": "agentstream.streams.errors",
    "InvalidEvent": "agentstream.streams.errors",
    "InvalidFilter": "agentstream.streams.errors",
    "InvalidTaskId": "agentstream.streams.errors",
    "StreamsError": "agentstream.streams.errors",
    "StreamStateError": "agentstream.streams.errors",
    "TaskCompleted": "agentstream.streams.errors",
    "TaskNotFound": "agentstream.streams.errors",
    "TaskWaiting": "agentstream.streams.errors",
    "InputRejected": "agentstream.streams.errors",
    "UsageError": "agentstream.streams.errors",
    "ALWAYS_PASS": "agentstream.streams.events",
    "CATEGORIES": "agentstream.streams.events",
    "Event": "agentstream.streams.events",
    "EventFilter": "agentstream.streams.events",
    "Scope": "agentstream.streams.events",
    "StreamingMode": "agentstream.streams.events",
    "category_of": "agentstream.streams.events",
    "dump_event": "agentstream.streams.events",
    "effective_loop_scope": "agentstream.streams.events",
    "is_terminal": "agentstream.streams.events",
    "parse_event": "agentstream.streams.events",
    "utc_now_iso": "agentstream.streams.events",
    "FeedConsumer": "agentstream.streams.feed",
    "DeadLetter": "agentstream.streams.groups",
    "GroupConsumer": "agentstream.streams.groups",
    "GroupInfo": "agentstream.streams.groups",
    "group_info": "agentstream.streams.groups",
    "ReaderHub": "agentstream.streams.hub",
    "Subscription": "agentstream.streams.hub",
    "Keys": "agentstream.streams.keys",
    "validate_task_id": "agentstream.streams.keys",
    "Reader": "agentstream.streams.reader",
    "Follow": "agentstream.streams.reader",
    "Tracker": "agentstream.streams.reader",
    "parse_cursor": "agentstream.streams.reader",
    "StreamsSettings": "agentstream.streams.settings",
    "Attempt": "agentstream.streams.tasks",
    "Created": "agentstream.streams.tasks",
    "QueuedMessage": "agentstream.streams.tasks",
    "TaskMeta": "agentstream.streams.tasks",
    "TaskStore": "agentstream.streams.tasks",
    "Appended": "agentstream.streams.writer",
    "StreamWriter": "agentstream.streams.writer",
}

__all__ = [
    "ALWAYS_PASS",
    "CATEGORIES",
    "Appended",
    "Attempt",
    "ClosedError",
    "Created",
    "DeadLetter",
    "Event",
    "EventFilter",
    "FeedConsumer",
    "FencedError",
    "Follow",
    "GroupConsumer",
    "GroupInfo",
    "InputRejected",
    "InvalidCursor",
    "InvalidEvent",
    "InvalidFilter",
    "InvalidTaskId",
    "Keys",
    "QueuedMessage",
    "Reader",
    "ReaderHub",
    "RedisClient",
    "Scope",
    "StreamStateError",
    "StreamWriter",
    "StreamingMode",
    "StreamsError",
    "StreamsSettings",
    "Subscription",
    "TaskCompleted",
    "TaskMeta",
    "TaskNotFound",
    "TaskStore",
    "TaskWaiting",
    "Tracker",
    "UsageError",
    "category_of",
    "create_redis",
    "decode",
    "dump_event",
    "effective_loop_scope",
    "encode",
    "group_info",
    "is_terminal",
    "parse_cursor",
    "parse_event",
    "utc_now_iso",
    "validate_task_id",
]

__getattr__ = lazy_exports(__name__, _EXPORTS)
