"""The query parameters that choose which events a stream delivers (PROTOCOL section 5)."""

from __future__ import annotations

from collections.abc import Iterable

from agentstream.protocol import StreamingMode, types_in

__all__ = ["filter_params", "run_params"]


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


def run_params(mode: StreamingMode) -> dict[str, str]:
    """What ``streaming_run`` asks for in ``mode``: the mode's events plus the task's
    ``result``, which AWorld readers get in every mode as the task response.

    The server's modes stay as they are: a mode without the ``output`` category is asked
    for as ``mode=all`` narrowed by ``types=`` to the mode's own types and ``result``
    (``error``, ``completed``, ``gap`` and ``reset`` pass every filter anyway).
    """
    categories = mode.categories
    if categories is None or "output" in categories:
        return {"mode": mode.value}
    wanted = types_in(categories) | {"result"}
    return {"mode": StreamingMode.ALL.value, "types": ",".join(sorted(wanted))}
