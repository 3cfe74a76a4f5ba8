"""The :class:`App`: the tools and named agents one worker serves.

Tools are registered with ``@app.tool`` (schemas from the signature and docstring, see
:func:`agentstream.worker.tools.tool`); agents with ``app.agent(name, kind=..., ...)``.
The built-in kinds ``llm``, ``tool`` and ``hybrid`` are always served, with every tool of
the app. ``app.get_agent(name)`` builds an agent for in-process use (PROTOCOL section 4);
``app.task_agent`` is what a worker builds for each task.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, overload

from agentstream.worker.agents import HybridAgent, LLMAgent, ToolAgent, WorkflowPlugin, parse_workflow
from agentstream.worker.agents.base import BaseAgent
from agentstream.worker.app.config import (
    AgentConfiguration,
    ResolvedConfiguration,
    check_model_options,
    resolve_configuration,
)
from agentstream.worker.app.waits import ASK_USER, ask_user_tool
from agentstream.worker.errors import ConfigurationError
from agentstream.worker.llm import OpenAIClient
from agentstream.worker.memory import ConversationMemory, RedisMemory
from agentstream.worker.payload import AGENT_NAME_REGEX, TaskRequest
from agentstream.worker.tools import (
    Tool,
    ToolRegistry,
    ToolSettings,
    default_registry,
    tool,
)
from agentstream.worker.tools.settings import DEFAULT_TOOL_TIMEOUT_S

if TYPE_CHECKING:
    from agentstream.worker.deps import TaskAgent, WorkerDeps

__all__ = ["BUILTIN_KINDS", "AgentSpec", "App"]

#: the agent kinds every worker serves under their own names
BUILTIN_KINDS: dict[str, type[BaseAgent]] = {"llm": LLMAgent, "tool": ToolAgent, "hybrid": HybridAgent}
#: names of the built-in tools (``http_get`` only where the operator allows it)
BUILTIN_TOOLS = frozenset({"calculator", "current_time", "http_get"})
_AGENT_NAME = re.compile(AGENT_NAME_REGEX.strip("^$"))


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """A named agent: its kind, tools (``None``: every tool of the app), model, prompt,
    iteration budget and model options. ``config`` (AIECS' ``AgentConfiguration``) fills
    what the explicit fields leave unset."""

    name: str
    kind: str = "hybrid"
    tools: tuple[str, ...] | None = None
    model: str | None = None
    system_prompt: str | None = None
    max_iterations: int | None = None
    model_options: Mapping[str, Any] = field(default_factory=dict)
    description: str | None = None
    config: AgentConfiguration | None = None
    builtin: bool = False

    def tool_names(self, registry: ToolRegistry) -> list[str]:
        """The tools this agent offers the model."""
        if self.kind == "llm":
            return []
        return list(self.tools) if self.tools is not None else registry.names()

    def resolved(self) -> ResolvedConfiguration:
        """Prompt, model, budget and options once ``config`` and the defaults are applied."""
        return resolve_configuration(
            self.config, system_prompt=self.system_prompt, model=self.model,
            max_iterations=self.max_iterations, model_options=self.model_options,
        )  # fmt: skip

    def for_request(self, request: TaskRequest) -> AgentSpec:
        """This spec with what ``request`` may override: a subset of the tools, the model,
        the iteration budget. Raises ``ConfigurationError`` for tools the agent lacks."""
        changes: dict[str, Any] = {}
        if request.tools is not None:
            if self.tools is not None and not self.builtin:
                extra = [name for name in request.tools if name not in self.tools]
                if extra:
                    raise ConfigurationError(
                        f"agent {self.name!r} has no tool(s) {', '.join(extra)}; "
                        f"its tools: {', '.join(self.tools) or 'none'}"
                    )
            changes["tools"] = tuple(request.tools)
        if request.model is not None:
            changes["model"] = request.model
        if request.max_iterations is not None:
            changes["max_iterations"] = request.max_iterations
        return replace(self, **changes) if changes else self


class App:
    """The tools and named agents a worker serves (``AGENTSTREAM_APP=module:attr``).

    ``builtin_tools=False`` leaves out ``calculator``, ``current_time`` and ``http_get``;
    ``ask_user=True`` adds the ``ask_user`` tool, whose calls wait for the user's answer.
    Use it as an async context manager (or call :meth:`aclose`) when :meth:`get_agent`
    made the model client itself.
    """

    def __init__(
        self, *, builtin_tools: bool = True, name: str | None = None, ask_user: bool = False
    ) -> None:
        self.builtin_tools = builtin_tools
        self.ask_user = ask_user
        self.name = name
        self._tools: dict[str, Tool] = {}
        #: tools whose timeout is the deployment's (``AGENTSTREAM_TOOL_TIMEOUT_S``)
        self._default_timeouts: set[str] = set()
        self._agents: dict[str, AgentSpec] = {}
        self._registry: ToolRegistry | None = None
        self._llm: OpenAIClient | None = None

    def __repr__(self) -> str:
        return f"App(name={self.name!r}, tools={list(self._tools)}, agents={list(self._agents)})"

    # ------------------------------------------------------------------ declaring

    @overload
    def tool(self, fn: Callable[..., Any], /) -> Tool: ...
    @overload
    def tool(
        self, *, name: str | None = None, description: str | None = None, timeout_s: float | None = None,
        requires_approval: bool = False,
    ) -> Callable[[Callable[..., Any]], Tool]: ...  # fmt: skip
    def tool(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        description: str | None = None,
        timeout_s: float | None = None,
        requires_approval: bool = False,
    ) -> Tool | Callable[[Callable[..., Any]], Tool]:
        """Register a sync or async function as a tool: ``@app.tool`` or
        ``@app.tool(name=..., description=..., timeout_s=...)``. Returns the
        :class:`~agentstream.worker.tools.Tool`, which calls the function when called.

        ``timeout_s`` defaults to ``AGENTSTREAM_TOOL_TIMEOUT_S`` (30 s). A parameter named
        ``ctx`` or annotated ``ToolContext`` receives the call's context.
        ``requires_approval=True``: a call waits for a person's approval before it runs.
        """

        def register(func: Callable[..., Any]) -> Tool:
            limit = timeout_s or DEFAULT_TOOL_TIMEOUT_S
            made = tool(func, name=name, description=description, timeout_s=limit)
            made = replace(made, requires_approval=requires_approval)
            if timeout_s is None:
                self._default_timeouts.add(made.name)
            return self.add_tool(made)

        return register(fn) if fn is not None else register

    def add_tool(self, new: Tool) -> Tool:
        """Register an already made :class:`Tool`; names are unique, built-ins included."""
        if new.name in self._tools:
            raise ConfigurationError(f"the app already has a tool named {new.name!r}")
        if self.builtin_tools and new.name in BUILTIN_TOOLS:
            raise ConfigurationError(
                f"{new.name!r} is a built-in tool: rename yours, or use App(builtin_tools=False)"
            )
        self._tools[new.name] = new
        self._registry = None
        return new

    def agent(
        self,
        name: str,
        *,
        kind: str = "hybrid",
        tools: Iterable[str] | None = None,
        model: str | None = None,
        system_prompt: str | None = None,
        max_iterations: int | None = None,
        model_options: Mapping[str, Any] | None = None,
        description: str | None = None,
        config: AgentConfiguration | None = None,
    ) -> AgentSpec:
        """Declare a named agent; submitting ``{"agent": name, "input": ...}`` runs it.

        ``tools`` are names of this app's tools (built-ins included); ``None`` offers
        them all. Unknown tool names are reported by :meth:`check`, which the worker
        runs at startup (tools may be registered after the agent is declared).
        """
        if not isinstance(name, str) or _AGENT_NAME.fullmatch(name) is None:
            raise ConfigurationError(f"agent name {name!r} must match {AGENT_NAME_REGEX}")
        if name in BUILTIN_KINDS:
            raise ConfigurationError(f"{name!r} is a built-in agent kind; choose another name")
        if name in self._agents:
            raise ConfigurationError(f"the app already has an agent named {name!r}")
        if kind not in BUILTIN_KINDS:
            raise ConfigurationError(f"agent {name!r}: kind must be llm, tool or hybrid, not {kind!r}")
        if max_iterations is not None and not 1 <= max_iterations <= 50:
            raise ConfigurationError(f"agent {name!r}: max_iterations must be 1..50, got {max_iterations}")
        spec = AgentSpec(
            name=name,
            kind=kind,
            tools=None if tools is None else tuple(tools),
            model=model,
            system_prompt=system_prompt,
            max_iterations=max_iterations,
            model_options=check_model_options(model_options or {}),
            description=description,
            config=config,
        )
        self._agents[name] = spec
        return spec

    # ------------------------------------------------------------------ reading

    @property
    def tools(self) -> dict[str, Tool]:
        """The app's own tools, by name (built-ins not included)."""
        return dict(self._tools)

    @property
    def agents(self) -> dict[str, AgentSpec]:
        """The app's named agents, by name (built-in kinds not included)."""
        return dict(self._agents)

    def build_registry(self, settings: ToolSettings | None = None) -> ToolRegistry:
        """The registry a worker serves: the built-ins (unless turned off, ``http_get``
        only where ``settings`` allow it; the defaults when None) and the app's tools.
        Checks the agents' tools."""
        settings = settings if settings is not None else ToolSettings()
        registry = (
            default_registry(settings)
            if self.builtin_tools
            else ToolRegistry(default_timeout_s=settings.default_timeout_s)
        )
        for own in self._tools.values():
            if own.name in self._default_timeouts:
                own = replace(own, timeout_s=settings.default_timeout_s)
            registry.register(own)
        if self.ask_user and ASK_USER not in registry:
            registry.register(ask_user_tool())
        self.check(registry)
        return registry

    def check(self, registry: ToolRegistry) -> None:
        """Raise ``ConfigurationError`` naming every agent tool ``registry`` lacks."""
        problems = [
            f"agent {spec.name!r} uses unknown tool(s) {', '.join(missing)}"
            for spec in self._agents.values()
            if (missing := [name for name in spec.tools or () if name not in registry])
        ]
        if problems:
            raise ConfigurationError(
                "; ".join(problems) + f"; the tools are: {', '.join(registry.names()) or 'none'}"
            )

    @property
    def registry(self) -> ToolRegistry:
        """The registry for in-process use, built once (from the environment's settings)."""
        if self._registry is None:
            self._registry = self.build_registry()
        return self._registry

    def spec(self, name: str) -> AgentSpec:
        """The named agent, or a built-in kind; ``ConfigurationError`` names what exists."""
        if name in self._agents:
            return self._agents[name]
        if name in BUILTIN_KINDS:
            return AgentSpec(name=name, kind=name, builtin=True)
        raise ConfigurationError(f"unknown agent {name!r}; this app serves: {', '.join(self.agent_names())}")

    def agent_names(self) -> list[str]:
        """Every agent name this app serves: the built-in kinds, then its own."""
        return [*BUILTIN_KINDS, *self._agents]

    def describe(self, registry: ToolRegistry, default_model: str | None = None) -> dict[str, Any]:
        """What this app serves with ``registry``, as the catalog publishes it: every agent
        (name, kind, model, tool names, ...) and every tool (name, description, JSON
        schema, timeout). ``default_model`` stands for agents that name none."""
        agents = []
        for name in self.agent_names():
            spec = self.spec(name)
            resolved = spec.resolved()
            agents.append({
                "name": name, "kind": spec.kind, "builtin": spec.builtin,
                "model": resolved.model or default_model, "tools": spec.tool_names(registry),
                "max_iterations": resolved.max_iterations, "description": spec.description,
                "has_system_prompt": bool(resolved.system_prompt),
            })  # fmt: skip
        tools = [
            {
                "name": item.name,
                "description": item.description,
                "parameters": item.parameters,
                "timeout_s": item.timeout_s,
                "builtin": item.name not in self._tools,
            }
            for item in map(registry.get, registry.names())
        ]
        return {"app": self.name, "agents": agents, "tools": tools}

    # ------------------------------------------------------------------ building agents

    def build_agent(
        self,
        spec: AgentSpec,
        *,
        llm_client: OpenAIClient,
        registry: ToolRegistry,
        memory: ConversationMemory | None = None,
        workflow: WorkflowPlugin | None = None,
        agent_id: str | None = None,
    ) -> BaseAgent:
        """An agent of ``spec`` using ``llm_client`` and ``registry``."""
        agent_id = agent_id or (f"{spec.kind}-agent" if spec.builtin else spec.name)
        return BUILTIN_KINDS[spec.kind](
            agent_id=agent_id,
            name=spec.name if not spec.builtin else agent_id,
            llm_client=llm_client,
            tools=spec.tool_names(registry),
            registry=registry,
            max_iterations=spec.max_iterations,
            system_prompt=spec.system_prompt,
            model=spec.model,
            memory=memory,
            workflow=workflow,
            config=spec.config,
            model_options=spec.model_options,
        )

    def get_agent(
        self, name: str, *, llm_client: OpenAIClient | None = None, memory: ConversationMemory | None = None
    ) -> BaseAgent:
        """An agent for in-process use (PROTOCOL section 4): ``execute_task_streaming`` and
        ``process_message_streaming`` as the agent classes have them. Without
        ``llm_client`` the app makes one from the environment (closed by :meth:`aclose`)."""
        spec = self.spec(name)
        if llm_client is None:
            if self._llm is None:
                self._llm = OpenAIClient()  # reads the process environment, for scripts
            llm_client = self._llm
        return self.build_agent(spec, llm_client=llm_client, registry=self.registry, memory=memory)

    def task_agent(self, request: TaskRequest, deps: WorkerDeps) -> TaskAgent:
        """The agent of one task in a worker (the worker's ``agent_factory``): the named
        agent or built-in kind, with the request's overrides, memory for a session."""
        spec = self.spec(request.agent).for_request(request)
        agent_id = f"{spec.kind}-agent" if spec.builtin else spec.name
        memory = None
        if request.session_id:
            memory = RedisMemory(deps.redis, deps.config.streams.keys, agent_id)
        workflow = None
        if request.workflow:
            boundary = request.stream_boundary_events
            workflow = WorkflowPlugin(parse_workflow(request.workflow), stream_boundary_events=boundary)
        return self.build_agent(
            spec, llm_client=deps.llm, registry=deps.registry, memory=memory, workflow=workflow,
            agent_id=agent_id,
        )  # fmt: skip

    async def aclose(self) -> None:
        """Close the model client :meth:`get_agent` made, if any."""
        llm, self._llm = self._llm, None
        if llm is not None:
            await llm.aclose()

    async def __aenter__(self) -> App:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
