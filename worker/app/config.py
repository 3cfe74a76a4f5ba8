"""``AgentConfiguration``: the seeds' (AIECS) configuration object, accepted by every agent
constructor and by ``App.agent(config=...)``.

An explicit constructor argument wins over the configuration, which wins over the
defaults (as in AIECS). Sampling fields (``temperature``, ``max_tokens``, ``top_p``, ...)
become the model options sent with every model call of the agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentstream.worker.errors import ConfigurationError

__all__ = ["DEFAULT_MAX_ITERATIONS", "AgentConfiguration", "ResolvedConfiguration", "resolve_configuration"]

#: model turns of an agent when neither the constructor nor a configuration says
DEFAULT_MAX_ITERATIONS = 8
#: request fields a model option must not override: the agent owns them
_RESERVED_OPTIONS = frozenset({"model", "messages", "tools", "stream", "stream_options", "n"})
_SAMPLING = ("temperature", "max_tokens", "top_p", "presence_penalty", "frequency_penalty", "stop", "seed")


class AgentConfiguration(BaseModel):
    """How an agent behaves: prompt, model, sampling and iteration budget.

    ``goal``, ``backstory`` and ``domain_knowledge`` (AIECS' persona fields) are added to
    the system prompt, each on its own paragraph. Unknown fields are refused.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    system_prompt: str | None = None
    goal: str | None = None
    backstory: str | None = None
    domain_knowledge: str | None = None
    llm_model: str | None = Field(default=None, alias="model")
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(default=None, ge=1)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    stop: list[str] | None = None
    seed: int | None = None
    max_iterations: int | None = Field(default=None, ge=1, le=50)
    #: any further request fields for the model server (``response_format``, ...)
    model_options: dict[str, Any] = Field(default_factory=dict)

    def full_system_prompt(self) -> str | None:
        """The system prompt with the persona fields appended; None when all are empty."""
        parts = [self.system_prompt, self.goal and f"Goal: {self.goal}", self.backstory,
                 self.domain_knowledge and f"Domain knowledge: {self.domain_knowledge}"]  # fmt: skip
        text = "\n\n".join(part for part in parts if part)
        return text or None

    def options(self) -> dict[str, Any]:
        """The model options this configuration sets."""
        sampling = {name: getattr(self, name) for name in _SAMPLING if getattr(self, name) is not None}
        return {**self.model_options, **sampling}


@dataclass(frozen=True, slots=True)
class ResolvedConfiguration:
    """What an agent runs with once arguments, configuration and defaults are merged."""

    system_prompt: str | None
    model: str | None
    max_iterations: int
    model_options: dict[str, Any]


def check_model_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` as a dict; raises ``ConfigurationError`` for the fields the agent owns."""
    reserved = sorted(_RESERVED_OPTIONS & set(options))
    if reserved:
        raise ConfigurationError(
            f"model_options may not set {', '.join(reserved)}: the agent sets them "
            "(use the agent's model= and tools=)"
        )
    return dict(options)


def resolve_configuration(
    config: AgentConfiguration | None,
    *,
    system_prompt: str | None,
    model: str | None,
    max_iterations: int | None,
    model_options: Mapping[str, Any] | None,
) -> ResolvedConfiguration:
    """Merge a constructor's arguments (which win) with ``config`` and the defaults."""
    config = config if config is not None else AgentConfiguration()
    if not isinstance(config, AgentConfiguration):
        raise ConfigurationError(f"config must be an AgentConfiguration, not {type(config).__name__}")
    iterations = max_iterations if max_iterations is not None else config.max_iterations
    iterations = iterations if iterations is not None else DEFAULT_MAX_ITERATIONS
    if iterations < 1:
        raise ConfigurationError(f"max_iterations must be >= 1, got {iterations}")
    return ResolvedConfiguration(
        system_prompt=system_prompt if system_prompt is not None else config.full_system_prompt(),
        model=model if model is not None else config.llm_model,
        max_iterations=iterations,
        model_options=check_model_options({**config.options(), **(model_options or {})}),
    )
