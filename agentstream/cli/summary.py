"""The demo's proof of replay: what a second consumer found when it read the same stream
from the start, compared with what the live consumer saw."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agentstream.cli.render import Renderer

__all__ = ["DemoSummary", "summarize_replay"]


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """What a second consumer found when it read the same stream from the start."""

    events: int
    first_seq: int | None
    last_seq: int | None
    dense: bool
    same_text: bool
    same_cursors: bool
    text: str

    def describe(self) -> str:
        seqs = f"seqs {self.first_seq}..{self.last_seq}" if self.events else "no events"
        checks = [
            "no gaps" if self.dense else "GAPS IN SEQ",
            "same cursors as the live consumer" if self.same_cursors else "DIFFERENT CURSORS",
            f"same text: {self.text!r}" if self.same_text else f"DIFFERENT TEXT: {self.text!r}",
        ]
        return f"{self.events} events, {seqs}, " + ", ".join(checks)

    @property
    def ok(self) -> bool:
        return self.dense and self.same_text and self.same_cursors and self.events > 0


def summarize_replay(live: Sequence[Mapping[str, Any]], replayed: Sequence[Mapping[str, Any]]) -> DemoSummary:
    """Compare a full replay (mode ``all``) with what the live consumer saw (any mode)."""
    stored = [e for e in replayed if e.get("type") != "gap"]
    seqs = [int(e["seq"]) for e in stored if isinstance(e.get("seq"), int)]
    replay_text = _answer_text(stored)
    live_ids = [e.get("id") for e in live if e.get("type") != "gap"]
    replay_ids = {e.get("id") for e in stored}
    return DemoSummary(
        events=len(stored),
        first_seq=seqs[0] if seqs else None,
        last_seq=seqs[-1] if seqs else None,
        dense=seqs == list(range(1, len(seqs) + 1)) and len(seqs) == len(stored),
        same_text=replay_text == _answer_text(live),
        same_cursors=all(i in replay_ids for i in live_ids),
        text=replay_text,
    )


def _answer_text(events: Sequence[Mapping[str, Any]]) -> str:
    renderer = Renderer()
    for event in events:
        renderer.feed(event)
    return renderer.text.strip()
