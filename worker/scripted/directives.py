"""The bracketed directives that choose a scripted reply's behaviour (pure).

They may be given in the last user message, in the model name (``scripted[length]``) or
in the route (``/with/length+no-done/v1``); see :mod:`agentstream.worker.scripted`.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Directives", "UnknownDirective", "merge_directives", "parse_directives", "parse_route_directives"]

_FLAGS = (
    "think",
    "narrate",
    "bad-args",
    "no-id",
    "length",
    "content-filter",
    "refuse",
    "same-index",
    "no-index",
    "no-finish",
    "no-done",
    "reject-stream-options",
)
_DIRECTIVE = re.compile(
    r"\[(?:(?P<counted>fail-after|fail|slow|tokens):(?P<value>\d+)(?:x(?P<times>\d+))?"
    rf"|(?P<flag>{'|'.join(_FLAGS)})"
    r"|call:(?P<call>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<call_args>[^\]]*))?)\]"
)


class UnknownDirective(ValueError):
    """A route named a directive this server does not know."""


@dataclass(frozen=True, slots=True)
class Directives:
    """What the bracketed directives ask for (see the package docstring).

    A ``*_times`` of ``None`` means "every time"; a number means "only for the first that
    many requests with this same last user message".
    """

    fail_status: int | None = None
    fail_times: int | None = None
    fail_after: int | None = None
    fail_after_times: int | None = None
    slow_ms: int | None = None
    tokens: int | None = None
    think: bool = False
    narrate: bool = False
    bad_args: bool = False
    no_id: bool = False
    length: bool = False
    content_filter: bool = False
    refuse: bool = False
    same_index: bool = False
    no_index: bool = False
    no_finish: bool = False
    no_done: bool = False
    reject_stream_options: bool = False
    #: ``[call:name:k=v,...]`` directives: (tool name, arguments)
    calls: tuple[tuple[str, dict[str, Any]], ...] = ()


def parse_directives(text: str) -> tuple[Directives, str]:
    """Split a user message into its directives and the text left once they are removed.

    The remaining text has its whitespace collapsed, so that word tokens reassemble to it.
    """
    found: dict[str, Any] = {}
    for match in _DIRECTIVE.finditer(text):
        if match["call"]:
            found["calls"] = (*found.get("calls", ()), (match["call"], _call_arguments(match["call_args"])))
            continue
        if flag := match["flag"]:
            found[flag.replace("-", "_")] = True
            continue
        value = int(match["value"])
        times = int(match["times"]) if match["times"] else None
        match match["counted"]:
            case "fail" if 400 <= value <= 599:
                found.update(fail_status=value, fail_times=times)
            case "fail-after":
                found.update(fail_after=value, fail_after_times=times)
            case "slow":
                found["slow_ms"] = value
            case "tokens":
                found["tokens"] = value
    return Directives(**found), " ".join(_DIRECTIVE.sub(" ", text).split())


def _call_arguments(text: str | None) -> dict[str, Any]:
    """``k=v,...``: values that parse as JSON are JSON, others strings."""
    arguments: dict[str, Any] = {}
    for pair in filter(None, (text or "").split(",")):
        name, _, raw = pair.partition("=")
        try:
            arguments[name.strip()] = json.loads(raw)
        except ValueError:
            arguments[name.strip()] = raw.strip()
    return arguments


def parse_route_directives(segment: str) -> Directives:
    """The directives of a route segment such as ``length+slow:5``; every part must be one."""
    parts = [part for part in segment.split("+") if part]
    for part in parts:
        if not _DIRECTIVE.fullmatch(f"[{part}]"):
            raise UnknownDirective(f"unknown directive {part!r} in the route")
    return parse_directives("".join(f"[{part}]" for part in parts))[0]


def merge_directives(*layers: Directives) -> Directives:
    """Later layers win wherever they set something (route, then model, then message)."""
    default = Directives()
    merged: dict[str, Any] = {}
    for layer in layers:
        for spec in dataclasses.fields(layer):
            value = getattr(layer, spec.name)
            if value != getattr(default, spec.name):
                merged[spec.name] = value
    return Directives(**merged)
