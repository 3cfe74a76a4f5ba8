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
"""

from .codec import decode, encode
from .connection import RedisClient, create_redis
from .errors import (
    ClosedError,
    FencedError,
    InvalidCursor,
    InvalidEvent,
    InvalidFilter,
    InvalidTaskId,
    StreamsError,
    StreamStateError,
    TaskCompleted,
    TaskNotFound,
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
from .reader import Reader, parse_cursor
from .settings import StreamsSettings
from .tasks import Attempt, Created, TaskMeta, TaskStore
from .writer import Appended, StreamWriter

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
    "GroupConsumer",
    "GroupInfo",
    "InvalidCursor",
    "InvalidEvent",
    "InvalidFilter",
    "InvalidTaskId",
    "Keys",
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
