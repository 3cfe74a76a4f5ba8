"""The one environment mapping a composed process is configured from: a copy of
``os.environ`` plus what the command line sets. Nothing here writes ``os.environ``."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["APP_VARIABLE", "stack_env", "with_app"]

#: the environment variable naming the user's ``module:attr`` App (read by the worker)
APP_VARIABLE = "AGENTSTREAM_APP"


def with_app(env: Mapping[str, str], app: str | None) -> dict[str, str]:
    """``env`` with ``AGENTSTREAM_APP=app`` when an app is given (``module:attr``)."""
    values = dict(env)
    if app:
        values[APP_VARIABLE] = app
    return values


def stack_env(
    base: Mapping[str, str],
    redis_url: str,
    *,
    prefix: str | None = None,
    model_base_url: str | None = None,
    app: str | None = None,
) -> dict[str, str]:
    """The one mapping worker and API are configured from: ``base`` (usually a copy of
    ``os.environ``) with ``REDIS_URL``, and where given the key prefix, the model's
    ``OPENAI_BASE_URL`` and the user's App, replaced."""
    values = with_app(base, app)
    values["REDIS_URL"] = redis_url
    if prefix is not None:
        values["AGENTSTREAM_PREFIX"] = prefix
    if model_base_url is not None:
        values["OPENAI_BASE_URL"] = model_base_url
    return values
