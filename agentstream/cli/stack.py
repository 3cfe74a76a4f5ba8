"""The in-process stack: an arq worker and the API as tasks of this event loop, both
configured from one environment mapping passed in (``os.environ`` is never modified)::

    async with running_stack(redis_url, model_base_url=llm.base_url) as (api_url, api_key):
        ...
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from agentstream.cli.environment import stack_env
from agentstream.serving import InLoopServer

if TYPE_CHECKING:
    from arq import Worker

__all__ = ["InProcessApi", "InProcessWorker", "running_stack", "stack_configs"]

STARTUP_TIMEOUT_S = 20.0
SHUTDOWN_TIMEOUT_S = 10.0


class InProcessApi:
    """The API (``agentstream.api.create_app``) served by uvicorn in this event loop, on
    ``127.0.0.1:port`` (0: a free port); ``async with`` yields its base URL."""

    def __init__(self, settings: Any, *, port: int = 0, startup_timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        from agentstream.api.app import create_app

        self._server = InLoopServer(
            create_app(settings),
            port=port,
            name="agentstream-api",
            lifespan="on",
            # open SSE streams would hold a plain shutdown forever
            timeout_graceful_shutdown=2,
            startup_timeout_s=startup_timeout_s,
            shutdown_timeout_s=SHUTDOWN_TIMEOUT_S,
        )

    async def __aenter__(self) -> str:
        return (await self._server.__aenter__()).url

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._server.__aexit__(*exc_info)


async def _wait_task(task: asyncio.Task[Any], timeout_s: float, what: str) -> None:
    """Wait for a task to end, cancelling it at the deadline, without raising its
    cancellation into the caller (only the caller's own cancellation propagates)."""
    done, _ = await asyncio.wait([task], timeout=timeout_s)
    if not done:
        task.cancel()
        await asyncio.wait([task], timeout=timeout_s)
    if task.done() and not task.cancelled() and task.exception() is not None:
        print(f"agentstream: the {what} stopped with {task.exception()!r}", file=sys.stderr)


class InProcessWorker:
    """An arq worker (``worker.settings.create_worker``) running as a task of this loop.

    ``config`` is a ``worker.settings.WorkerConfig``. Shutdown cancels running jobs (their
    tasks checkpoint and resume elsewhere), then closes the worker's clients.
    """

    def __init__(self, config: Any, *, startup_timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        self._config = config
        self._startup_timeout_s = startup_timeout_s
        self._worker: Worker | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> InProcessWorker:
        from agentstream.worker.jobs import DEPS_KEY
        from agentstream.worker.settings import create_worker

        self._worker = worker = create_worker(self._config, handle_signals=False)
        self._task = asyncio.create_task(worker.async_run(), name="agentstream-worker")
        try:
            async with asyncio.timeout(self._startup_timeout_s):
                while DEPS_KEY not in worker.ctx:
                    if self._task.done():
                        self._task.result()
                        raise RuntimeError("the worker stopped while starting")
                    await asyncio.sleep(0.01)
        except BaseException:
            await self._stop()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stop()

    async def _stop(self) -> None:
        from redis.exceptions import RedisError

        worker, task = self._worker, self._task
        if worker is None or task is None:
            return
        self._worker = self._task = None
        worker.handle_sig(signal.SIGTERM)  # stop polling, cancel running jobs
        jobs = list(worker.tasks.values())
        await _wait_task(task, SHUTDOWN_TIMEOUT_S, "worker")
        pending = [job for job in jobs if not job.done()]
        if pending:
            await asyncio.wait(pending, timeout=SHUTDOWN_TIMEOUT_S)
        for job in jobs:
            if job.done() and not job.cancelled() and job.exception() is not None:
                print(f"agentstream: a worker job ended with {job.exception()!r}", file=sys.stderr)
        # arq's close() gathers its job tasks, which would re-raise their cancellation here;
        # every one of them is accounted for above.
        worker.tasks.clear()
        try:
            await asyncio.wait_for(worker.close(), SHUTDOWN_TIMEOUT_S)
        except (TimeoutError, RedisError) as exc:
            print(f"agentstream: the worker could not close cleanly: {exc!r}", file=sys.stderr)


def stack_configs(env: Mapping[str, str], api_key: str | None = None) -> tuple[Any, Any, str]:
    """``(WorkerConfig, ApiSettings, api_key)`` from one mapping: the API gets a key of its
    own (``api_key``, else a fresh random one, tenant ``demo``) and agrees with the worker
    on the queue."""
    from agentstream.api.settings import ApiSettings
    from agentstream.worker.settings import WorkerConfig

    config = WorkerConfig.from_env(env)
    key = api_key or f"demo-{secrets.token_hex(8)}"
    return config, ApiSettings.from_env(env, api_keys=(("demo", key),), queue_name=config.queue_name), key


@contextlib.asynccontextmanager
async def running_stack(
    redis_url: str,
    *,
    env: Mapping[str, str] | None = None,
    prefix: str | None = None,
    model_base_url: str | None = None,
    app: str | None = None,
    api_key: str | None = None,
) -> AsyncIterator[tuple[str, str]]:
    """Worker + API in this loop against ``redis_url``; yields ``(api_url, api_key)``.

    Both are configured from one mapping, :func:`~agentstream.cli.environment.stack_env`
    of ``env`` (default: a copy of ``os.environ``, never modified); see
    :func:`stack_configs` for the key.
    """
    values = stack_env(
        os.environ if env is None else env, redis_url, prefix=prefix, model_base_url=model_base_url, app=app
    )
    config, api_settings, key = stack_configs(values, api_key)
    async with InProcessWorker(config), InProcessApi(api_settings) as url:
        yield url, key
