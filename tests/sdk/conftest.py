"""Fixtures of the SDK's tests: the SSE stub, and the real stack (API, arq worker and the
scripted model in this loop, on the suite's Redis)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
import warnings
from collections.abc import AsyncIterator

import pytest

from agentstream.sdk import AgentStreamClient, Backoff
from tests.sdk.stub import API_KEY, Stub, build_stub, serve

#: retries in tests wait milliseconds, not seconds
FAST = Backoff(initial_s=0.001, max_s=0.01)


@pytest.fixture
async def stub() -> AsyncIterator[tuple[Stub, str]]:
    state = Stub(rng=random.Random(1234))
    async with serve(build_stub(state)) as url:
        yield state, url
    for producer in state.produce:
        producer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer


def stub_client(url: str, **kwargs: object) -> AgentStreamClient:
    return AgentStreamClient(url, API_KEY, backoff=FAST, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="package")
async def stack(redis_url: str) -> AsyncIterator[tuple[str, str]]:
    """The real API and an arq worker in this loop, the scripted model behind them."""
    from agentstream.cli.stack import running_stack
    from agentstream.worker.scripted_llm import ScriptedLLMServer

    async with contextlib.AsyncExitStack() as resources:
        llm = await resources.enter_async_context(ScriptedLLMServer())
        prefix = f"t{uuid.uuid4().hex[:8]}"
        yield await resources.enter_async_context(
            running_stack(redis_url, model_base_url=llm.base_url, prefix=prefix)
        )
        # The stack stops after whichever test ran last; arq's Worker.close() calls
        # redis-py's deprecated close() there.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
            await resources.aclose()
