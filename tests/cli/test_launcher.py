"""The two in-process launchers the CLI and the test suite share: the embedded Redis and
the in-loop uvicorn server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from agentstream.cli.embedded import EmbeddedRedis, EmbeddedRedisError, free_port, start_redis, stop_redis
from agentstream.serving import InLoopServer
from tests.redis_server import redis_node

# ------------------------------------------------------------------------ embedded Redis


def test_embedded_redis_keeps_data_across_restarts_with_aof(tmp_path: Path) -> None:
    with EmbeddedRedis(tmp_path / "redis") as url:
        client = redis.Redis.from_url(url, socket_timeout=5)
        client.set("k", "v")
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        client.close()
    assert (tmp_path / "redis" / "appendonly.aof").exists() or (tmp_path / "redis" / "appendonlydir").is_dir()
    with EmbeddedRedis(tmp_path / "redis") as url:
        client = redis.Redis.from_url(url, socket_timeout=5)
        assert client.get("k") == b"v"
        client.close()


def test_embedded_redis_is_single_use(tmp_path: Path) -> None:
    embedded = EmbeddedRedis(tmp_path)
    with embedded:
        pass
    with pytest.raises(RuntimeError, match="runs only once"):
        embedded.__enter__()
    with pytest.raises(RuntimeError, match="not running"):
        _ = embedded.url


async def test_embedded_redis_starts_and_stops_from_a_coroutine(tmp_path: Path) -> None:
    embedded = EmbeddedRedis(tmp_path, persistent=False)
    async with embedded as url:
        client = redis.Redis.from_url(url, socket_timeout=5)
        assert await asyncio.to_thread(client.ping)
        assert client.config_get("appendonly") == {"appendonly": "no"}
        client.close()
    assert not (tmp_path / "appendonly.aof").exists()


def test_a_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    with pytest.raises(EmbeddedRedisError, match=r"(?s)exited with .*last log lines.*no-such-option"):
        start_redis(free_port(), tmp_path, "--no-such-option", "x")


def test_the_test_suite_starts_its_servers_with_the_package_launcher(tmp_path: Path) -> None:
    # tests/redis_server.py keeps its fixtures' shape: a throwaway node, extra arguments win.
    with redis_node("--requirepass", "s3cret") as url:
        client = redis.Redis.from_url(url.replace("redis://", "redis://:s3cret@"), socket_timeout=5)
        assert client.config_get("save") == {"save": ""}
        client.close()
    port = free_port()
    proc = start_redis(port, tmp_path, "--save", "")
    try:
        assert redis.Redis(port=port, socket_timeout=5).ping()
    finally:
        stop_redis(proc)
    assert proc.returncode is not None


def test_the_suite_never_uses_the_redis_on_the_default_port(redis_url: str) -> None:
    assert ":6379/" not in redis_url  # that one is for trying by hand


# ------------------------------------------------------------------- in-loop uvicorn


def _app() -> Starlette:
    return Starlette(routes=[Route("/hello", lambda _request: PlainTextResponse("hello"))])


async def test_in_loop_server_serves_on_a_free_port_until_the_block_ends() -> None:
    server = InLoopServer(_app())
    async with server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{server.url}/hello")).text == "hello"
        url = server.url
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.port
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{url}/hello")
    with pytest.raises(RuntimeError, match="runs only once"):
        await server.__aenter__()


async def test_in_loop_server_raises_a_bind_error_in_the_caller() -> None:
    async with InLoopServer(_app()) as first:
        with pytest.raises(OSError):
            async with InLoopServer(_app(), port=first.port):
                pass


async def test_in_loop_server_reports_a_failed_startup() -> None:
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    app = Starlette(lifespan=lifespan)
    with pytest.raises(RuntimeError, match="stopped while starting"):
        async with InLoopServer(app, lifespan="on"):
            pass
