"""The task id a dialect shows its clients."""

from __future__ import annotations

__all__ = ["public_id"]


def public_id(key_id: str) -> str:
    """The id a client knows for the task whose streams key id is ``key_id``: once ids are
    per tenant the key id is ``<tenant>/<task id>``, and clients never see the tenant."""
    return key_id.rpartition("/")[2]
