"""Every Redis key and group name agentstream uses is built here, and only here.

All keys of one task carry the task id as a hash tag (``{<task_id>}``) so that they live
in one Redis Cluster slot and one Lua script may touch them all (PROTOCOL section 2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidTaskId, UsageError

__all__ = ["TASK_ID_PATTERN", "Keys", "validate_group_name", "validate_task_id"]

TASK_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def validate_task_id(task_id: str) -> str:
    """Return ``task_id`` unchanged, or raise :class:`InvalidTaskId`.

    The pattern excludes ``{``, ``}`` and ``:``, so a task id can neither break out of its
    hash tag nor address another task's keys.
    """
    if not isinstance(task_id, str) or TASK_ID_PATTERN.fullmatch(task_id) is None:
        raise InvalidTaskId(f"invalid task id {task_id!r}: expected ^[A-Za-z0-9_-]{{1,64}}$")
    return task_id


def validate_group_name(name: str, what: str = "group") -> str:
    """Consumer group and consumer names: 1-128 of ``[A-Za-z0-9_.:-]``."""
    if not isinstance(name, str) or _NAME_PATTERN.fullmatch(name) is None:
        raise UsageError(f"invalid {what} name {name!r}: expected ^[A-Za-z0-9_.:-]{{1,128}}$")
    return name


@dataclass(frozen=True, slots=True)
class Keys:
    """Key builder for one deployment (one ``prefix``)."""

    prefix: str = "agentstream"

    def __post_init__(self) -> None:
        if _PREFIX_PATTERN.fullmatch(self.prefix) is None:
            raise UsageError(f"invalid key prefix {self.prefix!r}: expected [A-Za-z0-9_.:-]{{1,64}}")

    def events(self, task_id: str) -> str:
        """The task's event stream."""
        return f"{self.prefix}:{{{validate_task_id(task_id)}}}:events"

    def meta(self, task_id: str) -> str:
        """The task's meta hash (owner, status, attempt, last seq, times, request)."""
        return f"{self.prefix}:{{{validate_task_id(task_id)}}}:meta"

    def dead(self, task_id: str) -> str:
        """Dead-lettered consumer-group deliveries of the task."""
        return f"{self.prefix}:{{{validate_task_id(task_id)}}}:dead"

    def memory(self, agent_id: str, sender_id: str) -> str:
        """Multi-turn conversation memory of one sender with one agent (a list of messages).

        It belongs to the conversation, not to a task, so it outlives any one task.
        """
        validate_group_name(agent_id, "agent")
        validate_group_name(sender_id, "sender")
        return f"{self.prefix}:memory:{{{agent_id}}}:{sender_id}"

    def task_keys(self, task_id: str) -> tuple[str, str, str]:
        """``(events, meta, dead)``: the keys a task's Lua scripts touch, one slot."""
        return self.events(task_id), self.meta(task_id), self.dead(task_id)

    @property
    def tasks(self) -> str:
        """The task feed: one ``created`` and one ``ended`` entry per task."""
        return f"{self.prefix}:tasks"

    @property
    def queue(self) -> str:
        """The default arq queue of this deployment (derived from the prefix, so two
        deployments sharing one Redis never run each other's jobs)."""
        return f"{self.prefix}:queue"

    def catalog(self, queue: str) -> str:
        """The catalog of the workers serving ``queue``: one hash field per live worker."""
        return f"{self.prefix}:catalog:{validate_group_name(queue, 'queue')}"

    def task_id_of(self, events_key: str) -> str:
        """Inverse of :meth:`events` (used by the reader hub)."""
        head = f"{self.prefix}:{{"
        if not events_key.startswith(head) or not events_key.endswith("}:events"):
            raise UsageError(f"{events_key!r} is not an events key of prefix {self.prefix!r}")
        return events_key[len(head) : -len("}:events")]
