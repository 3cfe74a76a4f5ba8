"""Shared fixtures: a real Redis server for the whole session, a fresh key prefix per test."""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from arq import ArqRedis
from redis.asyncio.connection import AbstractConnection

from agentstream.streams import Reader, ReaderHub, StreamsSettings, TaskStore, create_redis
from agentstream.worker.config import WorkerConfig
from agentstream.worker.scripted_llm import ScriptedLLMServer
from tests.agui_node import install_node_modules
from tests.harness import arq_pool_for
from tests.redis_server import redis_cluster, redis_node


@pytest.fixture(scope="session", autouse=True)
async def close_redis_connections_left_open(pytestconfig: pytest.Config) -> AsyncIterator[None]:
    """At the end of the session, while its event loop still runs: close the Redis
    connections something left open, and name them and what held them on the terminal.

    Garbage-collected after the loop has closed, such a connection fails the whole run
    with "unclosed Connection" and "loop is closed" warnings that name no test (seen once
    in three loaded runs: a late write reconnects a pool its test already closed). A leak
    collected while a test runs still fails that test (``filterwarnings = error``)."""
    yield
    loop = asyncio.get_running_loop()
    for conn in [o for o in gc.get_objects() if isinstance(o, AbstractConnection)]:
        writer = getattr(conn, "_writer", None)
        if writer is None or getattr(writer, "_loop", loop) is not loop:
            continue
        holders = sorted({type(o).__name__ for o in gc.get_referrers(conn)} - {"list", "frame"})
        terminal = pytestconfig.pluginmanager.get_plugin("terminalreporter")
        capture = pytestconfig.pluginmanager.get_plugin("capturemanager")
        if terminal is not None and capture is not None:
            with capture.global_and_fixture_disabled():  # shown, not captured into a report
                terminal.write_line(f"the suite left a Redis connection open: {conn!r}, held by {holders}")
        await conn.disconnect(nowait=True)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_node() as url:
        yield url


@pytest.fixture(scope="session")
def cluster_url() -> Iterator[str]:
    with redis_cluster() as url:
        yield url


@pytest.fixture
def settings(redis_url: str) -> StreamsSettings:
    """Settings with a prefix of its own, so tests never see each other's keys."""
    return StreamsSettings(redis_url=redis_url, prefix=f"t{uuid.uuid4().hex[:10]}", block_ms=500)


@pytest.fixture
async def redis(settings: StreamsSettings) -> AsyncIterator[object]:
    client = create_redis(settings)
    try:
        yield client
    finally:
        keys = [k async for k in client.scan_iter(match=f"{settings.prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
def store(redis: object, settings: StreamsSettings) -> TaskStore:
    return TaskStore(redis, settings)


@pytest.fixture
async def hub(redis: object, settings: StreamsSettings) -> AsyncIterator[ReaderHub]:
    async with ReaderHub(redis, settings) as hub:
        yield hub


@pytest.fixture
def reader(redis: object, settings: StreamsSettings, hub: ReaderHub) -> Reader:
    return Reader(redis, settings, hub)


@pytest.fixture
async def llm() -> AsyncIterator[ScriptedLLMServer]:
    """The scripted OpenAI-compatible model, on a free loopback port."""
    async with ScriptedLLMServer() as server:
        yield server


@pytest.fixture
def worker_config(settings: StreamsSettings) -> WorkerConfig:
    """A worker's configuration on the test's prefix (its queue: ``<prefix>:queue``)."""
    return WorkerConfig(streams=settings)


@pytest.fixture
async def arq_pool(worker_config: WorkerConfig) -> AsyncIterator[ArqRedis]:
    """An arq pool on ``worker_config``'s queue."""
    async with arq_pool_for(worker_config) as pool:
        yield pool


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture
def chromium() -> str:
    """Debian's Chromium (``.ci/run`` installs it); Playwright drives it, downloading none."""
    if not CHROMIUM.exists():
        pytest.skip(f"the browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    return str(CHROMIUM)


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Any]:
    """Headless Chromium driven by Playwright (its driver only: no browser download)."""
    playwright = pytest.importorskip(
        "playwright.async_api",
        reason="the browser tests need the playwright package (pip install playwright)",
    )
    async with playwright.async_playwright() as driver:
        browser = await driver.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """tests/node installed from its lockfile (``npm ci``) when it is not yet."""
    return install_node_modules()
