"""Tool configuration: :class:`ToolSettings`, read once from the environment mapping the
worker is given. Light (stdlib only): the worker's configuration imports it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agentstream.streams.settings import env_number
from agentstream.worker.errors import ConfigurationError

__all__ = ["DEFAULT_TOOL_TIMEOUT_S", "ToolSettings", "normalise_host"]

DEFAULT_TOOL_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class ToolSettings:
    """Tool configuration, read once from the environment.

    `http_get_allow` both enables `http_get` (when non-empty) and limits it: an entry is a
    host (`api.example.com`), a suffix pattern (`*.example.com`), or `*` for any host whose
    every address is public. Hosts named explicitly may resolve to private addresses;
    that is how an operator lets the tool reach an internal service.
    """

    default_timeout_s: float = DEFAULT_TOOL_TIMEOUT_S
    http_get_allow: tuple[str, ...] = ()
    http_get_timeout_s: float = 10.0
    http_get_max_bytes: int = 256 * 1024

    def __post_init__(self) -> None:
        if self.default_timeout_s <= 0 or self.http_get_timeout_s <= 0:
            raise ConfigurationError("tool timeouts must be positive numbers of seconds")
        if self.http_get_max_bytes <= 0:
            raise ConfigurationError("http_get_max_bytes must be positive")
        object.__setattr__(self, "http_get_allow", _normalise_allow(self.http_get_allow))

    @property
    def http_get_enabled(self) -> bool:
        return bool(self.http_get_allow)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ToolSettings:
        """Read `AGENTSTREAM_TOOL_TIMEOUT_S`, `AGENTSTREAM_HTTP_GET_ALLOW` (comma list),
        `AGENTSTREAM_HTTP_GET_TIMEOUT_S` and `AGENTSTREAM_HTTP_GET_MAX_BYTES`."""
        env = environ
        default = cls()
        return cls(
            default_timeout_s=env_number(
                env, "AGENTSTREAM_TOOL_TIMEOUT_S", default.default_timeout_s, error=ConfigurationError
            ),
            http_get_allow=tuple(env.get("AGENTSTREAM_HTTP_GET_ALLOW", "").split(",")),
            http_get_timeout_s=env_number(
                env, "AGENTSTREAM_HTTP_GET_TIMEOUT_S", default.http_get_timeout_s, error=ConfigurationError
            ),
            http_get_max_bytes=int(
                env_number(
                    env,
                    "AGENTSTREAM_HTTP_GET_MAX_BYTES",
                    default.http_get_max_bytes,
                    error=ConfigurationError,
                )
            ),
        )


def normalise_host(host: str) -> str:
    return host.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")


def _normalise_allow(entries: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(e for e in map(normalise_host, entries) if e))
