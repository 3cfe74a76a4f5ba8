"""The reading side of workflow (dawp) runs: :class:`DawpStreamConsumer`.

Feed it a task's events in stream order, in-process or read back over HTTP/SDK::

    consumer = DawpStreamConsumer(
        on_run_started=lambda panel: ui.open_dawp_panel(panel.run_id),
        on_run_completed=lambda panel: ui.close_dawp_panel(panel.run_id),
    )
    async for event in agent.execute_task_streaming(task, context):
        consumer.consume(event)

It keeps one :class:`DawpRunPanel` per run (opened by ``dawp_run_started``, closed by
``dawp_run_completed``: those boundary events exist only when the workflow streams them),
the text of every step, and the main loop's text apart (reset by ``retry``, as the
protocol asks of a consumer that renders output).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agentstream.streams.events import effective_loop_scope

__all__ = ["DAWP_BOUNDARY_EVENT_TYPES", "DawpRunPanel", "DawpStep", "DawpStreamConsumer"]

DAWP_BOUNDARY_EVENT_TYPES = frozenset(
    {"dawp_run_started", "dawp_run_completed", "dawp_step_started", "dawp_step_completed"}
)


@dataclass(slots=True)
class DawpStep:
    """A workflow step as seen in a stream: its text so far and whether it succeeded."""

    run_id: str
    step_id: str
    index: int
    text: str = ""
    success: bool | None = None


@dataclass(slots=True)
class DawpRunPanel:
    """One workflow run as a UI shows it: open from its start to its completion."""

    run_id: str
    workflow_id: str | None = None
    placement: str | None = None
    trigger: str | None = None
    open: bool = True
    success: bool | None = None
    step_summaries: list[dict[str, Any]] = field(default_factory=list)
    active_step_id: str | None = None
    active_step_index: int | None = None


RunCallback = Callable[[DawpRunPanel], Any]
StepCallback = Callable[[DawpRunPanel, Mapping[str, Any]], Any]


class DawpStreamConsumer:
    """Groups a task's events per workflow run and step, apart from the main loop's text;
    calls ``on_run_started``/``on_run_completed`` on the run boundary events and
    ``on_step_started``/``on_step_completed`` on the step ones."""

    def __init__(
        self,
        *,
        on_run_started: RunCallback | None = None,
        on_run_completed: RunCallback | None = None,
        on_step_started: StepCallback | None = None,
        on_step_completed: StepCallback | None = None,
    ) -> None:
        self._on_run_started = on_run_started
        self._on_run_completed = on_run_completed
        self._on_step_started = on_step_started
        self._on_step_completed = on_step_completed
        self._steps: dict[tuple[str, str], DawpStep] = {}
        self._panels: dict[str, DawpRunPanel] = {}
        self._main: list[str] = []
        #: the fields of each run's boundary events, by run id
        self.runs: dict[str, dict[str, Any]] = {}

    def consume(self, event: Mapping[str, Any]) -> DawpRunPanel | None:
        """Take one event into account; returns the run's panel for a dawp event."""
        scope = effective_loop_scope(event)
        kind = event.get("type")
        if scope.get("kind") != "dawp" and kind not in DAWP_BOUNDARY_EVENT_TYPES:
            if kind == "token":
                self._main.append(str(event.get("content", "")))
            elif kind == "retry":
                self._main.clear()
            return None
        run_id = str(event.get("run_id") or scope.get("run_id") or "")
        panel = self._panel(run_id)
        if kind in ("dawp_run_started", "dawp_run_completed"):
            self.runs.setdefault(run_id, {}).update({k: v for k, v in event.items() if k != "loop_scope"})
            self._run_boundary(panel, event)
            return panel
        step_id = event.get("step_id") or scope.get("step_id")
        if step_id is None:
            return panel
        index = event.get("step_index", scope.get("step_index"))
        step = self._step(run_id, str(step_id), int(index or 0))
        if kind == "token":
            step.text += str(event.get("content", ""))
        elif kind == "dawp_step_started":
            panel.active_step_id, panel.active_step_index = step.step_id, step.index
            if self._on_step_started is not None:
                self._on_step_started(panel, event)
        elif kind == "dawp_step_completed":
            step.success = bool(event.get("success"))
            if step.success:
                panel.active_step_id = panel.active_step_index = None
            if self._on_step_completed is not None:
                self._on_step_completed(panel, event)
        return panel

    #: the earlier name of :meth:`consume`
    feed = consume

    def _run_boundary(self, panel: DawpRunPanel, event: Mapping[str, Any]) -> None:
        if event.get("type") == "dawp_run_started":
            panel.workflow_id = event.get("workflow_id")
            panel.placement = event.get("placement")
            panel.trigger = event.get("trigger")
            panel.open = True
            if self._on_run_started is not None:
                self._on_run_started(panel)
            return
        summaries = event.get("step_summaries")
        panel.step_summaries = list(summaries) if isinstance(summaries, list) else []
        panel.success = bool(event.get("success"))
        panel.open = False
        if self._on_run_completed is not None:
            self._on_run_completed(panel)

    def _panel(self, run_id: str) -> DawpRunPanel:
        if run_id not in self._panels:
            # A run seen without its start event (boundary events off): known, not "open".
            self._panels[run_id] = DawpRunPanel(run_id=run_id, open=False)
        return self._panels[run_id]

    def _step(self, run_id: str, step_id: str, index: int) -> DawpStep:
        key = (run_id, step_id)
        if key not in self._steps:
            self._steps[key] = DawpStep(run_id=run_id, step_id=step_id, index=index)
        return self._steps[key]

    def effective_scope(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The event's ``loop_scope`` (``{"kind": "main"}`` when absent)."""
        return effective_loop_scope(event)

    @property
    def panels(self) -> dict[str, DawpRunPanel]:
        """Every run seen, by run id (closed ones included)."""
        return dict(self._panels)

    @property
    def open_run_ids(self) -> list[str]:
        """Runs started and not completed yet."""
        return [run_id for run_id, panel in self._panels.items() if panel.open]

    @property
    def steps(self) -> list[DawpStep]:
        """Every step seen, in the order it first appeared."""
        return list(self._steps.values())

    @property
    def main_text(self) -> str:
        """The main loop's tokens since the last ``retry``."""
        return "".join(self._main)
