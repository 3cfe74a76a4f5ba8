"""ApiSettings from the environment, and the submit rate limiter."""

from __future__ import annotations

import pytest

from agentstream.api import ApiSettings
from agentstream.api.errors import ApiError
from agentstream.api.limits import RateLimiter
from agentstream.api.settings import parse_api_keys
from agentstream.streams import UsageError


def test_from_env_reads_everything_once() -> None:
    env = {
        "REDIS_URL": "redis://redis:6379/2",
        "AGENTSTREAM_PREFIX": "prod",
        "AGENTSTREAM_API_KEYS": "acme:k1, globex:k2",
        "AGENTSTREAM_RATE_LIMIT": "30",
        "AGENTSTREAM_SSE_PING_S": "0.5",
        "AGENTSTREAM_SSE_BUFFER": "64",
        "AGENTSTREAM_SSE_SLOW_CLIENT_S": "3",
        "AGENTSTREAM_MAX_SSE_CLIENTS": "50",
        "AGENTSTREAM_MAX_BODY_BYTES": "65536",
        "AGENTSTREAM_QUEUE_URL": "redis://queue:6379/0",
        "AGENTSTREAM_QUEUE": "jobs",
        "AGENTSTREAM_GROUP_MIN_IDLE_MS": "1000",
    }
    settings = ApiSettings.from_env(env)
    assert settings.streams.redis_url == "redis://redis:6379/2" and settings.streams.prefix == "prod"
    assert settings.api_keys == (("acme", "k1"), ("globex", "k2")) and not settings.open_mode
    assert settings.rate_limit_per_min == 30 and settings.ping_interval_s == 0.5
    assert (settings.sse_buffer, settings.sse_slow_client_s, settings.max_sse_clients) == (64, 3, 50)
    assert settings.max_body_bytes == 65536 and settings.group_min_idle_ms == 1000
    assert (settings.resolved_queue_url, settings.resolved_queue_name) == ("redis://queue:6379/0", "jobs")
    defaults = ApiSettings.from_env({})
    assert (
        defaults.open_mode
        and defaults.ping_interval_s == 15
        and defaults.resolved_queue_url == defaults.streams.redis_url
    )
    assert defaults.resolved_queue_name == "agentstream:queue"
    assert ApiSettings().resolved_queue_name == "agentstream:queue"
    assert defaults.group_block_ms < defaults.streams.command_timeout_s * 1000


@pytest.mark.parametrize(
    "env",
    [
        {"AGENTSTREAM_API_KEYS": "no-colon"},
        {"AGENTSTREAM_API_KEYS": ":key"},
        {"AGENTSTREAM_RATE_LIMIT": "fast"},
        {"AGENTSTREAM_SSE_BUFFER": "0"},
        {"AGENTSTREAM_SSE_PING_S": "-1"},
    ],
)
def test_bad_values_fail_with_a_clear_error(env: dict[str, str]) -> None:
    with pytest.raises(UsageError):
        ApiSettings.from_env(env)


def test_parse_api_keys_ignores_blanks() -> None:
    assert parse_api_keys(" a:1 ,, b:2:3 ") == (("a", "1"), ("b", "2:3"))


def test_token_bucket_refills_evenly_per_tenant() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=2, clock=lambda: now[0])
    assert limiter.acquire("a") == 0 and limiter.acquire("a") == 0
    assert limiter.acquire("a") == pytest.approx(30.0)
    assert limiter.acquire("b") == 0  # another tenant, another bucket
    now[0] = 29.0
    assert limiter.acquire("a") > 0
    now[0] = 30.5
    assert limiter.acquire("a") == 0
    with pytest.raises(ApiError) as refused:
        limiter.check("a")
    assert refused.value.status_code == 429 and refused.value.headers == {"Retry-After": "30"}
    unlimited = RateLimiter(per_minute=0)
    assert all(unlimited.acquire("a") == 0 for _ in range(1000))
