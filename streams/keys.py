"""Every Redis key and group name agentstream uses is built here, and only here.

All keys of one task carry the task's key id as a hash tag (``{<key id>}``) so that they
live in one Redis Cluster slot and one Lua script may touch them all (PROTOCOL section 2).

Task ids belong to a tenant: the HTTP API stores tenant ``acme``'s task ``tsk_1`` under
the **key id** ``acme/tsk_1`` (:func:`scoped_task_id`), so two tenants using one id get two
tasks, and nothing about one tenant's ids can be observed by another. The tenant sits
inside the hash tag (``agentstream:{acme/tsk_1}:events``), so every key of a task still
shares one slot. The streams layer takes any key id where it says ``task_id``: a bare task
id (the library used on its own) or a scoped one; events and views show the task id
alone (:func:`public_task_id`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidTaskId, InvalidTenant, UsageError

__all__ = [
    "TASK_ID_PATTERN",
    "TENANT_PATTERN",
    "Keys",
    "conversation_id",
    "public_task_id",
    "scoped_task_id",
    "split_task_id",
    "validate_group_name",
    "validate_task_id",
    "validate_tenant",
]

#: a task id as clients give it (and as events and views show it)
TASK_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: a tenant name: starts with a letter or digit; no ``/`` (it separates tenant and task
#: id), ``{``, ``}`` or ``:``
TENANT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
#: a key id: a task id, optionally scoped by its tenant (``<tenant>/<task id>``)
_KEY_ID_PATTERN = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}/)?[A-Za-z0-9_-]{1,64}")
_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def validate_task_id(task_id: str) -> str:
    """Return the key id ``task_id`` unchanged, or raise :class:`InvalidTaskId`.

    A key id is a task id (``^[A-Za-z0-9_-]{1,64}$``), optionally scoped by its tenant
    (``<tenant>/<task id>``). Neither part admits ``{``, ``}`` or ``:``, so a key id can
    neither break out of its hash tag nor address another task's keys.
    """
    if not isinstance(task_id, str) or _KEY_ID_PATTERN.fullmatch(task_id) is None:
        raise InvalidTaskId(
            f"invalid task id {task_id!r}: expected ^[A-Za-z0-9_-]{{1,64}}$, optionally after '<tenant>/'"
        )
    return task_id


def validate_tenant(tenant: str) -> str:
    """Return ``tenant`` unchanged, or raise :class:`InvalidTenant`."""
    if not isinstance(tenant, str) or TENANT_PATTERN.fullmatch(tenant) is None:
        raise InvalidTenant(f"invalid tenant {tenant!r}: expected ^[A-Za-z0-9][A-Za-z0-9_.-]{{0,63}}$")
    return tenant


def scoped_task_id(tenant: str, task_id: str) -> str:
    """The key id of ``tenant``'s task ``task_id``: ``<tenant>/<task id>``.

    Raises :class:`InvalidTenant` or :class:`InvalidTaskId` for names outside their patterns.
    """
    if not isinstance(task_id, str) or TASK_ID_PATTERN.fullmatch(task_id) is None:
        raise InvalidTaskId(f"invalid task id {task_id!r}: expected ^[A-Za-z0-9_-]{{1,64}}$")
    return f"{validate_tenant(tenant)}/{task_id}"


def split_task_id(key_id: str) -> tuple[str | None, str]:
    """``(tenant, task id)`` of a key id; the tenant is ``None`` for a bare task id."""
    tenant, sep, task_id = validate_task_id(key_id).rpartition("/")
    return (tenant if sep else None), task_id


def conversation_id(tenant: str | None, session_id: str) -> str:
    """The memory id of ``tenant``'s conversation ``session_id``: ``<tenant>:<session>``.

    Sessions, like task ids, belong to their tenant: two tenants using the same session id
    (an AG-UI ``threadId`` such as ``main``) must never share a conversation. ``:`` cannot
    occur in a tenant name, so the pair is unambiguous.
    """
    return session_id if tenant is None else f"{validate_tenant(tenant)}:{session_id}"


def public_task_id(key_id: str) -> str:
    """The task id a client sees (events, views, URLs): the key id without its tenant."""
    return key_id.rpartition("/")[2]


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
        """Inverse of :meth:`events`: the key id (used by the reader hub)."""
        head = f"{self.prefix}:{{"
        if not events_key.startswith(head) or not events_key.endswith("}:events"):
            raise UsageError(f"{events_key!r} is not an events key of prefix {self.prefix!r}")
        return events_key[len(head) : -len("}:events")]
