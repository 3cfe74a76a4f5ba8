"""The model client's settings, read once from an environment mapping passed in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from agentstream.streams.settings import env_flag, env_integer, env_number
from agentstream.worker.errors import ConfigurationError

__all__ = ["HTTP_TRANSPORTS", "NO_API_KEY", "ModelSettings"]

#: API key sent to OpenAI-compatible servers that need none (the SDK insists on one).
NO_API_KEY = "sk-no-key"
#: the HTTP transports the model client can send through (`ModelSettings.http`)
HTTP_TRANSPORTS = ("aiohttp", "httpx")


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """Everything the model client needs.

    `read_timeout_s` bounds every wait for the next bytes of a response (so a stalled
    stream fails instead of hanging); `connect_timeout_s` bounds opening a connection.
    `max_retries` counts retries after the first attempt; the delay before retry N is
    `min(backoff_max_s, backoff_base_s * 2**(N-1))`, half of it randomised (jitter).
    `stream_options` sends `stream_options: {"include_usage": true}` so the server reports
    token usage; a server that rejects it with a 400 is asked again without it once, and
    is remembered (per base URL, for the life of the process). False never sends it.
    `http` picks the SDK's HTTP transport: ``aiohttp`` (the default: the SDK's aiohttp
    transport, whose C parser cut the worker's CPU per token at a model's pace by a fifth
    against httpx's h11 chain, bench/worker_pace.py) or ``httpx`` (the SDK's own default).
    """

    base_url: str | None = None
    api_key: str | None = None
    model: str = "gpt-4o-mini"
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    max_retries: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    stream_options: bool = True
    http: str = "aiohttp"

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ConfigurationError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.connect_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise ConfigurationError("model timeouts must be positive numbers of seconds")
        if self.http not in HTTP_TRANSPORTS:
            raise ConfigurationError(
                f"the model HTTP transport must be one of {', '.join(HTTP_TRANSPORTS)}, got {self.http!r}"
            )
        if self.backoff_base_s < 0 or self.backoff_max_s < self.backoff_base_s:
            raise ConfigurationError(
                "model backoff must satisfy 0 <= backoff_base_s <= backoff_max_s, got "
                f"{self.backoff_base_s} and {self.backoff_max_s}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ModelSettings:
        """Read `OPENAI_BASE_URL`, `OPENAI_API_KEY`, `AGENTSTREAM_MODEL`,
        `AGENTSTREAM_MODEL_TIMEOUT_S` (read), `AGENTSTREAM_MODEL_CONNECT_TIMEOUT_S`,
        `AGENTSTREAM_MODEL_RETRIES`, `AGENTSTREAM_MODEL_BACKOFF_S`,
        `AGENTSTREAM_MODEL_BACKOFF_MAX_S`, `AGENTSTREAM_MODEL_STREAM_OPTIONS` and
        `AGENTSTREAM_MODEL_HTTP` from
        `environ` (the process's one configuration mapping); empty values count as unset."""
        env = environ
        default = cls()
        base_url = env.get("OPENAI_BASE_URL") or None

        def number(name: str, fallback: float) -> float:
            return env_number(env, name, fallback, error=ConfigurationError)

        return cls(
            base_url=base_url,
            api_key=env.get("OPENAI_API_KEY") or (NO_API_KEY if base_url else None),
            model=env.get("AGENTSTREAM_MODEL") or default.model,
            connect_timeout_s=number("AGENTSTREAM_MODEL_CONNECT_TIMEOUT_S", default.connect_timeout_s),
            read_timeout_s=number("AGENTSTREAM_MODEL_TIMEOUT_S", default.read_timeout_s),
            max_retries=env_integer(
                env, "AGENTSTREAM_MODEL_RETRIES", default.max_retries, error=ConfigurationError
            ),
            backoff_base_s=number("AGENTSTREAM_MODEL_BACKOFF_S", default.backoff_base_s),
            backoff_max_s=number("AGENTSTREAM_MODEL_BACKOFF_MAX_S", default.backoff_max_s),
            stream_options=env_flag(
                env, "AGENTSTREAM_MODEL_STREAM_OPTIONS", default.stream_options, error=ConfigurationError
            ),
            http=(env.get("AGENTSTREAM_MODEL_HTTP") or default.http).strip().lower(),
        )
