"""The query parameters that choose which events a stream delivers (PROTOCOL section 5)."""

from __future__ import annotations

from collections.abc import Iterable

from agentstream.protocol import StreamingMode, types_in

__all__ = ["RUN_EXTRAS", "filter_params", "run_params"]


def filter_params(
    mode: StreamingMode | str, types: Iterable[str] | str | None, scope: str | None
) -> dict[str, str]:
    """``mode``, ``types`` (a comma list) and ``scope`` as the server reads them."""
    params = {"mode": str(mode)}
    if types is not None:
        params["types"] = types if isinstance(types, str) else ",".join(types)
    if scope is not None:
        params["scope"] = str(scope)
    return params


#: what ``streaming_run`` delivers in every mode besides the mode's own events: the task's
#: ``result`` (the task response is made of it) and the waits for a person, without which
#: a ``chunk`` reader would sit on a task that waits and never learn why
RUN_EXTRAS = frozenset({"result", "approval_required", "input_required"})


def run_params(mode: StreamingMode) -> dict[str, str]:
    """What ``streaming_run`` asks for in ``mode``: the mode's events plus
    :data:`RUN_EXTRAS`, which AWorld readers get in every mode.

    The server's modes stay as they are: a mode that lacks any of them is asked for as
    ``mode=all`` narrowed by ``types=`` to the mode's own types and the extras
    (``error``, ``completed``, ``gap`` and ``reset`` pass every filter anyway).
    """
    categories = mode.categories
    if categories is None:
        return {"mode": mode.value}
    wanted = types_in(categories) | RUN_EXTRAS
    if wanted == types_in(categories):
        return {"mode": mode.value}
    return {"mode": StreamingMode.ALL.value, "types": ",".join(sorted(wanted))}
